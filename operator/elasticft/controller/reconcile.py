"""The reconciler's brain: from a job, what is observed and a sizing policy, to a plan of actions.

Pure: `plan_reconcile` reads plain data and returns the pods to create and delete, the new status
and the events to post. The kopf handlers only gather the inputs and carry out the plan, so an
operator restart at any point re-derives the same plan from what the API holds.

A job runs as a sequence of *worlds*: fixed-size torchrun worlds. Every membership change (scale up
or down, preemption, failure, resume after suspend) drains the current world — SIGTERM makes every
rank stop after the same step and write an emergency checkpoint — and then starts the next world
from that checkpoint. No world ever waits for a lost member. On the wire a world keeps its first
name, generation: `status.generation`, `status.launchedGeneration`, the pods' `elasticft.io/generation`
label and `-gN-` in their names, and the "generation N" of conditions and events (docs/worlds.md).
Kubernetes' own `metadata.generation` is called the spec generation here (`status.observedGeneration`).

One pass takes a `Snapshot` of what was observed, then runs the named `STAGES` in order; each either
ends the pass (it returns why) or hands on (None), and `ReconcilePlan.ended_by` says which ended it:

 1. finished     a finished job only loses its leftover pods
 2. cost         accrue what the running workers cost
 3. complete     a worker reported all steps done
 4. measure      record step, loss and checkpoints
 5. suspend      drain on spec.suspend (and say when it is lifted)
 6. children     checkpoint claim, rendezvous pod and Service
 7. spot         how many spot workers the cluster can take
 8. first world  start the first world, or the first after a suspend
 9. drain        earlier worlds drain before the current one launches
10. recover      a broken world ends and the next is sized
11. launch       create the current world's pods once its time has come and its store serves
12. readiness    count ready workers, Running once all are, throughput and progress
13. resize       ask the policy; a new size starts a new world
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from elasticft.api.durations import parse_duration
from elasticft.api.models import FineTuneJob, FineTuneJobSpec, FineTuneJobStatus, Phase
from elasticft.api.validation import feasible_world_sizes
from elasticft.controller.builders import (
    JobRef,
    Manifest,
    WorkerPlacement,
    checkpoint_claim,
    checkpoint_dir,
    needs_rendezvous,
    rendezvous_pod,
    rendezvous_service,
    worker_pod,
)
from elasticft.controller.names import (
    ON_DEMAND,
    RENDEZVOUS_PORT,
    ROLE_RENDEZVOUS,
    ROLE_WORKER,
    SPOT,
    rendezvous_name,
    worker_name,
)
from elasticft.controller.observe import NodeView, PodView, matching_nodes
from elasticft.controller.status import (
    accrue_cost,
    deadline_of,
    observe_spot,
    record_throughput,
    set_condition,
    update_progress,
    workers_summary,
)
from elasticft.types import Prices, Size

# A spot pod unschedulable this long means the spot pool has no room for it.
UNSCHEDULABLE_GRACE = timedelta(seconds=15)
# Spot workers of a size that could not all be scheduled twice within this long (nodes that look free
# but cannot take the pod: too small, a selector no node matches) are not offered again until it has
# passed since the last time: one retry per period, not a 1→0→1 cycle at every look. Once is not enough
# to remember: a pool busy with other pods for a moment would keep the job off spot for no reason.
UNSCHEDULABLE_MEMORY = timedelta(minutes=10)
# Names of the pods already counted as preempted (a pod is seen over several looks), newest last.
PREEMPTED_PODS_KEPT = 64
# Waiting reasons after which a container does not start without a change by the user.
CANNOT_START = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                          "CreateContainerError", "RunContainerError", "CrashLoopBackOff"})
# Failures back off exponentially between worlds, capped.
FAILURE_BACKOFF_BASE_S = 5.0
FAILURE_BACKOFF_MAX_S = 300.0

TERMINAL = (Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class Measurement:
    """What the workers report right now (None where unknown)."""

    step: int | None = None
    total_steps: int | None = None
    samples_per_second: float | None = None
    loss: float | None = None
    checkpoint_step: int | None = None
    checkpoint_rejected_step: int | None = None


@dataclass(frozen=True)
class CreateRefusal:
    """The API server refused to create a child (403 from a ResourceQuota or an admission webhook, 422):
    its message, how many looks in a row were refused, and when the next attempt is due."""

    message: str
    attempts: int
    retry_at: datetime


@dataclass(frozen=True)
class Observed:
    now: datetime
    created: datetime
    pods: list[PodView]
    nodes: list[NodeView]
    measurement: Measurement
    prices: Prices
    rendezvous_host: str | None = None  # the rendezvous Service's clusterIP, once it exists
    has_claim: bool = False  # the checkpoint claim the operator creates exists
    refusal: CreateRefusal | None = None  # the last create the API server refused, until one succeeds


@dataclass(frozen=True)
class SizingRequest:
    """Everything the sizing policy may use; built here, answered by `elasticft.controller.sizing`."""

    spec: FineTuneJobSpec
    status: FineTuneJobStatus
    now: datetime
    deadline: datetime | None
    prices: Prices
    current: Size
    spot_available: int | None
    feasible_sizes: list[int]
    recent_preemption: bool


@dataclass(frozen=True)
class SizeDecision:
    size: Size
    reason: str


Decide = Callable[[SizingRequest], SizeDecision]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class ReconcilePlan:
    """What one reconcile pass decided: children to create and delete, the status to write, events to
    post, and which stage ended the pass and why (`ended_by`, logged by the operator at debug level)."""

    status: FineTuneJobStatus
    create: list[Manifest] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ended_by: tuple[str, str] | None = None  # (stage, why)
    # The world these creates complete: once every one of them is created, the shell records it as
    # launched at once (Kube.mark_launched), so a pod taken before the next look counts as lost.
    launches: int | None = None

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))


@dataclass(frozen=True)
class Snapshot:
    """What one pass observed, taken once before any stage runs: the stages read it, none re-derives it."""

    job: FineTuneJob
    observed: Observed
    ref: JobRef
    spec_generation: int  # Kubernetes' metadata.generation: the API server bumps it on every spec edit
    spec_changed: bool  # the spec was edited since the last pass wrote status.observedGeneration
    world: int  # the current world (status.generation on the wire)
    launched: bool  # every pod of the current world was created once
    workers: tuple[PodView, ...]
    current: tuple[PodView, ...]  # the current world's workers
    old: tuple[PodView, ...]  # workers of earlier worlds, draining
    rendezvous_pods: tuple[PodView, ...]
    rendezvous: PodView | None  # the rendezvous pod, once it exists
    with_rendezvous: bool
    rendezvous_lost: bool
    deadline: datetime | None
    ready_timeout: timedelta
    feasible_sizes: tuple[int, ...]

    @property
    def spec(self) -> FineTuneJobSpec:
        return self.job.spec

    @property
    def now(self) -> datetime:
        return self.observed.now

    @property
    def pods(self) -> tuple[PodView, ...]:
        return self.workers + self.rendezvous_pods


def take_snapshot(job: FineTuneJob, observed: Observed) -> Snapshot:
    status = job.status or FineTuneJobStatus()
    spec_generation = int(getattr(job.metadata, "generation", 0) or 0)
    ref = JobRef(job.metadata.name, job.metadata.namespace or "default", str(getattr(job.metadata, "uid", "")))
    workers = tuple(p for p in observed.pods if p.role == ROLE_WORKER)
    rendezvous_pods = tuple(p for p in observed.pods if p.role == ROLE_RENDEZVOUS)
    rendezvous = next((p for p in rendezvous_pods if p.name == rendezvous_name(ref.name)), None)
    with_rendezvous = needs_rendezvous(job.spec)
    world = status.generation
    return Snapshot(
        job=job, observed=observed, ref=ref, spec_generation=spec_generation,
        spec_changed=status.observed_generation not in (0, spec_generation),
        world=world, launched=status.launched_generation == world, workers=workers,
        current=tuple(p for p in workers if p.world == world), old=tuple(p for p in workers if p.world != world),
        rendezvous_pods=rendezvous_pods, rendezvous=rendezvous, with_rendezvous=with_rendezvous,
        rendezvous_lost=with_rendezvous and (rendezvous is None or rendezvous.terminated or rendezvous.disrupted),
        deadline=deadline_of(job.spec, observed.created),
        ready_timeout=timedelta(seconds=parse_duration(job.spec.elastic.ready_timeout)),
        feasible_sizes=tuple(feasible_world_sizes(job.spec)),
    )


@dataclass
class _Pass:
    """One reconcile pass in progress: the snapshot, the plan being written, and the sizing policy."""

    snap: Snapshot
    plan: ReconcilePlan
    decide: Decide
    spot_available: int | None = None  # set by the "spot" stage

    @property
    def status(self) -> FineTuneJobStatus:
        return self.plan.status

    def size(self, recent_preemption: bool) -> SizeDecision:
        s = self.snap
        return self.decide(SizingRequest(
            spec=s.spec, status=self.status, now=s.now, deadline=s.deadline, prices=s.observed.prices,
            current=_current_size(self.status), spot_available=self.spot_available,
            feasible_sizes=list(s.feasible_sizes), recent_preemption=recent_preemption,
        ))

    def condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        set_condition(self.status, kind, ok, reason, message, self.snap.now, self.snap.spec_generation)


# ---- Outcomes: the conditions and events of each, in one place. ----

def _say_valid(p: _Pass) -> None:
    p.condition("Valid", True, "SpecValid", "spec passed validation")


def _say_completed(p: _Pass, message: str) -> None:
    p.condition("Complete", True, "TrainingComplete", message)
    p.condition("Progressing", False, "TrainingComplete", message)
    p.condition("Ready", False, "TrainingComplete", "workers released")
    p.plan.event("Completed", f"{message}; checkpoint kept at {p.status.last_checkpoint.path or 'the job volume'}")


def _say_suspended(p: _Pass, newly: bool) -> None:
    if newly:
        p.plan.event("Suspended", f"suspend requested: stopping {len(p.snap.workers)} workers after a checkpoint")
    p.condition("Suspended", True, "SuspendRequested", "spec.suspend is true")
    p.condition("Progressing", False, "Suspended", "workers stopped")


def _say_resumed(p: _Pass) -> None:
    p.condition("Suspended", False, "Resumed", "spec.suspend is false")
    p.plan.event("Resumed", "suspend lifted: a new generation resumes from the latest checkpoint")


def _say_started(p: _Pass, decision: SizeDecision) -> None:
    p.plan.event("Started", f"generation {p.status.generation}: {decision.size} workers: {decision.reason}")
    p.condition("Progressing", True, "Starting", decision.reason)


def _say_failed(p: _Pass, message: str) -> None:
    p.condition("Failed", True, "MaxRestartsExceeded", message)
    p.condition("Progressing", False, "Failed", message)
    p.plan.event("Failed", message, warning=True)


def _say_recovering(p: _Pass, decision: SizeDecision, cause: str) -> None:
    p.plan.event("Recovering", f"generation {p.status.generation}: {decision.size} workers after {cause}: "
                 f"{decision.reason}")
    p.condition("Ready", False, "Recovering", f"generation {p.snap.world} ended: {cause}")


def _say_training(p: _Pass, ready: int) -> None:
    p.condition("Ready", True, "WorkersReady", f"{ready} workers ready")
    p.condition("Progressing", True, "Training", f"generation {p.snap.world} training")


def _say_stuck(p: _Pass, reason: str, world: int, detail: str) -> None:
    """Say that world `world` is stuck: in the Ready condition at every look, as an Event once (the
    condition, not memory, remembers that it was said, so an operator restart is silent)."""
    prefix = f"generation {world}: "  # the user-facing text calls a world by its wire name
    said = any(c.type == "Ready" and c.reason == reason and c.message.startswith(prefix)
               for c in p.status.conditions)
    p.condition("Ready", False, reason, prefix + detail)
    if not said:
        p.plan.event(reason, prefix + detail, warning=True)


# ---- The pipeline. ----

def plan_reconcile(job: FineTuneJob, observed: Observed, decide: Decide) -> ReconcilePlan:
    """The whole reconcile decision for one job at one moment (see the module docstring)."""
    snap = take_snapshot(job, observed)
    p = _Pass(snap, ReconcilePlan(status=(job.status or FineTuneJobStatus()).model_copy(deep=True)), decide)
    _begin(p)
    for name, stage in STAGES:
        why = stage(p)
        if why is not None:
            p.plan.ended_by = (name, why)
            break
    if observed.refusal is not None and p.plan.create and p.status.phase not in TERMINAL:
        _hold_refused_creates(p, observed.refusal)
    return p.plan


def _begin(p: _Pass) -> None:
    """What every pass writes, whatever ends it: the spec seen, where checkpoints go, the step count."""
    s, status = p.snap, p.status
    status.observed_generation = s.spec_generation
    _say_valid(p)
    status.last_checkpoint.path = checkpoint_dir(s.ref)
    status.start_time = status.start_time or s.now
    status.total_steps = s.spec.total_steps or s.observed.measurement.total_steps or status.total_steps


def _leave_finished(p: _Pass) -> str | None:
    """1. A finished job only loses its leftover pods; its status (cost included) stays as it ended."""
    if p.status.phase not in TERMINAL:
        return None
    _release_workers(p)
    return "the job has ended: leftover pods deleted"


def _accrue_cost(p: _Pass) -> str | None:
    """2. What the running workers cost since the last pass."""
    running = [w for w in p.snap.workers if w.phase == "Running"]
    rate = p.snap.observed.prices.rate(sum(w.on_spot for w in running), sum(not w.on_spot for w in running))
    accrue_cost(p.status, p.snap.now, rate)
    return None


def _complete(p: _Pass) -> str | None:
    """3. Completion: any worker whose trainer reports all steps done."""
    done = [w for w in p.snap.workers if w.summary and w.summary.completed]
    if not done:
        return None
    status = p.status
    status.phase = Phase.SUCCEEDED
    status.step = max(w.summary.step for w in done if w.summary)
    status.last_checkpoint.step = status.step
    status.progress = "100%"
    loss = next((w.summary.loss for w in done if w.summary and w.summary.loss is not None), None)
    status.loss = loss if loss is not None else status.loss
    message = f"trained {status.step} steps" + (f", final loss {loss:.4f}" if loss is not None else "")
    _say_completed(p, message)
    _release_workers(p)
    return message


def _measure(p: _Pass) -> str | None:
    """4. Step, loss and checkpoints as the workers report them."""
    _record_measurement(p.plan, p.snap.observed.measurement, p.snap.now)
    return None


def _suspend(p: _Pass) -> str | None:
    """5. Suspend: drain everything (the trainer checkpoints on SIGTERM), keep the rendezvous for resume."""
    status = p.status
    if not p.snap.spec.suspend:
        if status.phase == Phase.SUSPENDED:
            _say_resumed(p)  # the "first world" stage starts the world it resumes in
        return None
    p.plan.delete += [w.name for w in p.snap.workers if not w.deleting]
    newly = status.phase != Phase.SUSPENDED
    status.phase = Phase.SUSPENDED
    status.workers.ready = 0
    status.throughput.current = 0.0
    _say_suspended(p, newly)
    return "spec.suspend is true"


def _ensure_children(p: _Pass) -> str | None:
    """6. Children that live for the whole job: checkpoint claim, rendezvous pod and Service."""
    s, plan = p.snap, p.plan
    claim = checkpoint_claim(s.ref, s.spec)
    if claim is not None and not s.observed.has_claim:
        plan.create.append(claim)
    if s.with_rendezvous and s.observed.rendezvous_host is None:
        plan.create.append(rendezvous_service(s.ref))
    if s.with_rendezvous and s.rendezvous is None:
        plan.create.append(rendezvous_pod(s.ref, s.spec))
    elif s.rendezvous is not None and s.rendezvous_lost and not s.rendezvous.deleting:
        plan.delete.append(s.rendezvous.name)  # it is recreated, on healthy capacity, once it is gone
    return None


def _observe_spot(p: _Pass) -> str | None:
    """7. How many spot workers the cluster can take now (remembered in status.spot)."""
    p.spot_available = spot_available(p.snap.spec, p.status, p.snap.observed, p.snap.world)
    observe_spot(p.status, p.spot_available, p.snap.now)
    return None


def _start_first_world(p: _Pass) -> str | None:
    """8. The first world, or the first after a suspend."""
    if p.snap.world != 0 and p.status.phase != Phase.SUSPENDED:
        return None
    decision = p.size(recent_preemption=False)
    _start_world(p, decision, Phase.PENDING)
    _say_started(p, decision)
    return f"world {p.status.generation} decided: {decision.size} workers"


def _drain_old_worlds(p: _Pass) -> str | None:
    """9. Old worlds drain before the next starts, so its resume sees their emergency checkpoint. A
    reclaim that hits one of them while it drains is a preemption all the same (the operator's own
    deletion of it is not: only a DisruptionTarget or a reclaimed node counts there)."""
    old = p.snap.old
    if not old:
        return None
    new = _count_preemptions(p.status, [w.name for w in old if w.disruption is not None])
    if new:
        p.plan.event("Preempted", "; ".join(f"{w.name} on {w.node_name} preempted while draining ({w.disruption})"
                                            for w in old if w.name in new), warning=True)
    p.plan.delete += [w.name for w in old if not w.deleting]
    return f"waiting for {len(old)} workers of earlier worlds to drain"


@dataclass(frozen=True)
class _Breakage:
    """How the current world broke, if it did."""

    preempted: list[PodView]
    vanished: dict[str, str]  # pod name -> the capacity it vanished from
    failed: list[PodView]
    stopped: list[PodView]
    interrupted: bool  # the rendezvous store was lost under a launched world

    def __bool__(self) -> bool:
        return bool(self.preempted or self.vanished or self.failed or self.stopped or self.interrupted)

    @property
    def cause(self) -> str:
        return _cause(self.preempted, self.vanished, self.failed, self.stopped, self.interrupted)


def _what_broke(s: Snapshot, status: FineTuneJobStatus) -> _Breakage:
    present = {w.name for w in s.current}
    missing = [i for i in range(status.workers.desired) if worker_name(s.ref.name, s.world, i) not in present]
    kinds = [placement.capacity_type for placement in _placements(s.world, _current_size(status))]
    # A launched pod that is gone was taken from outside the job (reclaimed, deleted, its node lost), on
    # either capacity: a preemption, as a deleted pod is (PodView.preemption).
    vanished = {worker_name(s.ref.name, s.world, i): kinds[i] for i in missing if s.launched}
    interrupted = s.launched and bool(s.current) and s.rendezvous_lost
    return _Breakage(
        preempted=[w for w in s.current if w.disrupted],
        vanished=vanished,
        # Workers that lose their store fail; that is the rendezvous' loss, not theirs.
        failed=[] if interrupted else [w for w in s.current if w.failed],
        stopped=[w for w in s.current if w.terminated and not w.failed and not w.disrupted],
        interrupted=interrupted,
    )


def _recover(p: _Pass) -> str | None:
    """10. A broken world (a preemption, a vanished pod, a failure, an unasked exit, the store's loss)
    ends: its pods are deleted and a new world, sized by the policy, resumes from the checkpoint."""
    s, status = p.snap, p.status
    broken = _what_broke(s, status)
    if not broken:
        return None
    cause = broken.cause
    if broken.interrupted:
        where = f" on {s.rendezvous.node_name}" if s.rendezvous is not None and s.rendezvous.node_name else ""
        p.plan.event("RendezvousLost", f"rendezvous pod{where} lost; restarting the world from the emergency "
                     "checkpoint with a new store", warning=True)
    if broken.failed and _spend_restart(p, broken.failed):
        return f"maxRestarts={s.spec.elastic.max_restarts} exhausted"
    if _count_preemptions(status, [w.name for w in broken.preempted] + list(broken.vanished)):
        where = "; ".join([f"{w.name} on {w.node_name} preempted ({w.preemption})" for w in broken.preempted]
                          + [f"{name} vanished from {kind} capacity" for name, kind in broken.vanished.items()])
        p.plan.event("Preempted", f"{where}; resuming from the emergency checkpoint", warning=True)
    if broken.stopped and not (broken.preempted or broken.vanished or broken.failed or broken.interrupted):
        p.plan.event("WorkersStopped", f"{cause}; the generation is restarted without them", warning=True)
    decision = p.size(recent_preemption=bool(broken.preempted or broken.vanished))
    _start_world(p, decision, Phase.RECOVERING)
    if broken.failed:
        # The next world starts after the backoff. last_rescale_time moves with it: the policy's cooldown
        # and the measured restart overhead count from when the world may start, not from the failure.
        status.launch_not_before = status.last_rescale_time = s.now + timedelta(seconds=backoff_s(status.restarts))
    status.rescales += 1
    _say_recovering(p, decision, cause)
    p.plan.delete += [w.name for w in s.current if not w.deleting]
    return f"world {s.world} ended: {cause}"


def _spend_restart(p: _Pass, failed: list[PodView]) -> bool:
    """Count a failure against maxRestarts; True when that exhausted them and the job failed."""
    status, max_restarts = p.status, p.snap.spec.elastic.max_restarts
    status.restarts += 1
    names = ", ".join(w.name for w in failed)
    if status.restarts > max_restarts:
        status.phase = Phase.FAILED
        _say_failed(p, f"worker failures exhausted maxRestarts={max_restarts} (last: {names})")
        _release_workers(p)
        return True
    p.plan.event("WorkerFailed", f"{names} failed (restart {status.restarts}/{max_restarts}); "
                 f"restarting from the latest checkpoint after {backoff_s(status.restarts):.0f} s", warning=True)
    return False


def launch_not_before(status: FineTuneJobStatus) -> datetime | None:
    """When the current world's pods may be created (a failure's backoff). A status written before
    launchNotBefore existed kept that moment in lastRescaleTime, which is read for it then."""
    return status.launch_not_before or status.last_rescale_time


def _launch(p: _Pass) -> str | None:
    """11. Launch (or finish launching) the current world once its start time has come and its store
    serves. The world counts as launched once every pod exists: a create the API refused is retried
    (see _hold_refused_creates), never mistaken for a pod that was lost."""
    s, status = p.snap, p.status
    not_before = launch_not_before(status)
    if not_before and s.now < not_before:
        return f"failure backoff: the world starts in {(not_before - s.now).total_seconds():.0f} s"
    if s.launched:
        return None
    if s.with_rendezvous and s.observed.rendezvous_host is None:
        return "the rendezvous Service was just created; its clusterIP is known on the next look"
    if s.with_rendezvous and (s.rendezvous is None or not s.rendezvous.ready or s.rendezvous_lost):
        _wait_for_rendezvous(p)
        return "waiting for the rendezvous store to be ready"
    endpoint = f"{s.observed.rendezvous_host}:{RENDEZVOUS_PORT}" if s.with_rendezvous else ""
    present = {w.name for w in s.current}
    to_create = [worker_pod(s.ref, s.spec, placement, endpoint)
                 for placement in _placements(s.world, _current_size(status))
                 if worker_name(s.ref.name, s.world, placement.index) not in present]
    if to_create:
        p.plan.create += to_create
        p.plan.launches = s.world
        return f"creating {len(to_create)} worker pods of world {s.world}"
    status.launched_generation = s.world
    return None


def _wait_for_rendezvous(p: _Pass) -> None:
    """Workers started before the store serves fail their c10d connect, and that would be counted
    against maxRestarts: wait for the store's readiness probe (a store being replaced may still be
    ready until it is gone; the new one is the one to wait for). Say so when it takes too long."""
    s, rdzv = p.snap, p.snap.rendezvous
    since = max(t for t in (p.status.last_rescale_time, rdzv.created if rdzv else None, s.observed.created)
                if t is not None)
    blocked = _why_stuck([rdzv] if rdzv is not None else [])
    if blocked is not None:
        _say_stuck(p, blocked[0], s.world, f"{blocked[1]}; the workers wait for the rendezvous")
    elif s.now - since > s.ready_timeout:
        state = rdzv.describe() if rdzv is not None else "not created yet"
        _say_stuck(p, "RendezvousNotReady", s.world,
                   f"rendezvous pod {rendezvous_name(s.ref.name)} not ready after "
                   f"{(s.now - since).total_seconds():.0f} s ({state}); its workers wait for it")


def _track_readiness(p: _Pass) -> str | None:
    """12. How many of the world's workers are ready; Running once all are; throughput and progress."""
    s, status = p.snap, p.status
    ready = sum(w.ready for w in s.current)
    status.workers.ready = ready
    status.workers.summary = workers_summary(ready, status.workers.desired, status.workers.spot,
                                             status.workers.on_demand)
    all_ready = ready == status.workers.desired and status.workers.desired > 0
    if not all_ready and status.phase != Phase.RUNNING:
        _report_not_ready(p, ready)
    if all_ready and status.phase != Phase.RUNNING:
        if status.last_rescale_time is not None and status.generation > 1:
            overhead = (s.now - status.last_rescale_time).total_seconds()
            previous = status.restart_overhead_seconds
            status.restart_overhead_seconds = round(overhead if previous == 0 else (previous + overhead) / 2, 2)
        status.phase = Phase.RUNNING
        _say_training(p, ready)
    if status.phase == Phase.RUNNING and s.observed.measurement.samples_per_second:
        record_throughput(status, status.workers.desired, s.observed.measurement.samples_per_second)
    rate = s.observed.prices.rate(status.workers.spot, status.workers.on_demand)
    update_progress(status, s.spec, s.now, s.deadline, rate)
    return None


