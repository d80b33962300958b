"""The omniscient optimum: the cheapest schedule with hindsight of the whole trace.

Problem: choose a configuration c_i = (spot, on_demand) for every tick i of the deadline window, with
spot <= a_i, to minimise  sum_i g * (spot_i * p_i + on_demand_i * k)  subject to finishing the work C.
Entering a configuration costs its restart overhead: d hours in which its X(n) * d of work is lost.

The work constraint couples the ticks; a Lagrange multiplier lambda (the value of one hour of work)
removes it. For a fixed lambda the best schedule maximises

    sum_i [ lambda * g * X(n_i) - g * cost_i(c_i) ]  -  sum_{entries} lambda * X(n) * d

which is a shortest path over (tick, configuration): a Viterbi recursion, vectorised over start points
and configurations with numpy. Bisection on lambda finds the smallest value whose schedule finishes;
that schedule is then replayed by the simulator, so its cost is measured exactly like every policy's.

The work of a schedule jumps with lambda (every on-demand tick has the same value, so they all enter at
once): the schedule at the bisection's upper end can carry far more work than C. `_trim_surplus` then
removes the most expensive work per hour first (ticks at the end of runs that use on-demand workers)
for as long as the surplus covers it.
Counting the whole X(n) * d as lost even when a configuration runs shorter than d only under-states the
work, so the schedule found always finishes. L(lambda) = lambda * C - max_schedule(...) is a lower bound
on the optimum (weak duality); `OmniscientPlan.lower_bound` reports it, so the gap is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from elasticft.sim.replay import SimJob
from elasticft.sim.trace import SpotTrace
from elasticft.types import IDLE, Size

_BISECTION_STEPS = 32


@dataclass(frozen=True)
class OmniscientPlan:
    """Per start point: the schedule (one configuration per tick) and the dual lower bound on its cost."""

    schedules: list[list[Size]]
    lower_bound: npt.NDArray[np.float64]
    feasible: npt.NDArray[np.bool_]


def configurations(job: SimJob) -> list[Size]:
    """Idle plus every (spot, on_demand) whose size lies within [min_workers, max_workers]."""
    configs = [IDLE]
    for workers in range(max(job.min_workers, 1), job.max_workers + 1):
        configs += [Size(spot, workers - spot) for spot in range(workers + 1)]
    return configs


def _window(trace: SpotTrace, starts: list[int], ticks: int) -> tuple[npt.NDArray[np.int64],
                                                                    npt.NDArray[np.float64] | None]:
    index = np.asarray(starts)[:, None] + np.arange(ticks)[None, :]
    inside = index < trace.ticks
    clipped = np.minimum(index, trace.ticks - 1)
    available = np.where(inside, trace.available[clipped], 0)
    prices = None if trace.spot_price_per_hour is None else trace.spot_price_per_hour[clipped]
    return available, prices


def plan(job: SimJob, trace: SpotTrace, starts: list[int]) -> OmniscientPlan:
    """The hindsight-optimal schedule for every start tick in `starts` (same job, same trace)."""
    gap = trace.gap_seconds / 3600.0
    ticks = int(np.floor(job.deadline_hours / gap + 1e-9))
    configs = configurations(job)
    spot = np.array([c[0] for c in configs])
    on_demand = np.array([c[1] for c in configs])
    speed = np.array([job.speedup[c[0] + c[1]] for c in configs])
    available, prices = _window(trace, starts, ticks)
    spot_price = np.full(available.shape, job.spot_price_per_hour) if prices is None else prices
    # hourly cost of each configuration at each tick: (batch, ticks, configs)
    hourly_cost = spot_price[:, :, None] * spot + job.on_demand_price_per_hour * on_demand
    allowed = spot[None, None, :] <= available[:, :, None]
    d = job.restart_overhead_hours

    def best_schedule(value: npt.NDArray[np.float64], record: bool) -> tuple[
            npt.NDArray[np.float64], npt.NDArray[np.float64], list[npt.NDArray[np.bool_]],
            list[npt.NDArray[np.int64]], npt.NDArray[np.int64]]:
        """Viterbi for per-start-point work values: objective, work, and (if recorded) the choices."""
        batch = value.shape[0]
        objective = np.full((batch, len(configs)), -np.inf)
        objective[:, 0] = 0.0
        work = np.zeros_like(objective)
        entry_loss = speed * d
        switched_at: list[npt.NDArray[np.bool_]] = []
        came_from: list[npt.NDArray[np.int64]] = []
        rows = np.arange(batch)
        for i in range(ticks):
            previous_best = objective.argmax(axis=1)
            stay = objective
            switch = objective[rows, previous_best][:, None] - value[:, None] * entry_loss
            switch[:, 0] = objective[rows, previous_best]
            take_switch = switch > stay
            tick_cost = gap * hourly_cost[:, i, :]
            gain = np.where(allowed[:, i, :], value[:, None] * gap * speed - tick_cost, -np.inf)
            objective = gain + np.where(take_switch, switch, stay)
            work = gap * speed + np.where(take_switch, work[rows, previous_best][:, None] - entry_loss, work)
            if record:
                switched_at.append(take_switch)
                came_from.append(previous_best)
        final = objective.argmax(axis=1)
        return objective[rows, final], work[rows, final], switched_at, came_from, final

    batch = len(starts)
    low = np.zeros(batch)
    high = np.full(batch, 64.0 * job.on_demand_price_per_hour * job.max_workers)
    _, work_high, _, _, _ = best_schedule(high, record=False)
    feasible = work_high >= job.work_hours
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        _, work_middle, _, _, _ = best_schedule(middle, record=False)
        enough = work_middle >= job.work_hours
        high = np.where(enough, middle, high)
        low = np.where(enough, low, middle)
    objective_low, _, _, _, _ = best_schedule(low, record=False)
    objective_high, _, switched_at, came_from, final = best_schedule(high, record=True)
    lower_bound = np.maximum(low * job.work_hours - objective_low, high * job.work_hours - objective_high)

    schedules = []
    for b in range(batch):
        state = int(final[b])
        schedule: list[Size] = [IDLE] * ticks
        for i in range(ticks - 1, -1, -1):
            schedule[i] = configs[state]
            if switched_at[i][b, state]:
                state = int(came_from[i][b])
        schedules.append(_trim_surplus(job, schedule, gap))
    return OmniscientPlan(schedules, lower_bound, feasible)


def _runs(schedule: list[Size]) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of one non-idle configuration."""
    runs = []
    start = 0
    for i in range(1, len(schedule) + 1):
        if i == len(schedule) or schedule[i] != schedule[start]:
            if schedule[start] != IDLE:
                runs.append((start, i))
            start = i
    return runs


