"""kopf handlers: thin. Each reads the world, asks `plan_reconcile`, and carries out the plan.

The same `reconcile_job` runs on create, resume (operator restart), spec update and on a timer; it
re-reads the job from the API each time and keeps nothing but soft state in memory, so it is safe to
re-run at any moment and an operator restart mid-job changes nothing. The soft state lives in kopf's
memos, none in this module: the API client and the node cache in the operator's (`OperatorMemory`,
made at startup), each job's step rate, measurement source and refused create in that job's
(`JobMemory`), which kopf drops when the job is deleted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
from prometheus_client import Counter, Histogram

from elasticft.api.models import GROUP, PLURAL, VERSION, FineTuneJob, FineTuneJobStatus
from elasticft.api.validation import validate_document
from elasticft.controller.builders import JobRef, Manifest, checkpoint_claim, needs_rendezvous
from elasticft.controller.kube import ApiObject, Conflict, Kube, Refused, pooled_client
from elasticft.controller.names import ROLE_WORKER, job_selector, rendezvous_name
from elasticft.controller.observe import PodView, node_view, pod_view
from elasticft.controller.reconcile import CreateRefusal, Measurement, Observed, backoff_s, plan_reconcile
from elasticft.controller.sizing import decide_size
from elasticft.controller.status import condition_is, set_condition
from elasticft.signals import prometheus as prometheus_source
from elasticft.signals.prices import prices_from_configmap, prices_from_values, static_prices
from elasticft.signals.source import choose_source
from elasticft.signals.throughput import StepRate
from elasticft.signals.worker_metrics import scrape_worker
from elasticft.types import Prices

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = float(os.environ.get("ELASTICFT_RECONCILE_INTERVAL", "5"))
NODE_CACHE_S = 2.0
# kopf's thread pool for the sync handlers, and as many API connections kept open.
MAX_WORKERS = 32
# A look that loses the resourceVersion race (kopf's own annotation patch, a user's edit) re-reads and
# plans again at once; after this many losses in a row it leaves the job to the next timer.
CONFLICT_RETRIES = 3

RECONCILES = Counter("elasticft_operator_reconciles", "Reconciles run", ["outcome"])
RECONCILE_SECONDS = Histogram(
    "elasticft_operator_reconcile_seconds", "Time of one reconcile",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

@dataclass
class JobMemory:
    """One job's soft state, kept in kopf's memo for that object: kopf drops it when the job is
    deleted, so nothing outlives the job. A restart of the operator loses it, and costs a first reading
    without a rate and one more log line, nothing else."""

    lock: threading.Lock = field(default_factory=threading.Lock)  # one reconcile at a time per job
    step_rate: StepRate | None = None  # a rate needs two readings of the step
    fallback: str | None = None  # why its Prometheus reading was last set aside
    refusal: CreateRefusal | None = None  # the last create refused, until one succeeds

    def forget_run(self) -> None:
        """The job ended: nothing of its run is needed any more (the lock stays, it may be held)."""
        self.step_rate, self.fallback, self.refusal = None, None, None

    def note_source(self, fallback: str | None) -> None:
        """Log when the measurement falls back from Prometheus to the direct scrape, and back: once
        per change, not at every look."""
        if fallback == self.fallback:
            return
        if fallback is not None:
            log.info("%s", fallback)
        else:
            log.info("Prometheus measures the job again")
        self.fallback = fallback


class NodeCache:
    """The node list, at most `max_age_s` old, shared by every job's look. One thread refreshes it;
    the others meanwhile use the previous list rather than all listing the nodes at once (only the
    very first look waits)."""

    def __init__(self, kube: Kube, max_age_s: float = NODE_CACHE_S) -> None:
        self.kube = kube
        self.max_age_s = max_age_s
        self._cached: tuple[float, list[ApiObject]] | None = None
        self._refresh = threading.Lock()

    def nodes(self) -> list[ApiObject]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] <= self.max_age_s:
            return cached[1]
        if not self._refresh.acquire(blocking=cached is None):
            assert cached is not None
            return cached[1]
        try:
            current = self._cached
            if current is cached:  # nobody refreshed it while this thread waited for the lock
                current = self._cached = (time.monotonic(), self.kube.list_nodes())
            assert current is not None
            return current[1]
        finally:
            self._refresh.release()


@dataclass(frozen=True)
class OperatorMemory:
    """What every job's look shares: the API client and the node cache. Made once at startup and put
    in kopf's operator memo, of which every object's memo is a shallow copy."""

    kube: Kube
    nodes: NodeCache

    @classmethod
    def start(cls, kube: Kube) -> OperatorMemory:
        return cls(kube=kube, nodes=NodeCache(kube))


def operator_memo(kube: Kube) -> kopf.Memo:
    """kopf's operator memo holding the shared state (what the startup handler installs)."""
    return kopf.Memo(operator=OperatorMemory.start(kube))


def job_memory(memo: kopf.Memo) -> JobMemory:
    """This job's soft state in its kopf memo, made at its first look (setdefault: two handlers of one
    job starting at once get the same one)."""
    memory: JobMemory = memo.setdefault("job", JobMemory())
    return memory