def _report_not_ready(p: _Pass, ready: int) -> None:
    """A world that never got all its workers ready (once Running, readiness does not flap: the
    trainer's /healthz stays up until it exits, and an exit ends the world in "recover")."""
    s, desired = p.snap, p.status.workers.desired
    launched_at = min((w.created for w in s.current if w.created is not None), default=None)
    blocked = _why_stuck(list(s.current))
    if blocked is not None:
        _say_stuck(p, blocked[0], s.world, blocked[1])
    elif desired > 0 and launched_at is not None and s.now - launched_at > s.ready_timeout:
        waiting = ", ".join(f"{w.name} {w.describe()}" for w in s.current if not w.ready)
        _say_stuck(p, "GenerationNotReady", s.world,
                   f"{ready}/{desired} workers ready {(s.now - launched_at).total_seconds():.0f} s "
                   f"after launch ({waiting})")


def _resize(p: _Pass) -> str | None:
    """13. Resize when the policy says so (the policy owns hysteresis and the cooldown). Always ends
    the pass."""
    s, status = p.snap, p.status
    stuck_spot = any(w.unschedulable and w.on_spot and w.created and s.now - w.created > UNSCHEDULABLE_GRACE
                     for w in s.current)
    idle = status.workers.desired == 0  # the policy chose to wait for spot: look again every time
    # All steps done: the workers are writing the final checkpoint; never resize under them.
    finishing = status.total_steps > 0 and status.step >= status.total_steps
    if finishing:
        return "all steps done: the workers write the final checkpoint"
    if not (status.phase == Phase.RUNNING or stuck_spot or idle):
        return f"world {s.world} not running yet ({status.workers.ready}/{status.workers.desired} ready)"
    decision = p.size(recent_preemption=False)
    before = _current_size(status)
    if decision.size == before:
        status.last_decision = decision.reason
        return f"size kept: {decision.reason}"
    cause = _resize_cause(s.spec, before, s.spec_changed, stuck_spot)
    _start_world(p, decision, Phase.RESCALING)
    status.rescales += 1
    p.plan.event("Rescaled", f"scaled {before.total}→{decision.size.total} "
                 f"({decision.size.spot} spot + {decision.size.on_demand} on-demand) on {cause}: "
                 f"{decision.reason}")
    p.plan.delete += [w.name for w in s.current if not w.deleting]
    return f"resized to {decision.size} on {cause}"


