"""kopf handlers: thin. Each reads the world, asks `plan_reconcile`, and carries out the plan.

The same `reconcile_job` runs on create, resume (operator restart), spec update and on a timer; it
re-reads the job from the API each time and keeps nothing but caches in memory, so it is safe to
re-run at any moment and an operator restart mid-job changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
from prometheus_client import Counter, Histogram

from elasticft.api.models import GROUP, PLURAL, VERSION, FineTuneJob, FineTuneJobStatus
from elasticft.api.validation import validate_document
from elasticft.controller.builders import JobRef, checkpoint_claim, needs_rendezvous
from elasticft.controller.kube import Conflict, Kube, Manifest, Refused, pooled_client
from elasticft.controller.names import ROLE_WORKER, job_selector, rendezvous_name
from elasticft.controller.observe import node_view, pod_view
from elasticft.controller.reconcile import CreateRefusal, Measurement, Observed, backoff_s, plan_reconcile
from elasticft.controller.sizing import decide_size
from elasticft.controller.status import Prices, condition_is, set_condition
from elasticft.signals import prometheus as prometheus_source
from elasticft.signals.prices import prices_from_configmap, prices_from_values, static_prices
from elasticft.signals.throughput import StepRate
from elasticft.signals.worker_metrics import scrape_worker

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

# Soft state only: rates need two readings, and the node list is shared by every job's look.
_step_rates: dict[str, StepRate] = {}
_fallbacks: dict[str, str | None] = {}  # per job: why its Prometheus reading was last set aside
_refusals: dict[str, CreateRefusal] = {}  # per job: the last create refused, until one succeeds
_nodes_cache: tuple[float, list[Manifest]] | None = None
_nodes_refresh = threading.Lock()
_kube: Kube | None = None
_job_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube(pooled_client(MAX_WORKERS))
    return _kube


def _nodes() -> list[Manifest]:
    """The node list, at most NODE_CACHE_S old. One thread refreshes it; the others meanwhile use the
    previous list rather than all listing the nodes at once (only the very first look waits)."""
    global _nodes_cache
    cached = _nodes_cache
    if cached is not None and time.monotonic() - cached[0] <= NODE_CACHE_S:
        return cached[1]
    if not _nodes_refresh.acquire(blocking=cached is None):
        assert cached is not None
        return cached[1]
    try:
        current = _nodes_cache
        if current is cached:  # nobody refreshed it while this thread waited for the lock
            current = _nodes_cache = (time.monotonic(), kube().list_nodes())
        assert current is not None
        return current[1]
    finally:
        _nodes_refresh.release()


def _status_of(raw: Manifest) -> FineTuneJobStatus:
    """The stored status, ignoring fields this version does not know (an older operator's)."""
    stored = raw.get("status") or {}
    known = {f.alias or name for name, f in FineTuneJobStatus.model_fields.items()}
    return FineTuneJobStatus.model_validate({k: v for k, v in stored.items() if k in known})


def _prices(job: FineTuneJob) -> Prices:
    spec, namespace = job.spec, job.metadata.namespace or "default"
    fallback = static_prices(spec)
    pricing = spec.capacity.pricing
    if pricing.source == "ConfigMap" and pricing.config_map_name:
        data = kube().config_map_data(namespace, pricing.config_map_name)
        return prices_from_configmap(data, fallback) if data is not None else fallback
    if pricing.source == "Prometheus" and spec.metrics.prometheus_url and pricing.spot_query \
            and pricing.on_demand_query:
        spot, on_demand = prometheus_source.read_prices(
            spec.metrics.prometheus_url, pricing.spot_query, pricing.on_demand_query)
        return prices_from_values(spot, on_demand, fallback)
    return fallback


def _measure(job: FineTuneJob, status: FineTuneJobStatus, pods: list[Manifest], uid: str) -> Measurement:
    """Throughput, step, loss, checkpoint: from Prometheus when the job names one, else (or when
    Prometheus has nothing for the job) by scraping a worker."""
    spec, namespace, name = job.spec, job.metadata.namespace or "default", job.metadata.name
    views = sorted((pod_view(p) for p in pods), key=lambda v: v.index)
    current = [v for v in views if v.role == ROLE_WORKER and v.world == status.generation]
    if spec.metrics.prometheus_url:
        window = prometheus_source.world_rate_window([v.ready_since for v in current], datetime.now(UTC))
        reading = prometheus_source.read_job(spec.metrics.prometheus_url, name, namespace, window)
        from_prometheus = Measurement(step=reading.step, total_steps=reading.total_steps,
                                      samples_per_second=reading.samples_per_second, loss=reading.loss,
                                      checkpoint_step=reading.checkpoint_step)
        missing = "nothing" if reading.empty else "no rate" if window and reading.samples_per_second is None else None
        _note_source(uid, f"Prometheus at {spec.metrics.prometheus_url} has {missing} for {namespace}/{name}; "
                     "scraping the workers directly" if missing else None)
        if missing is None:
            return from_prometheus
    else:
        from_prometheus = Measurement()
    for view in current:
        # Only a ready worker (its /healthz says training started) reports a step worth timing: before
        # its checkpoint is loaded the step gauge still reads 0.
        if view.pod_ip and view.ready:
            metrics = scrape_worker(view.pod_ip, spec.metrics.port)
            if metrics is None or metrics.step is None:
                continue
            rate = _step_rates.setdefault(uid, StepRate(spec.global_batch_size))
            sps = rate.add(status.generation, time.monotonic(), metrics.step)
            return Measurement(step=metrics.step, total_steps=metrics.total_steps, samples_per_second=sps,
                               loss=metrics.loss, checkpoint_step=metrics.checkpoint_step,
                               checkpoint_rejected_step=metrics.checkpoint_rejected_step)
    return from_prometheus


def _note_source(uid: str, fallback: str | None) -> None:
    """Log when a job's measurement falls back from Prometheus to the direct scrape, and back: once
    per change, not at every look."""
    if _fallbacks.get(uid) == fallback:
        return
    if fallback is not None:
        log.info("%s", fallback)
    elif uid in _fallbacks:
        log.info("Prometheus measures job %s again", uid)
    _fallbacks[uid] = fallback


def _claim_exists(job: FineTuneJob) -> bool:
    claim = checkpoint_claim(JobRef(job.metadata.name, job.metadata.namespace or "default", ""), job.spec)
    return claim is None or kube().claim_exists(claim["metadata"]["namespace"], claim["metadata"]["name"])


def _mark_invalid(raw: Manifest, messages: list[str], now: datetime) -> None:
    status = _status_of(raw)
    message = "; ".join(messages)
    generation = int(raw["metadata"].get("generation", 0))
    if condition_is(status, "Valid", "False") and any(c.message == message for c in status.conditions):
        return  # already said: no event storm, no retry storm
    set_condition(status, "Valid", False, "InvalidSpec", message, now, generation)
    status.observed_generation = generation
    meta = raw["metadata"]
    kube().patch_job_status(meta["namespace"], meta["name"], meta["resourceVersion"],
                            status.model_dump(by_alias=True, mode="json"))
    kopf.event(kopf.Body(cast(kopf.RawBody, raw)), type="Warning", reason="InvalidSpec", message=message)


def reconcile_job(namespace: str, name: str) -> None:
    """One reconcile at a time per job: kopf runs timers beside event handlers, and two looks at once
    would only make one of them lose the resourceVersion race."""
    with _job_locks[(namespace, name)], RECONCILE_SECONDS.time():
        for _ in range(CONFLICT_RETRIES):
            try:
                _reconcile_job(namespace, name)
                return
            except Conflict:
                RECONCILES.labels("conflict").inc()
        log.info("%s/%s changed under %d looks in a row; the next timer looks again", namespace, name,
                 CONFLICT_RETRIES)


def _reconcile_job(namespace: str, name: str) -> None:
    """Read everything, plan, write status first, then act (so a crash in between re-plans the same)."""
    raw = kube().get_job(namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return
    now = datetime.now(UTC)
    created = datetime.fromisoformat(raw["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    job, errors = validate_document({k: v for k, v in raw.items() if k != "status"}, now=created)
    if job is None:
        _mark_invalid(raw, [str(e) for e in errors], now)
        RECONCILES.labels("invalid").inc()
        return
    job.status = _status_of(raw)
    uid = raw["metadata"]["uid"]
    pods = kube().list_pods(namespace, job_selector(name))
    nodes = [node_view(n) for n in _nodes()]
    terminating = {n.name for n in nodes if n.terminating}
    observed = Observed(
        now=now,
        created=created,
        pods=[pod_view(p, terminating) for p in pods],
        nodes=nodes,
        measurement=_measure(job, job.status, pods, uid),
        prices=_prices(job),
        rendezvous_host=kube().service_cluster_ip(namespace, rendezvous_name(name)) if needs_rendezvous(job.spec)
        else None,
        has_claim=_claim_exists(job),
        refusal=_refusals.get(uid),
    )
    plan = plan_reconcile(job, observed, decide_size)
    if plan.status != job.status:  # an unchanged status (a finished job's, say) is not written again
        kube().patch_job_status(namespace, name, raw["metadata"]["resourceVersion"],
                                plan.status.model_dump(by_alias=True, mode="json"))
    _create(uid, plan.create, now)
    for pod_name in plan.delete:
        kube().delete_pod(namespace, pod_name)
    for event in plan.events:
        kopf.event(kopf.Body(cast(kopf.RawBody, raw)), type=event.type, reason=event.reason, message=event.message)
    if plan.status.phase in ("Succeeded", "Failed"):
        _step_rates.pop(uid, None)
        _fallbacks.pop(uid, None)
        _refusals.pop(uid, None)
    RECONCILES.labels("ok").inc()


def _create(uid: str, manifests: list[Manifest], now: datetime) -> None:
    """Create the planned children; a refusal stops this look's creates and is remembered (with its
    backoff) for the planner to show and retry. Creates that go through clear it."""
    for manifest in manifests:
        try:
            kube().create(manifest)
        except Refused as refused:
            attempts = _refusals[uid].attempts + 1 if uid in _refusals else 1
            _refusals[uid] = CreateRefusal(str(refused), attempts, now + timedelta(seconds=backoff_s(attempts)))
            log.info("create refused (attempt %d): %s", attempts, refused)
            return
    if manifests:
        _refusals.pop(uid, None)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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
def on_change(namespace: str | None, name: str, **_: Any) -> None:
    reconcile_job(namespace or "default", name)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL_S)
def on_timer(namespace: str | None, name: str, **_: Any) -> None:
    reconcile_job(namespace or "default", name)
