"""Trace replay: one job run on a spot trace under one policy, tick by tick.

The model is the one of *Can't Be Late* (NSDI 2024) generalised to N workers:

- time advances in ticks of the trace's `gap_seconds`; at the start of tick i the trace says how many spot
  instances are obtainable, `a_i`; running spot workers beyond `a_i` are preempted;
- the policy then picks a configuration `(spot, on_demand)` with `spot <= a_i`; any change of membership
  (a preemption, a scale-up, a scale-down, a switch of capacity type) restarts the job: the next `d` hours
  (restart overhead) are billed but make no progress;
- a configuration of n workers progresses `speedup[n]` single-worker-hours per hour;
- instances are billed per tick while held; the tick in which the job finishes is billed up to the finish;
- with a preemption notice shorter than the emergency checkpoint, the work since the last periodic
  checkpoint is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from elasticft.sim.trace import SpotTrace
from elasticft.types import IDLE, Prices, Size

#: Runs that have not finished by this multiple of the deadline are stopped and reported unfinished.
GIVE_UP_AFTER_DEADLINES = 3.0


@dataclass(frozen=True)
class SimJob:
    """A job as the simulator sees it; work is in single-worker-equivalent hours.

    `speedup[n]` is the throughput of n workers relative to one (speedup[0] == 0, speedup[1] == 1).
    """

    work_hours: float
    deadline_hours: float
    restart_overhead_hours: float
    speedup: tuple[float, ...] = (0.0, 1.0)
    min_workers: int = 1
    spot_price_per_hour: float = 1.0
    on_demand_price_per_hour: float = 3.14
    checkpoint_interval_hours: float = 0.5
    preemption_notice_hours: float = 2.0 / 60.0
    checkpoint_save_hours: float = 0.5 / 60.0

    @property
    def max_workers(self) -> int:
        return len(self.speedup) - 1

    @property
    def full_speed_hours(self) -> float:
        """Hours of compute at max_workers: the job's length when nothing goes wrong."""
        return self.work_hours / self.speedup[self.max_workers]


@dataclass(frozen=True)
class SimObservation:
    """What a policy may know at the start of a tick: the past and present, never the future."""

    job: SimJob
    gap_hours: float
    elapsed_hours: float
    work_done_hours: float
    current: Size
    spot_available: int
    spot_price_per_hour: float
    restart_overhead_left_hours: float
    hours_since_change: float
    hours_since_availability_change: float
    preempted: bool
    #: completed runs of constant spot availability since the start, oldest first: (count, hours)
    availability_history: tuple[tuple[int, float], ...] = ()

    @property
    def work_left_hours(self) -> float:
        return max(self.job.work_hours - self.work_done_hours, 0.0)

    @property
    def hours_left(self) -> float:
        return self.job.deadline_hours - self.elapsed_hours