Stage = Callable[[_Pass], str | None]
# In order; each returns why it ended the pass, or None to hand on. The numbers are the docstrings'.
STAGES: tuple[tuple[str, Stage], ...] = (
    ("finished", _leave_finished),
    ("cost", _accrue_cost),
    ("complete", _complete),
    ("measure", _measure),
    ("suspend", _suspend),
    ("children", _ensure_children),
    ("spot", _observe_spot),
    ("first world", _start_first_world),
    ("drain", _drain_old_worlds),
    ("recover", _recover),
    ("launch", _launch),
    ("readiness", _track_readiness),
    ("resize", _resize),
)


def _placements(world: int, size: Size) -> list[WorkerPlacement]:
    """On-demand workers take the low indices: rank 0 is then the least likely to vanish."""
    kinds = [ON_DEMAND] * size.on_demand + [SPOT] * size.spot
    return [WorkerPlacement(world, i, size.total, kind) for i, kind in enumerate(kinds)]


def _current_size(status: FineTuneJobStatus) -> Size:
    return Size(spot=status.workers.spot, on_demand=status.workers.on_demand)


def _start_world(p: _Pass, decision: SizeDecision, phase: Phase) -> None:
    status, size = p.status, decision.size
    status.generation += 1
    status.workers.desired = size.total
    status.workers.spot = size.spot
    status.workers.on_demand = size.on_demand
    status.workers.ready = 0
    status.workers.summary = workers_summary(0, size.total, size.spot, size.on_demand)
    status.throughput.current = 0.0
    status.last_rescale_time = p.snap.now
    status.launch_not_before = None
    status.last_decision = decision.reason
    status.phase = phase