def _status_of(raw: ApiObject) -> FineTuneJobStatus:
    """The stored status, ignoring fields this version does not know (an older operator's)."""
    stored = raw.get("status") or {}
    known = {f.alias or name for name, f in FineTuneJobStatus.model_fields.items()}
    return FineTuneJobStatus.model_validate({k: v for k, v in stored.items() if k in known})


def _prices(kube: Kube, job: FineTuneJob) -> Prices:
    spec, namespace = job.spec, job.metadata.namespace or "default"
    fallback = static_prices(spec)
    pricing = spec.capacity.pricing
    if pricing.source == "ConfigMap" and pricing.config_map_name:
        data = kube.config_map_data(namespace, pricing.config_map_name)
        return prices_from_configmap(data, fallback) if data is not None else fallback
    if pricing.source == "Prometheus" and spec.metrics.prometheus_url and pricing.spot_query \
            and pricing.on_demand_query:
        spot, on_demand = prometheus_source.read_prices(
            spec.metrics.prometheus_url, pricing.spot_query, pricing.on_demand_query)
        return prices_from_values(spot, on_demand, fallback)
    return fallback


def _measure(memory: JobMemory, job: FineTuneJob, status: FineTuneJobStatus, pods: list[ApiObject]) -> Measurement:
    """Throughput, step, loss, checkpoint: from Prometheus when the job names one and it has the job
    (`signals.source` decides), else by scraping a worker."""
    spec, namespace, name = job.spec, job.metadata.namespace or "default", job.metadata.name
    views = sorted((pod_view(p) for p in pods), key=lambda v: v.index)
    current = [v for v in views if v.role == ROLE_WORKER and v.world == status.generation]
    url = spec.metrics.prometheus_url
    reading, window = None, None
    if url:
        window = prometheus_source.world_rate_window([v.ready_since for v in current], datetime.now(UTC))
        reading = prometheus_source.read_job(url, name, namespace, window)
    choice = choose_source(url, reading, window, f"{namespace}/{name}")
    if url:
        memory.note_source(choice.fallback)
    from_prometheus = Measurement() if reading is None else Measurement(
        step=reading.step, total_steps=reading.total_steps, samples_per_second=reading.samples_per_second,
        loss=reading.loss, checkpoint_step=reading.checkpoint_step)
    if choice.trust_prometheus:
        return from_prometheus
    return _scrape(memory, spec.global_batch_size, spec.metrics.port, status.generation, current) or from_prometheus


def _scrape(memory: JobMemory, global_batch_size: int, port: int, world: int,
            workers: list[PodView]) -> Measurement | None:
    """The first ready worker that answers (its /healthz says training started: before its checkpoint
    is loaded the step gauge still reads 0, no step worth timing)."""
    for view in workers:
        if not (view.pod_ip and view.ready):
            continue
        metrics = scrape_worker(view.pod_ip, port)
        if metrics is None or metrics.step is None:
            continue
        if memory.step_rate is None:
            memory.step_rate = StepRate(global_batch_size)
        sps = memory.step_rate.add(world, time.monotonic(), metrics.step)
        return Measurement(step=metrics.step, total_steps=metrics.total_steps, samples_per_second=sps,
                           loss=metrics.loss, checkpoint_step=metrics.checkpoint_step,
                           checkpoint_rejected_step=metrics.checkpoint_rejected_step)
    return None


def _claim_exists(kube: Kube, job: FineTuneJob) -> bool:
    claim = checkpoint_claim(JobRef(job.metadata.name, job.metadata.namespace or "default", ""), job.spec)
    return claim is None or kube.claim_exists(claim["metadata"]["namespace"], claim["metadata"]["name"])


def _mark_invalid(kube: Kube, raw: ApiObject, messages: list[str], now: datetime) -> None:
    status = _status_of(raw)
    message = "; ".join(messages)
    spec_generation = int(raw["metadata"].get("generation", 0))  # Kubernetes' metadata.generation
    if condition_is(status, "Valid", "False") and any(c.message == message for c in status.conditions):
        return  # already said: no event storm, no retry storm
    set_condition(status, "Valid", False, "InvalidSpec", message, now, spec_generation)
    status.observed_generation = spec_generation
    meta = raw["metadata"]
    kube.patch_job_status(meta["namespace"], meta["name"], meta["resourceVersion"],
                          status.model_dump(by_alias=True, mode="json"))
    kopf.event(kopf.Body(cast(kopf.RawBody, raw)), type="Warning", reason="InvalidSpec", message=message)


def reconcile_job(namespace: str, name: str, memo: kopf.Memo) -> None:
    """One reconcile at a time per job: kopf runs timers beside event handlers, and two looks at once
    would only make one of them lose the resourceVersion race. `memo` is kopf's memo of the job."""
    shared: OperatorMemory = memo["operator"]
    memory = job_memory(memo)
    with memory.lock, RECONCILE_SECONDS.time():
        for _ in range(CONFLICT_RETRIES):
            try:
                _reconcile_job(shared, memory, namespace, name)
                return
            except Conflict:
                RECONCILES.labels("conflict").inc()
        log.info("%s/%s changed under %d looks in a row; the next timer looks again", namespace, name,
                 CONFLICT_RETRIES)


