"""The reconciler's brain: from a job, what is observed and a sizing policy, to a plan of actions.

Pure: `plan_reconcile` reads plain data and returns the pods to create and delete, the new status
and the events to post. The kopf handlers only gather the inputs and carry out the plan, so an
operator restart at any point re-derives the same plan from what the API holds.

A job runs as *generations*: fixed-size torchrun worlds. Every membership change (scale up or down,
preemption, failure, resume after suspend) drains the current generation — SIGTERM makes every
rank stop after the same step and write an emergency checkpoint — and then starts the next
generation from that checkpoint. No generation ever waits for a lost member.
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
# Failures back off exponentially between generations, capped.
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
class Plan:
    status: FineTuneJobStatus
    create: list[Manifest] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # The world these creates complete: once every one of them is created, the shell records it as
    # launched at once (Kube.mark_launched), so a pod taken before the next look counts as lost.
    launches: int | None = None

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))


def _placements(generation: int, size: Size) -> list[WorkerPlacement]:
    """On-demand workers take the low indices: rank 0 is then the least likely to vanish."""
    kinds = [ON_DEMAND] * size.on_demand + [SPOT] * size.spot
    return [WorkerPlacement(generation, i, size.total, kind) for i, kind in enumerate(kinds)]


def _current_size(status: FineTuneJobStatus) -> Size:
    return Size(spot=status.workers.spot, on_demand=status.workers.on_demand)


def spot_available(spec: FineTuneJobSpec, status: FineTuneJobStatus, observed: Observed, generation: int) -> int | None:
    """Spot workers the cluster can take now, as far as can be seen: untainted Ready spot nodes not
    hosting a pod marked for disruption (the pods are read fresh, the node list may be seconds old), or —
    when spot pods of this generation wait unschedulable — only as many as did get scheduled. That size is
    remembered in status: failing twice within UNSCHEDULABLE_MEMORY, it is not offered again until that
    long after the last failure."""
    if not spec.capacity.spot.enabled:
        return 0
    now, memory = observed.now, status.spot
    if memory.unschedulable_since is not None and now - memory.unschedulable_since > UNSCHEDULABLE_MEMORY:
        memory.unschedulable_workers = memory.unschedulable_since = None
        memory.unschedulable_strikes = 0
    pods = [p for p in observed.pods if p.role == ROLE_WORKER and p.generation == generation and p.on_spot]
    stuck = [p for p in pods if p.unschedulable and p.created and now - p.created > UNSCHEDULABLE_GRACE]
    if stuck:
        scheduled = sum(1 for p in pods if p.node_name and not p.disrupted)
        first_created = min(p.created for p in stuck if p.created)
        if memory.unschedulable_since is None or memory.unschedulable_since < first_created:
            # a new generation's pods failing, not the same failure seen again
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


def _start_generation(plan: Plan, job: FineTuneJob, size: Size, reason: str, now: datetime, phase: Phase) -> None:
    status = plan.status
    status.generation += 1
    status.workers.desired = size.total
    status.workers.spot = size.spot
    status.workers.on_demand = size.on_demand
    status.workers.ready = 0
    status.workers.summary = workers_summary(0, size.total, size.spot, size.on_demand)
    status.throughput.current = 0.0
    status.last_rescale_time = now
    status.last_decision = reason
    status.phase = phase


def _finish(plan: Plan, pods: list[PodView], job: FineTuneJob, now: datetime) -> None:
    plan.delete += [p.name for p in pods if not p.deleting]
    plan.status.completion_time = plan.status.completion_time or now
    plan.status.workers.ready = 0
    plan.status.throughput.current = 0.0
    plan.status.eta = None


def plan_reconcile(job: FineTuneJob, observed: Observed, decide: Decide) -> Plan:
    """The whole reconcile decision for one job at one moment (see the module docstring)."""
    plan = _plan(job, observed, decide)
    if observed.refusal is not None and plan.create and plan.status.phase not in TERMINAL:
        _hold_refused_creates(plan, observed.refusal, observed.now, int(getattr(job.metadata, "generation", 0) or 0))
    return plan


def _hold_refused_creates(plan: Plan, refusal: CreateRefusal, now: datetime, meta_generation: int) -> None:
    """A refused create is said (condition and one event) and retried after its backoff. It costs no
    restart and is no preemption: a world is launched only once all its pods exist."""
    wait_s = max((refusal.retry_at - now).total_seconds(), 0.0)
    _stuck_once(plan, "CreateRefused", plan.status.generation,
                f"the API server refused {refusal.message} ({refusal.attempts} attempt"
                f"{'s' if refusal.attempts > 1 else ''}; next in {wait_s:.0f} s)", now, meta_generation)
    if wait_s > 0:
        plan.create = []
        plan.launches = None


def _plan(job: FineTuneJob, observed: Observed, decide: Decide) -> Plan:
    spec = job.spec
    status = (job.status or FineTuneJobStatus()).model_copy(deep=True)
    plan = Plan(status=status)
    now = observed.now
    meta_generation = int(getattr(job.metadata, "generation", 0) or 0)
    spec_changed = status.observed_generation not in (0, meta_generation)
    status.observed_generation = meta_generation
    set_condition(status, "Valid", True, "SpecValid", "spec passed validation", now, meta_generation)
    ref = JobRef(job.metadata.name, job.metadata.namespace or "default", str(getattr(job.metadata, "uid", "")))
    status.last_checkpoint.path = checkpoint_dir(ref)
    workers = [p for p in observed.pods if p.role == ROLE_WORKER]
    others = [p for p in observed.pods if p.role == ROLE_RENDEZVOUS]
    status.start_time = status.start_time or now
    measurement = observed.measurement
    status.total_steps = spec.total_steps or measurement.total_steps or status.total_steps
    deadline = deadline_of(spec, observed.created)
    ready_timeout = timedelta(seconds=parse_duration(spec.elastic.ready_timeout))

    # A finished job only loses its leftover pods; its status (cost included) stays as it ended.
    if status.phase in TERMINAL:
        _finish(plan, workers + others, job, now)
        return plan

    running = [p for p in workers if p.phase == "Running"]
    accrue_cost(status, now, observed.prices.rate(sum(p.on_spot for p in running),
                                                  sum(not p.on_spot for p in running)))

    # Completion: any worker whose trainer reports all steps done.
    done = [p for p in workers if p.summary and p.summary.completed]
    if done:
        status.phase = Phase.SUCCEEDED
        status.step = max(p.summary.step for p in done if p.summary)
        status.last_checkpoint.step = status.step
        status.progress = "100%"
        loss = next((p.summary.loss for p in done if p.summary and p.summary.loss is not None), None)
        status.loss = loss if loss is not None else status.loss
        message = f"trained {status.step} steps" + (f", final loss {loss:.4f}" if loss is not None else "")
        set_condition(status, "Complete", True, "TrainingComplete", message, now, meta_generation)
        set_condition(status, "Progressing", False, "TrainingComplete", message, now, meta_generation)
        set_condition(status, "Ready", False, "TrainingComplete", "workers released", now, meta_generation)
        plan.event("Completed", f"{message}; checkpoint kept at {status.last_checkpoint.path or 'the job volume'}")
        _finish(plan, workers + others, job, now)
        return plan

    _record_measurement(plan, measurement, now)

    # Suspend: drain everything (the trainer checkpoints on SIGTERM), keep the rendezvous for resume.
    if spec.suspend:
        plan.delete += [p.name for p in workers if not p.deleting]
        if status.phase != Phase.SUSPENDED:
            plan.event("Suspended", f"suspend requested: stopping {len(workers)} workers after a checkpoint")
        status.phase = Phase.SUSPENDED
        status.workers.ready = 0
        status.throughput.current = 0.0
        set_condition(status, "Suspended", True, "SuspendRequested", "spec.suspend is true", now, meta_generation)
        set_condition(status, "Progressing", False, "Suspended", "workers stopped", now, meta_generation)
        return plan
    if status.phase == Phase.SUSPENDED:
        set_condition(status, "Suspended", False, "Resumed", "spec.suspend is false", now, meta_generation)
        plan.event("Resumed", "suspend lifted: a new generation resumes from the latest checkpoint")

    # Children that live for the whole job: checkpoint claim, rendezvous pod and Service.
    claim = checkpoint_claim(ref, spec)
    if claim is not None and not observed.has_claim:
        plan.create.append(claim)
    rdzv = next((p for p in others if p.name == rendezvous_name(ref.name)), None)
    with_rendezvous = needs_rendezvous(spec)
    rendezvous_lost = with_rendezvous and (rdzv is None or rdzv.terminated or rdzv.disrupted)
    if with_rendezvous and observed.rendezvous_host is None:
        plan.create.append(rendezvous_service(ref))
    if with_rendezvous and rdzv is None:
        plan.create.append(rendezvous_pod(ref, spec))
    elif rdzv is not None and rendezvous_lost and not rdzv.deleting:
        plan.delete.append(rdzv.name)  # it is recreated, on healthy capacity, once it is gone

    generation = status.generation
    current = [p for p in workers if p.generation == generation]
    old = [p for p in workers if p.generation != generation]
    sizes = feasible_world_sizes(spec)

    available = spot_available(spec, status, observed, generation)
    observe_spot(status, available, now)

    def sizing(recent_preemption: bool) -> SizeDecision:
        request = SizingRequest(
            spec=spec, status=status, now=now, deadline=deadline, prices=observed.prices,
            current=_current_size(status), spot_available=available,
            feasible_sizes=sizes, recent_preemption=recent_preemption,
        )
        return decide(request)

    # The first generation, or the first after a suspend.
    if generation == 0 or status.phase == Phase.SUSPENDED:
        decision = sizing(recent_preemption=False)
        _start_generation(plan, job, decision.size, decision.reason, now, Phase.PENDING)
        plan.event("Started", f"generation {status.generation}: {decision.size} workers: {decision.reason}")
        set_condition(status, "Progressing", True, "Starting", decision.reason, now, meta_generation)
        return plan

    # Old generations drain before the next starts, so its resume sees their emergency checkpoint. A
    # reclaim that hits one of them while it drains is a preemption all the same (the operator's own
    # deletion of it is not: only a DisruptionTarget or a reclaimed node counts there).
    if old:
        new = _count_preemptions(status, [p.name for p in old if p.disruption is not None])
        if new:
            plan.event("Preempted", "; ".join(f"{p.name} on {p.node_name} preempted while draining ({p.disruption})"
                                              for p in old if p.name in new), warning=True)
        plan.delete += [p.name for p in old if not p.deleting]
        return plan

    # Is the current generation broken?
    launched = status.launched_generation == generation
    present = {p.name for p in current}
    missing = [i for i in range(status.workers.desired) if worker_name(ref.name, generation, i) not in present]
    kinds = [p.capacity_type for p in _placements(generation, _current_size(status))]
    # A launched pod that is gone was taken from outside the job (reclaimed, deleted, its node lost), on
    # either capacity: a preemption, as a deleted pod is (PodView.preemption).
    vanished = {worker_name(ref.name, generation, i): kinds[i] for i in missing if launched}
    preempted = [p for p in current if p.disrupted]
    failed = [p for p in current if p.failed]
    stopped = [p for p in current if p.terminated and not p.failed and not p.disrupted]
    interrupted = launched and bool(current) and rendezvous_lost
    if interrupted:
        # Workers that lose their store fail; that is the rendezvous' loss, not theirs.
        failed = []
        where = f" on {rdzv.node_name}" if rdzv is not None and rdzv.node_name else ""
        plan.event("RendezvousLost", f"rendezvous pod{where} lost; restarting the world from the emergency "
                   "checkpoint with a new store", warning=True)

    if preempted or vanished or failed or stopped or interrupted:
        cause = _cause(preempted, vanished, failed, stopped, interrupted)
        if failed:
            status.restarts += 1
            names = ", ".join(p.name for p in failed)
            if status.restarts > spec.elastic.max_restarts:
                status.phase = Phase.FAILED
                message = f"worker failures exhausted maxRestarts={spec.elastic.max_restarts} (last: {names})"
                set_condition(status, "Failed", True, "MaxRestartsExceeded", message, now, meta_generation)
                set_condition(status, "Progressing", False, "Failed", message, now, meta_generation)
                plan.event("Failed", message, warning=True)
                _finish(plan, workers + others, job, now)
                return plan
            plan.event("WorkerFailed", f"{names} failed (restart {status.restarts}/{spec.elastic.max_restarts}); "
                       f"restarting from the latest checkpoint after {backoff_s(status.restarts):.0f} s",
                       warning=True)
        if _count_preemptions(status, [p.name for p in preempted] + list(vanished)):
            where = "; ".join([f"{p.name} on {p.node_name} preempted ({p.preemption})" for p in preempted]
                              + [f"{name} vanished from {kind} capacity" for name, kind in vanished.items()])
            plan.event("Preempted", f"{where}; resuming from the emergency checkpoint", warning=True)
        if stopped and not (preempted or vanished or failed or interrupted):
            plan.event("WorkersStopped", f"{cause}; the generation is restarted without them", warning=True)
        decision = sizing(recent_preemption=bool(preempted or vanished))
        _start_generation(plan, job, decision.size, decision.reason, now, Phase.RECOVERING)
        if failed:
            # The next generation starts after the backoff: launch waits for last_rescale_time.
            status.last_rescale_time = now + timedelta(seconds=backoff_s(status.restarts))
        status.rescales += 1
        plan.event("Recovering", f"generation {status.generation}: {decision.size} workers after {cause}: "
                   f"{decision.reason}")
        set_condition(status, "Ready", False, "Recovering", f"generation {generation} ended: {cause}", now,
                      meta_generation)
        plan.delete += [p.name for p in current if not p.deleting]
        return plan

    # Launch (or finish launching) the current generation once its start time has come.
    if status.last_rescale_time and now < status.last_rescale_time:
        return plan
    if not launched:
        if with_rendezvous and observed.rendezvous_host is None:
            return plan  # the Service was just created; its clusterIP is known on the next look
        if with_rendezvous and (rdzv is None or not rdzv.ready or rendezvous_lost):
            # Workers started before the store serves fail their c10d connect, and that would be
            # counted against maxRestarts: wait for the store's readiness probe (a store being
            # replaced may still be ready until it is gone; the new one is the one to wait for).
            since = max(t for t in (status.last_rescale_time, rdzv.created if rdzv else None, observed.created)
                        if t is not None)
            blocked = _why_stuck([rdzv] if rdzv is not None else [])
            if blocked is not None:
                _stuck_once(plan, blocked[0], generation, f"{blocked[1]}; the workers wait for the rendezvous",
                            now, meta_generation)
            elif now - since > ready_timeout:
                state = rdzv.describe() if rdzv is not None else "not created yet"
                _stuck_once(plan, "RendezvousNotReady", generation,
                            f"rendezvous pod {rendezvous_name(ref.name)} not ready after "
                            f"{(now - since).total_seconds():.0f} s ({state}); its workers wait for it", now,
                            meta_generation)
            return plan
        # The world counts as launched once every pod exists: a create the API refused is retried
        # (see _hold_refused_creates), never mistaken for a pod that was lost.
        endpoint = f"{observed.rendezvous_host}:{RENDEZVOUS_PORT}" if with_rendezvous else ""
        to_create = [worker_pod(ref, spec, placement, endpoint)
                     for placement in _placements(generation, _current_size(status))
                     if worker_name(ref.name, generation, placement.index) not in present]
        if to_create:
            plan.create += to_create
            plan.launches = generation
            return plan
        status.launched_generation = generation

    ready = sum(p.ready for p in current)
    status.workers.ready = ready
    status.workers.summary = workers_summary(ready, status.workers.desired, status.workers.spot,
                                             status.workers.on_demand)
    all_ready = ready == status.workers.desired and status.workers.desired > 0
    # A generation that never got all its workers ready (once Running, readiness does not flap: the
    # trainer's /healthz stays up until it exits, and an exit ends the generation above).
    launched_at = min((p.created for p in current if p.created is not None), default=None)
    blocked = _why_stuck(current)
    if not all_ready and status.phase != Phase.RUNNING and blocked is not None:
        _stuck_once(plan, blocked[0], generation, blocked[1], now, meta_generation)
    elif not all_ready and status.phase != Phase.RUNNING and status.workers.desired > 0 \
            and launched_at is not None and now - launched_at > ready_timeout:
        waiting = ", ".join(f"{p.name} {p.describe()}" for p in current if not p.ready)
        _stuck_once(plan, "GenerationNotReady", generation,
                    f"{ready}/{status.workers.desired} workers ready {(now - launched_at).total_seconds():.0f} s "
                    f"after launch ({waiting})", now, meta_generation)
    if all_ready and status.phase != Phase.RUNNING:
        if status.last_rescale_time is not None and status.generation > 1:
            overhead = (now - status.last_rescale_time).total_seconds()
            previous = status.restart_overhead_seconds
            status.restart_overhead_seconds = round(overhead if previous == 0 else (previous + overhead) / 2, 2)
        status.phase = Phase.RUNNING
        set_condition(status, "Ready", True, "WorkersReady", f"{ready} workers ready", now, meta_generation)
        set_condition(status, "Progressing", True, "Training", f"generation {generation} training", now,
                      meta_generation)
    if status.phase == Phase.RUNNING and measurement.samples_per_second:
        record_throughput(status, status.workers.desired, measurement.samples_per_second)

    rate = observed.prices.rate(status.workers.spot, status.workers.on_demand)
    update_progress(status, spec, now, deadline, rate)

    # Resize when the policy says so (the policy owns hysteresis and the cooldown).
    stuck_spot = any(p.unschedulable and p.on_spot and p.created and now - p.created > UNSCHEDULABLE_GRACE
                     for p in current)
    idle = status.workers.desired == 0  # the policy chose to wait for spot: look again every time
    # All steps done: the workers are writing the final checkpoint; never resize under them.
    finishing = status.total_steps > 0 and status.step >= status.total_steps
    settled = (status.phase == Phase.RUNNING or stuck_spot or idle) and not finishing
    if settled:
        decision = sizing(recent_preemption=False)
        if decision.size != _current_size(status):
            before = _current_size(status)
            cause = _resize_cause(spec, before, spec_changed, stuck_spot)
            _start_generation(plan, job, decision.size, decision.reason, now, Phase.RESCALING)
            status.rescales += 1
            plan.event("Rescaled", f"scaled {before.total}→{decision.size.total} "
                       f"({decision.size.spot} spot + {decision.size.on_demand} on-demand) on {cause}: "
                       f"{decision.reason}")
            plan.delete += [p.name for p in current if not p.deleting]
        else:
            status.last_decision = decision.reason
    return plan


def _record_measurement(plan: Plan, measurement: Measurement, now: datetime) -> None:
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


def _stuck_once(plan: Plan, reason: str, generation: int, detail: str, now: datetime, meta_generation: int) -> None:
    """Say that generation `generation` is stuck: in the Ready condition at every look, as an Event
    once (the condition, not memory, remembers that it was said, so an operator restart is silent)."""
    status = plan.status
    prefix = f"generation {generation}: "
    said = any(c.type == "Ready" and c.reason == reason and c.message.startswith(prefix) for c in status.conditions)
    set_condition(status, "Ready", False, reason, prefix + detail, now, meta_generation)
    if not said:
        plan.event(reason, prefix + detail, warning=True)


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
    """Why a generation ended, as a user reads it in the Recovering event and the Ready condition."""
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