def _release_workers(p: _Pass) -> None:
    """The job ended: every pod goes, the status keeps what was done."""
    status = p.status
    p.plan.delete += [pod.name for pod in p.snap.pods if not pod.deleting]
    status.completion_time = status.completion_time or p.snap.now
    status.workers.ready = 0
    status.throughput.current = 0.0
    status.eta = None


def _hold_refused_creates(p: _Pass, refusal: CreateRefusal) -> None:
    """A refused create is said (condition and one event) and retried after its backoff. It costs no
    restart and is no preemption: a world is launched only once all its pods exist."""
    wait_s = max((refusal.retry_at - p.snap.now).total_seconds(), 0.0)
    _say_stuck(p, "CreateRefused", p.status.generation,
               f"the API server refused {refusal.message} ({refusal.attempts} attempt"
               f"{'s' if refusal.attempts > 1 else ''}; next in {wait_s:.0f} s)")
    if wait_s > 0:
        p.plan.create = []
        p.plan.launches = None
        if p.plan.ended_by is not None:
            stage, why = p.plan.ended_by
            p.plan.ended_by = (stage, f"{why}; held {wait_s:.0f} s after a refused create")


def spot_available(spec: FineTuneJobSpec, status: FineTuneJobStatus, observed: Observed, world: int) -> int | None:
    """Spot workers the cluster can take now, as far as can be seen: untainted Ready spot nodes not
    hosting a pod marked for disruption (the pods are read fresh, the node list may be seconds old), or —
    when spot pods of this world wait unschedulable — only as many as did get scheduled. That size is
    remembered in status: failing twice within UNSCHEDULABLE_MEMORY, it is not offered again until that
    long after the last failure."""
    if not spec.capacity.spot.enabled:
        return 0
    now, memory = observed.now, status.spot
    if memory.unschedulable_since is not None and now - memory.unschedulable_since > UNSCHEDULABLE_MEMORY:
        memory.unschedulable_workers = memory.unschedulable_since = None
        memory.unschedulable_strikes = 0
    pods = [p for p in observed.pods if p.role == ROLE_WORKER and p.world == world and p.on_spot]
    stuck = [p for p in pods if p.unschedulable and p.created and now - p.created > UNSCHEDULABLE_GRACE]
    if stuck:
        scheduled = sum(1 for p in pods if p.node_name and not p.disrupted)
        first_created = min(p.created for p in stuck if p.created)
        if memory.unschedulable_since is None or memory.unschedulable_since < first_created:
            # a new world's pods failing, not the same failure seen again
            same = memory.unschedulable_workers == scheduled + 1
            memory.unschedulable_strikes = memory.unschedulable_strikes + 1 if same else 1
        memory.unschedulable_workers, memory.unschedulable_since = scheduled + 1, now
        return scheduled
    remembered = memory.unschedulable_workers is not None and memory.unschedulable_strikes >= 2
    ceiling = memory.unschedulable_workers - 1 if remembered and memory.unschedulable_workers else None
    nodes = matching_nodes(observed.nodes, spec.capacity.spot.node_selector)
    if nodes:
        reclaimed = {p.node_name for p in observed.pods if p.disruption is not None}
        usable = sum(1 for n in nodes if n.ready and not n.terminating and n.name not in reclaimed)
        return usable if ceiling is None else min(usable, ceiling)
    return ceiling