def _observe(shared: OperatorMemory, memory: JobMemory, job: FineTuneJob, raw: ApiObject,
             now: datetime, created: datetime) -> Observed:
    """Everything the planner reads, gathered once per look."""
    assert job.status is not None
    kube, namespace, name = shared.kube, job.metadata.namespace or "default", job.metadata.name
    pods = kube.list_pods(namespace, job_selector(name))
    nodes = [node_view(n) for n in shared.nodes.nodes()]
    terminating = {n.name for n in nodes if n.terminating}
    return Observed(
        now=now,
        created=created,
        pods=[pod_view(p, terminating) for p in pods],
        nodes=nodes,
        measurement=_measure(memory, job, job.status, pods),
        prices=_prices(kube, job),
        rendezvous_host=kube.service_cluster_ip(namespace, rendezvous_name(name)) if needs_rendezvous(job.spec)
        else None,
        has_claim=_claim_exists(kube, job),
        refusal=memory.refusal,
    )


def _reconcile_job(shared: OperatorMemory, memory: JobMemory, namespace: str, name: str) -> None:
    """Read everything, plan, write status first, then act (so a crash in between re-plans the same)."""
    kube = shared.kube
    raw = kube.get_job(namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return
    now = datetime.now(UTC)
    created = datetime.fromisoformat(raw["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    job, errors = validate_document({k: v for k, v in raw.items() if k != "status"}, now=created)
    if job is None:
        _mark_invalid(kube, raw, [str(e) for e in errors], now)
        RECONCILES.labels("invalid").inc()
        return
    job.status = _status_of(raw)
    plan = plan_reconcile(job, _observe(shared, memory, job, raw, now, created), decide_size)
    if plan.ended_by is not None:
        log.debug("%s/%s: the %s stage ended the pass: %s", namespace, name, *plan.ended_by)
    if plan.status != job.status:  # an unchanged status (a finished job's, say) is not written again
        kube.patch_job_status(namespace, name, raw["metadata"]["resourceVersion"],
                              plan.status.model_dump(by_alias=True, mode="json"))
    if _create(kube, memory, plan.create, now) and plan.launches is not None:
        kube.mark_launched(namespace, name, plan.launches)
    for pod_name in plan.delete:
        kube.delete_pod(namespace, pod_name)
    for event in plan.events:
        kopf.event(kopf.Body(cast(kopf.RawBody, raw)), type=event.type, reason=event.reason, message=event.message)
    if plan.status.phase in ("Succeeded", "Failed"):
        memory.forget_run()
    RECONCILES.labels("ok").inc()


def _create(kube: Kube, memory: JobMemory, manifests: list[Manifest], now: datetime) -> bool:
    """Create the planned children; a refusal stops this look's creates and is remembered (with its
    backoff) for the planner to show and retry. Creates that go through clear it. True if all went through."""
    for manifest in manifests:
        try:
            kube.create(manifest)
        except Refused as refused:
            attempts = memory.refusal.attempts + 1 if memory.refusal is not None else 1
            memory.refusal = CreateRefusal(str(refused), attempts, now + timedelta(seconds=backoff_s(attempts)))
            log.info("create refused (attempt %d): %s", attempts, refused)
            return False
    if manifests:
        memory.refusal = None
    return True


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # The state every job's look shares, made once: every object's memo is a shallow copy of this one.
    memo.update(operator_memo(Kube(pooled_client(MAX_WORKERS))))
    # Progress and diff-base in annotations: the CRD's status schema stays fully declared (no
    # preserve-unknown-fields) and nothing of kopf's leaks into `kubectl get ftj -o yaml` status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="elasticft.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="elasticft.io", key="last-handled-configuration")
    # Children go with the job through owner references; kopf's own finalizer (for its timers) is
    # named after this project so `kubectl get -o yaml` says whose it is.
    settings.persistence.finalizer = "elasticft.io/finalizer"
    # Every watch request asks the API server to end it after 5 minutes (its own default is a random
    # 30-60 min), and the client gives up 30 s later if the server did not: a connection that died
    # without a FIN (a NAT or load balancer dropping it) is noticed within minutes, not never, and
    # kopf re-lists and re-watches. Changes are not lost meanwhile: the per-job timer reconciles anyway.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Events are posted by the reconciler itself (kopf.event); kopf's own only for warnings.
    settings.posting.level = logging.WARNING
    # The handlers are sync and mostly wait on I/O (API calls, a worker scrape of up to 1 s,
    # Prometheus), so threads, not cores, bound how many jobs are looked at at once: 200 jobs on a 5 s
    # timer with a reconcile p50 of 0.15 s (bench/results/operator_scale.json) need ~6 busy threads on
    # average, and 32 leave room for bursts (every job's first look, slow scrapes) while capping the API
    # connections kept open (the pool above has as many) and the memory of idle threads.
    settings.execution.max_workers = MAX_WORKERS


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_change(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    reconcile_job(namespace or "default", name, memo)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL_S)
def on_timer(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    reconcile_job(namespace or "default", name, memo)