def _schedule_work(job: SimJob, schedule: list[Size], gap: float) -> float:
    d = job.restart_overhead_hours
    return sum(job.speedup[sum(schedule[a])] * max((b - a) * gap - d, 0.0) for a, b in _runs(schedule))


def _trim_surplus(job: SimJob, schedule: list[Size], gap: float) -> list[Size]:
    """Idle the costliest on-demand ticks (run ends) while the work left still covers the job."""
    trimmed = list(schedule)
    surplus = _schedule_work(job, trimmed, gap) - job.work_hours
    overhead_ticks = int(np.ceil(job.restart_overhead_hours / gap))

    def price_per_work(config: Size) -> float:
        spot, on_demand = config
        hourly = spot * job.spot_price_per_hour + on_demand * job.on_demand_price_per_hour
        return hourly / job.speedup[spot + on_demand]

    runs = sorted((run for run in _runs(trimmed) if trimmed[run[0]][1] > 0),
                  key=lambda run: -price_per_work(trimmed[run[0]]))
    for start, end in runs:
        rate = job.speedup[sum(trimmed[start])]
        whole_run = rate * max((end - start) * gap - job.restart_overhead_hours, 0.0)
        if whole_run <= surplus:
            trimmed[start:end] = [IDLE] * (end - start)
            surplus -= whole_run
            continue
        removable = min(int(surplus // (rate * gap)), end - start - overhead_ticks - 1)
        if removable > 0:
            trimmed[end - removable:end] = [IDLE] * removable
            surplus -= removable * rate * gap
    return trimmed