def _record_measurement(plan: ReconcilePlan, measurement: Measurement, now: datetime) -> None:
    """Step, loss and checkpoints as the workers report them. The step is the workers' own: after a
    resume it goes back to the step training resumed from, and the steps after it are trained again."""
    status = plan.status
    if measurement.step is not None:
        status.step = measurement.step
    if measurement.loss is not None:
        status.loss = round(measurement.loss, 5)
    if measurement.checkpoint_step is not None and measurement.checkpoint_step != status.last_checkpoint.step:
        status.last_checkpoint.step = measurement.checkpoint_step
        status.last_checkpoint.time = now
    rejected = measurement.checkpoint_rejected_step
    if rejected and rejected != status.last_checkpoint.rejected_step:
        status.last_checkpoint.rejected_step = rejected
        resumed = f"resumed from step {measurement.checkpoint_step}" if measurement.checkpoint_step \
            else "no earlier checkpoint: training restarts from step 0"
        plan.event("CheckpointRejected", f"checkpoint step-{rejected:08d} failed verification or did not load "
                   f"(damaged, or another job's); kept as rejected-step-{rejected:08d} and never tried again; "
                   f"{resumed}", warning=True)


def _why_stuck(pods: list[PodView]) -> tuple[str, str] | None:
    """(reason, message) when a pod waits on something only the user can change: a scheduler that finds
    no node for it, or a container that cannot start."""
    for p in pods:
        if p.unschedulable and not p.deleting:
            return "Unschedulable", f"{p.name} cannot be scheduled: {p.unschedulable_message or 'no node fits'}"
    for p in pods:
        if p.waiting_reason in CANNOT_START:
            detail = f": {p.waiting_message}" if p.waiting_message else ""
            return "ContainerCannotStart", f"{p.name} cannot start ({p.waiting_reason}{detail})"
    return None


