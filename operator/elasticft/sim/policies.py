"""The policies the simulator compares, by name. `elasticft` is the operator's own `policy.decide`."""

from __future__ import annotations

from elasticft.policy import Mode, PolicyInput, decide
from elasticft.sim import baselines
from elasticft.sim.replay import SimJob, SimObservation, SimPolicy
from elasticft.types import Size

SECONDS_PER_HOUR = 3600.0


def policy_input(observation: SimObservation, mode: Mode = Mode.MIN_COST) -> PolicyInput:
    """What the operator would hand the policy at this tick.

    Work is counted in single-worker-seconds, so one worker's throughput is 1 sample/s and the measured
    curve is the job's speedup table.
    """
    job = observation.job
    spot, on_demand = observation.current
    return PolicyInput(
        min_workers=job.min_workers,
        max_workers=job.max_workers,
        mode=mode,
        samples_done=observation.work_done_hours * SECONDS_PER_HOUR,
        samples_left=observation.work_left_hours * SECONDS_PER_HOUR,
        seconds_elapsed=observation.elapsed_hours * SECONDS_PER_HOUR,
        seconds_left=observation.hours_left * SECONDS_PER_HOUR,
        throughput_points=_curve(job),
        spot_price_per_hour=observation.spot_price_per_hour,
        on_demand_price_per_hour=job.on_demand_price_per_hour,
        spot_available=observation.spot_available,
        current_spot=spot,
        current_on_demand=on_demand,
        restart_overhead_s=job.restart_overhead_hours * SECONDS_PER_HOUR,
        spot_availability_age_s=observation.hours_since_availability_change * SECONDS_PER_HOUR,
        spot_history=tuple((count, hours * SECONDS_PER_HOUR) for count, hours in observation.availability_history),
        restart_remaining_s=observation.restart_overhead_left_hours * SECONDS_PER_HOUR,
        seconds_since_rescale=observation.hours_since_change * SECONDS_PER_HOUR,
        preempted=observation.preempted,
        decision_interval_s=observation.gap_hours * SECONDS_PER_HOUR,
    )


def _curve(job: SimJob) -> tuple[tuple[int, float], ...]:
    return tuple((n, job.speedup[n]) for n in range(1, job.max_workers + 1))


def elasticft(observation: SimObservation) -> Size:
    """The operator's MinCost policy, unchanged."""
    decision = decide(policy_input(observation))
    return decision.size


POLICIES: dict[str, SimPolicy] = {
    "on-demand": baselines.on_demand,
    "greedy": baselines.greedy,
    "uniform-progress": baselines.uniform_progress,
    "throughput-only": baselines.throughput_only,
    "elasticft": elasticft,
}
"""Online policies by name; `omniscient` is computed separately (it needs the whole trace)."""
