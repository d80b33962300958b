"""The operator's own sizing replayed on a trace: what the operator will do, predicted by the simulator.

`sim.replay` runs a job tick by tick; `operator_policy` answers each tick exactly as the operator's
reconcile does, by building the status the operator would hold and calling `sizing.decide_size` (the
same adapter, the same `measuring_first`, the same fit to feasible sizes, the same cooldown). What the
operator learns as it goes is learned here too, in the same order: a world size's throughput once that
size has trained, the restart overhead d once a second generation has become ready (before that the
operator assumes `DEFAULT_RESTART_OVERHEAD_S`). Like the operator, it does not resize a world that is
still restarting. Replay the trace at the operator's own resolution (about one decision a second)
for a faithful prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from elasticft.api.models import FineTuneJobSpec, FineTuneJobStatus, Phase, SpotRun, ThroughputPoint
from elasticft.api.validation import feasible_world_sizes
from elasticft.controller.reconcile import SizingRequest
from elasticft.controller.sizing import decide_size
from elasticft.controller.status import deadline_of
from elasticft.sim.replay import SimJob, SimObservation, SimPolicy
from elasticft.types import IDLE, Prices, Size

SECONDS_PER_HOUR = 3600.0


def sim_job(spec: FineTuneJobSpec, curve: Mapping[int, float], restart_overhead_s: float, deadline_s: float,
            prices: Prices) -> SimJob:
    """The job as the simulator counts it: work in single-worker-hours of `curve[1]` samples/s."""
    single = curve[1]
    samples = (spec.total_steps or 0) * spec.global_batch_size
    top = max(curve)
    return SimJob(
        work_hours=samples / single / SECONDS_PER_HOUR,
        deadline_hours=deadline_s / SECONDS_PER_HOUR,
        restart_overhead_hours=restart_overhead_s / SECONDS_PER_HOUR,
        speedup=(0.0, *(curve[n] / single for n in range(1, top + 1))),
        min_workers=spec.elastic.min_workers,
        spot_price_per_hour=prices.spot_per_hour,
        on_demand_price_per_hour=prices.on_demand_per_hour,
        # the trainer saves an emergency checkpoint within the notice: a preemption loses nothing
        checkpoint_interval_hours=1.0,
        preemption_notice_hours=1.0,
        checkpoint_save_hours=0.0,
    )


def operator_policy(spec: FineTuneJobSpec, curve: Mapping[int, float], restart_overhead_s: float,
                    start: datetime, prices: Prices) -> SimPolicy:
    """A `SimPolicy` that decides as the operator does; `curve` is the true samples/s by world size and
    `restart_overhead_s` the d the operator will measure."""
    deadline = deadline_of(spec, start)
    measured: dict[int, float] = {}
    generations = [0]
    overhead_known = [False]

    def decide(observation: SimObservation) -> Size:
        running = observation.current
        restarting = running != IDLE and observation.restart_overhead_left_hours > 0
        if running != IDLE and not restarting:
            measured[sum(running)] = curve[sum(running)]
            overhead_known[0] = overhead_known[0] or generations[0] > 1
        if restarting and not observation.preempted:
            return running  # the operator never resizes a world that has not become ready
        now = start + timedelta(hours=observation.elapsed_hours)
        status = _status(spec, observation, now, start, generations[0], restarting, measured,
                         restart_overhead_s if overhead_known[0] else 0.0, curve[1])
        request = SizingRequest(
            spec=spec, status=status, now=now, deadline=deadline, prices=prices, current=Size(*running),
            spot_available=observation.spot_available,
            feasible_sizes=feasible_world_sizes(spec), recent_preemption=observation.preempted,
        )
        size = decide_size(request).size
        chosen = size
        if chosen != running or observation.preempted:
            generations[0] += 1
        return chosen

    return decide


def _status(spec: FineTuneJobSpec, observation: SimObservation, now: datetime, start: datetime, generation: int,
            restarting: bool, measured: Mapping[int, float], restart_overhead_s: float,
            single_samples_per_second: float) -> FineTuneJobStatus:
    """The status the operator would hold at this tick (work is counted in single-worker-hours)."""
    samples_done = observation.work_done_hours * SECONDS_PER_HOUR * single_samples_per_second
    status = FineTuneJobStatus()
    status.phase = Phase.RESCALING if restarting or generation == 0 else Phase.RUNNING
    status.generation = generation
    status.total_steps = spec.total_steps or 0
    status.step = int(samples_done / spec.global_batch_size)
    status.workers.spot, status.workers.on_demand = observation.current
    status.workers.desired = sum(observation.current)
    status.start_time = start
    if generation > 0:
        status.last_rescale_time = now - timedelta(hours=observation.hours_since_change)
    status.spot.available = observation.spot_available
    status.spot.since = now - timedelta(hours=observation.hours_since_availability_change)
    status.spot.history = [SpotRun(workers=count, seconds=hours * SECONDS_PER_HOUR)
                           for count, hours in observation.availability_history]
    status.throughput.curve = [ThroughputPoint(workers=n, samples_per_second=x) for n, x in sorted(measured.items())]
    status.restart_overhead_seconds = restart_overhead_s
    return status
