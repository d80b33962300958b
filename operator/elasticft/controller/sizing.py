"""Maps a job's spec and status onto the policy's input, and the policy's answer onto a world size.

The policy (`elasticft.policy`) is pure and knows nothing of Kubernetes; this module is the one
place that translates, so the simulator and the operator run the very same decision code.
"""

from __future__ import annotations

from elasticft.api.durations import parse_duration
from elasticft.api.models import FineTuneJobSpec
from elasticft.controller.reconcile import SizeDecision, SizingRequest
from elasticft.policy.decision import PolicyInput, decide
from elasticft.policy.throughput import PRIOR, ThroughputParams
from elasticft.types import Mode, Size

# Before any restart has been measured, assume one costs this much (save + reschedule + load).
DEFAULT_RESTART_OVERHEAD_S = 60.0
# How long a decision holds at least: the policy's g (otherwise the spec's rescale cooldown).
MIN_DECISION_INTERVAL_S = 10.0


def policy_input(request: SizingRequest) -> PolicyInput:
    """The policy's view of a job: samples left, time left, measured curve, prices, availability."""
    spec, status, now = request.spec, request.status, request.now
    batch = spec.global_batch_size
    total_steps = status.total_steps or spec.total_steps or 0
    started = status.start_time or now
    seconds_left = (request.deadline - now).total_seconds() if request.deadline else None
    prior = spec.throughput_prior
    overhead = status.restart_overhead_seconds or (prior and prior.restart_seconds) or DEFAULT_RESTART_OVERHEAD_S
    since_rescale = (now - status.last_rescale_time).total_seconds() if status.last_rescale_time else float("inf")
    restarting = status.phase != "Running" and status.generation > 0
    cooldown = parse_duration(spec.elastic.rescale_cooldown)
    return PolicyInput(
        min_workers=spec.elastic.min_workers,
        max_workers=spec.elastic.max_workers,
        mode=Mode(spec.objective.mode),
        samples_done=float(status.step * batch),
        samples_left=float(max(total_steps - status.step, 0) * batch),
        seconds_elapsed=max((now - started).total_seconds(), 0.0),
        seconds_left=seconds_left,
        throughput_points=tuple((p.workers, p.samples_per_second) for p in status.throughput.curve),
        spot_price_per_hour=request.prices.spot_per_hour,
        on_demand_price_per_hour=request.prices.on_demand_per_hour,
        spot_available=spec.elastic.max_workers if request.spot_available is None else request.spot_available,
        current_spot=status.workers.spot,
        current_on_demand=status.workers.on_demand,
        restart_overhead_s=overhead,
        restart_remaining_s=max(overhead - since_rescale, 0.0) if restarting else 0.0,
        seconds_since_rescale=since_rescale,
        rescale_cooldown_s=cooldown,
        preempted=request.recent_preemption,
        spot_availability_age_s=(now - status.spot.since).total_seconds() if status.spot.since else float("inf"),
        spot_history=tuple((run.workers, run.seconds) for run in status.spot.history),
        decision_interval_s=max(cooldown, MIN_DECISION_INTERVAL_S),
        cost_so_far=status.cost.accrued,
        max_total_cost=spec.objective.budget.max_total_cost,
        max_cost_per_hour=spec.objective.budget.max_cost_per_hour,
        spot_enabled=spec.capacity.spot.enabled,
        on_demand_enabled=spec.capacity.on_demand.enabled,
        min_scaling_efficiency=spec.objective.min_scaling_efficiency,
        throughput_prior=prior_params(spec),
    )


def prior_params(spec: FineTuneJobSpec) -> ThroughputParams:
    """The throughput curve assumed before measuring: the spec's `throughputPrior`, else `PRIOR`."""
    prior = spec.throughput_prior
    return ThroughputParams(lam=prior.samples_per_second, sigma=prior.serial_fraction) if prior else PRIOR


def fit_to_feasible(spot: int, on_demand: int, feasible: list[int]) -> Size:
    """The largest world size that splits the global batch evenly and is <= the policy's; the
    difference comes off spot first, so on-demand safety stays. Below the smallest, the smallest;
    zero (idle, waiting for spot) stays zero."""
    wanted = spot + on_demand
    if wanted == 0:
        return Size(0, 0)  # the policy chose to wait (idle) for spot: nothing to fit
    below = [n for n in feasible if n <= wanted]
    target = max(below) if below else min(feasible)
    cut = max(wanted - target, 0)
    spot_cut = min(cut, spot)
    spot, on_demand = spot - spot_cut, on_demand - (cut - spot_cut)
    if target > wanted:  # grow to the smallest feasible size on the capacity the policy used most
        if spot >= on_demand:
            spot += target - wanted
        else:
            on_demand += target - wanted
    return Size(spot=spot, on_demand=on_demand)


def measuring_first(request: SizingRequest) -> SizeDecision | None:
    """With neither a measurement nor a `throughputPrior` (or, for an `epochs` job, before the trainer
    has reported its length in steps), the policy would size blind: start the smallest feasible world
    (on spot when any is obtainable) and let the first measurement decide."""
    spec, status = request.spec, request.status
    length_known = bool(status.total_steps or spec.total_steps)  # with `epochs`, the trainer reports it
    if length_known and (status.throughput.curve or spec.throughput_prior is not None):
        return None
    workers = min(request.feasible_sizes)
    spot_ok = spec.capacity.spot.enabled and (request.spot_available is None or request.spot_available >= workers)
    size = Size(spot=workers, on_demand=0) if spot_ok or not spec.capacity.on_demand.enabled \
        else Size(spot=0, on_demand=workers)
    return SizeDecision(size, f"no throughput measured yet and no throughputPrior: {size} workers to measure")


def decide_size(request: SizingRequest) -> SizeDecision:
    """The operator's Decide: run the policy and fit its answer to a feasible world size."""
    first = measuring_first(request)
    if first is not None:
        return first
    decision = decide(policy_input(request))
    size = fit_to_feasible(decision.spot, decision.on_demand, request.feasible_sizes)
    reason = decision.reason
    if size.total != decision.workers:
        reason += f" (rounded to {size.total} workers so the global batch splits evenly)"
    return SizeDecision(size=size, reason=reason)