SimPolicy = Callable[[SimObservation], Size]


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run: what it cost and whether it met the deadline.

    `spot_hours`/`on_demand_hours` are instance-hours billed (restart overheads included);
    `*_work_hours` are the single-worker-equivalent compute hours done on each capacity type, the
    measure of the paper's Table 3 (which excludes changeover delays), and `work_cost` prices them at
    one worker's price of their capacity type: k * on-demand work hours + spot price * spot work hours,
    the cost by which the paper compares policies.
    """

    cost: float
    spot_hours: float
    on_demand_hours: float
    spot_work_hours: float
    on_demand_work_hours: float
    completion_hours: float
    finished: bool
    deadline_met: bool
    restarts: int
    work_cost: float


def replay(job: SimJob, trace: SpotTrace, start_tick: int, policy: SimPolicy) -> RunResult:
    """Run `job` from `start_tick` of `trace` under `policy`; ticks past the trace's end have no spot."""
    gap = trace.gap_seconds / 3600.0
    available = trace.available.tolist()
    prices = None if trace.spot_price_per_hour is None else trace.spot_price_per_hour.tolist()
    d = job.restart_overhead_hours
    lose_on_preemption = job.preemption_notice_hours < job.checkpoint_save_hours
    max_ticks = math.ceil(job.deadline_hours * GIVE_UP_AFTER_DEADLINES / gap)

    work = work_since_checkpoint = overhead_left = since_change = since_availability_change = 0.0
    current: Size = IDLE
    last_available = -1
    history: tuple[tuple[int, float], ...] = ()
    cost = spot_hours = on_demand_hours = spot_work = on_demand_work = work_cost = 0.0
    restarts = 0
    for i in range(max_ticks):
        tick = start_tick + i
        spot_available = available[tick] if tick < len(available) else 0
        spot_price = job.spot_price_per_hour if prices is None or tick >= len(prices) else prices[tick]
        if spot_available != last_available:
            if last_available >= 0:
                history += ((last_available, since_availability_change),)
            since_availability_change = 0.0
            last_available = spot_available
        preempted = current[0] > spot_available
        if preempted and lose_on_preemption:
            work -= work_since_checkpoint
            work_since_checkpoint = 0.0
        running = Size(min(current.spot, spot_available), current.on_demand)
        observation = SimObservation(
            job, gap, i * gap, work, running, spot_available, spot_price, overhead_left, since_change,
            since_availability_change, preempted, history,
        )
        chosen = policy(observation)
        if chosen[0] > spot_available or min(chosen) < 0:
            raise ValueError(f"policy asked for {chosen} with {spot_available} spot instances available")
        if chosen != current:
            since_change = 0.0
            overhead_left = d if chosen != IDLE else 0.0
            restarts += chosen != IDLE
            work_since_checkpoint = 0.0
        current = Size(*chosen)
        workers = current[0] + current[1]
        billed = gap
        if workers:
            overhead_spent = min(overhead_left, gap)
            overhead_left -= overhead_spent
            rate = job.speedup[workers]
            gained = rate * (gap - overhead_spent)
            if work + gained >= job.work_hours:
                billed = overhead_spent + (job.work_hours - work) / rate
                gained = job.work_hours - work
            work += gained
            spot_work += gained * current[0] / workers
            on_demand_work += gained * current[1] / workers
            hourly = Prices(spot_price, job.on_demand_price_per_hour).rate(*current)
            work_cost += gained * hourly / workers
            work_since_checkpoint = (work_since_checkpoint + gained) % (rate * job.checkpoint_interval_hours)
            cost += billed * hourly
            spot_hours += billed * current[0]
            on_demand_hours += billed * current[1]
        since_change += gap
        since_availability_change += gap
        if work >= job.work_hours - 1e-9:
            completion = i * gap + billed
            return RunResult(cost, spot_hours, on_demand_hours, spot_work, on_demand_work, completion, True,
                             completion <= job.deadline_hours + 1e-6, restarts, work_cost)
    return RunResult(cost, spot_hours, on_demand_hours, spot_work, on_demand_work, max_ticks * gap, False,
                     False, restarts, work_cost)


def start_ticks(trace: SpotTrace, job: SimJob, count: int) -> list[int]:
    """`count` start ticks evenly spread so that every run's deadline window lies inside the trace."""
    window = math.ceil(job.deadline_hours * 3600.0 / trace.gap_seconds)
    last = trace.ticks - window
    if last < 0:
        raise ValueError(f"trace {trace.name} ({trace.hours:.0f} h) is shorter than the deadline")
    return sorted({round(last * k / max(count - 1, 1)) for k in range(count)})


def follow_schedule(schedule: Sequence[Size]) -> SimPolicy:
    """A policy that plays back a precomputed schedule (idle after its end)."""

    def play(observation: SimObservation) -> Size:
        tick = round(observation.elapsed_hours / observation.gap_hours)
        return schedule[tick] if tick < len(schedule) else IDLE

    return play