def _resize_cause(spec: FineTuneJobSpec, before: Size, spec_changed: bool, stuck_spot: bool) -> str:
    """What moved a running world to another size (preemptions and failures end worlds as Recovering)."""
    elastic = spec.elastic
    if not elastic.min_workers <= before.total <= elastic.max_workers:
        return f"a spec change (elastic: {elastic.min_workers}-{elastic.max_workers} workers)"
    if spec_changed:
        return "a spec change"
    if stuck_spot:
        return "unschedulable spot workers"
    return "the policy's decision"


def _count_preemptions(status: FineTuneJobStatus, pod_names: list[str]) -> list[str]:
    """Count each preempted pod once, however many looks see it; the names counted now."""
    new = [name for name in dict.fromkeys(pod_names) if name not in status.preempted_pods]
    status.preemptions += len(new)
    status.preempted_pods = (status.preempted_pods + new)[-PREEMPTED_PODS_KEPT:]
    return new


def _cause(preempted: list[PodView], vanished: dict[str, str], failed: list[PodView], stopped: list[PodView],
           interrupted: bool) -> str:
    """Why a world ended, as a user reads it in the Recovering event and the Ready condition."""
    causes = [f"{p.name} preempted ({p.preemption})" for p in preempted]
    causes += [f"{name} vanished from {kind} capacity" for name, kind in vanished.items()]
    causes += [f"{p.name} failed (exit {p.exit_code})" for p in failed]
    for p in stopped:
        told = f" after step {p.summary.step} ({p.summary.reason})" if p.summary else ""
        causes.append(f"{p.name} exited {p.exit_code if p.exit_code is not None else 0} without being asked{told}")
    if interrupted:
        causes.insert(0, "the rendezvous store was lost")
    return "; ".join(causes)


def backoff_s(restarts: int) -> float:
    """5 s, 10 s, 20 s, ... capped at 5 min: a crash-looping job does not hammer the cluster."""
    return min(FAILURE_BACKOFF_BASE_S * float(2 ** max(restarts - 1, 0)), FAILURE_BACKOFF_MAX_S)
