"""The best online policy that knows how long spot stretches and outages last, but not when they end.

A reference, not a policy the operator runs: the optimal policy for a semi-Markov model of the spot
availability fitted to a trace. Fitted to the very trace it is replayed on, it says how close an online
policy comes to the omniscient optimum when the one thing it lacks is the future itself; fitted to
another stretch of the trace, what a model learned from the pool's past would reach. Single-worker
jobs only (the setting of *Can't Be Late*'s Table 3).

Model. Availability alternates between spot stretches (spot obtainable) and outages. Each run lasts a
random number of ticks drawn from the empirical distribution of the runs of that kind in the fitted
period: a semi-Markov process whose state at a tick is (obtainable or not, age a in ticks since the run
began), with the hazard of the run ending after this tick

    h_v(a) = #{L_j = a + 1} / #{L_j >= a + 1}                     for a < K - 1,
    h_v(K - 1) = #{L_j >= K} / sum_{L_j >= K} (L_j - K + 1)        (one pooled hazard past the table)

over the runs L_j of kind v (ticks). The age table stops at K (`MAX_AGE_TICKS`).

Programme. Work left w is counted in 1/SUB of a tick at full speed; a change of configuration enters a
restart of D units (the restart overhead d); each tick pays its configuration's price and makes
SUB minus the restart still due units of progress; the tick that finishes is billed to the finish, as
in `replay`. With tau ticks left, the expected cost to finish is

    V_tau(w, m, o, v, a) = min_c [ cost(c) + (1 - h_v(a)) V_{tau-1}(w', c, o', v, a + 1)
                                           + h_v(a) V_{tau-1}(w', c, o', 1 - v, 0) ]

over c in {idle, spot (only when obtainable), on-demand}, with m the configuration held and o the
restart it still owes; V_tau(0, ...) = 0 and V_0(w > 0) = `MISSED_DEADLINE_COST`. The minimising c is
stored for every state and played back by `policy`, which the simulator replays like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from elasticft.sim.replay import SimJob, SimObservation, SimPolicy
from elasticft.types import IDLE, Size

#: Ages are told apart up to this many ticks; older runs share one hazard.
MAX_AGE_TICKS = 48
#: Work resolution: at most this many units per tick (enough to express d = 1.2 ticks exactly).
MAX_UNITS_PER_TICK = 5
#: Expected cost of missing the deadline: far above any real cost, so the programme never risks it.
MISSED_DEADLINE_COST = 1e6
#: The stored action table of one solve (one byte per state and tick) may take this much memory at most;
#: a finer tick or a longer job is refused (`too_large`) rather than run out of memory.
MAX_TABLE_BYTES = 1 << 30

#: Configurations by action index: idle, one spot worker, one on-demand worker.
ACTIONS: tuple[Size, ...] = (IDLE, Size(1, 0), Size(0, 1))
_IDLE, _SPOT, _ON_DEMAND = 0, 1, 2
#: The action index of a configuration held; anything else running is the on-demand worker.
_HELD = {IDLE: _IDLE, (1, 0): _SPOT}


@dataclass(frozen=True)
class Hazards:
    """h[v, a]: probability that a run of kind v (0 outage, 1 spot obtainable) of age a ends after this tick."""

    h: npt.NDArray[np.float64]

    @property
    def max_age(self) -> int:
        return int(self.h.shape[1])


def run_lengths(available: npt.NDArray[np.int64]) -> dict[int, list[int]]:
    """Lengths in ticks of the maximal runs of outage (0) and of spot obtainable (1)."""
    runs: dict[int, list[int]] = {0: [], 1: []}
    kinds = (np.asarray(available) > 0).astype(int)
    boundaries = np.flatnonzero(np.diff(kinds)) + 1
    for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, kinds.size], strict=True):
        runs[int(kinds[start])].append(int(end - start))
    return runs


def fit_hazards(available: npt.NDArray[np.int64], max_age: int = MAX_AGE_TICKS) -> Hazards:
    """The empirical hazards h_v(a) of the module docstring; a kind never seen ends at once (h = 1)."""
    h = np.ones((2, max_age))
    for kind, lengths in run_lengths(available).items():
        runs = np.asarray(lengths)
        for age in range(max_age - 1):
            reached = int((runs >= age + 1).sum())
            if reached:
                h[kind, age] = (runs == age + 1).sum() / reached
        tail = runs[runs >= max_age]
        exposure = float((tail - max_age + 1).sum())
        if exposure:
            h[kind, max_age - 1] = tail.size / exposure
    return Hazards(h)


@dataclass(frozen=True)
class KnownDistributionPolicy:
    """The stored minimising actions and the discretisation they are indexed by."""

    #: action index per (ticks left, configuration held, restart owed index, obtainable, work units left, age)
    actions: npt.NDArray[np.uint8]
    gap_hours: float
    units_per_tick: int
    #: restart still owed (units) -> index into the actions' third axis
    owed_index: dict[int, int]

    def __call__(self, observation: SimObservation) -> Size:
        g = self.gap_hours
        ticks_left = self.actions.shape[0] - 1 - round(observation.elapsed_hours / g)
        if ticks_left <= 0:
            return ACTIONS[_ON_DEMAND]  # past the deadline: finish as fast as possible
        held = _HELD.get(observation.current, _ON_DEMAND)
        owed = round(observation.restart_overhead_left_hours / g * self.units_per_tick)
        work = math.ceil(observation.work_left_hours / g * self.units_per_tick - 1e-6)
        age = round(observation.hours_since_availability_change / g)
        action = self.actions[ticks_left, held, self.owed_index.get(owed, 0), int(observation.spot_available > 0),
                              min(work, self.actions.shape[4] - 1), min(age, self.actions.shape[5] - 1)]
        return ACTIONS[int(action)]


def units_per_tick(job: SimJob, gap_hours: float) -> int:
    """The smallest SUB <= MAX_UNITS_PER_TICK that expresses d in whole units (else the largest)."""
    ticks = job.restart_overhead_hours / gap_hours
    for units in range(1, MAX_UNITS_PER_TICK + 1):
        if abs(ticks * units - round(ticks * units)) < 1e-6:
            return units
    return MAX_UNITS_PER_TICK


@dataclass(frozen=True)
class _Grid:
    """The programme's discretisation: ticks to the deadline, units per tick, the restart and the work in
    units, and the restart still owed that a state can hold."""

    ticks: int
    sub: int
    restart: int
    total: int
    owed_states: list[int]

    def table_bytes(self, ages: int) -> int:
        return (self.ticks + 1) * len(ACTIONS) * len(self.owed_states) * 2 * (self.total + 1) * ages


def _grid(job: SimJob, g: float) -> _Grid:
    sub = units_per_tick(job, g)
    restart = round(job.restart_overhead_hours / g * sub)
    owed = sorted({0} | {restart - j * sub for j in range(1, restart // sub + 1) if restart - j * sub > 0})
    return _Grid(math.floor(job.deadline_hours / g + 1e-9), sub, restart,
                 math.ceil(job.work_hours / g * sub - 1e-6), owed)


def too_large(job: SimJob, gap_seconds: float, max_age: int = MAX_AGE_TICKS) -> str | None:
    """Why `solve` would not fit in MAX_TABLE_BYTES for this job and tick, or None if it fits."""
    needed = _grid(job, gap_seconds / 3600.0).table_bytes(max_age)
    if needed <= MAX_TABLE_BYTES:
        return None
    return (f"its action table would take {needed / 2**30:.1f} GiB at a {gap_seconds:.0f} s tick "
            f"(limit {MAX_TABLE_BYTES / 2**30:.0f} GiB)")


def solve(job: SimJob, gap_seconds: float, hazards: Hazards) -> KnownDistributionPolicy:
    """Backward induction of the module docstring for a single-worker job."""
    if job.max_workers != 1:
        raise ValueError("the known-distribution reference is for single-worker jobs")
    g = gap_seconds / 3600.0
    grid = _grid(job, g)
    refused = too_large(job, gap_seconds, hazards.max_age)
    if refused is not None:
        raise ValueError(f"the known-distribution reference does not fit: {refused}")
    ticks, sub, restart, total, owed_states = grid.ticks, grid.sub, grid.restart, grid.total, grid.owed_states
    owed_index = {owed: i for i, owed in enumerate(owed_states)}
    ages = hazards.max_age
    older = np.minimum(np.arange(ages) + 1, ages - 1)
    work = np.arange(total + 1)
    prices = (0.0, job.spot_price_per_hour, job.on_demand_price_per_hour)

    # value[c, owed index, v, w, a]; at tau = 0 every unfinished state has missed the deadline
    value = np.full((3, len(owed_states), 2, total + 1, ages), MISSED_DEADLINE_COST)
    value[:, :, :, 0, :] = 0.0
    actions = np.zeros((ticks + 1, 3, len(owed_states), 2, total + 1, ages), dtype=np.uint8)
    for ticks_left in range(1, ticks + 1):
        previous = value
        value = np.empty_like(previous)
        for kind in (0, 1):
            hazard = hazards.h[kind]
            # E[V_{tau-1}] over the next tick's availability, per (config, owed index, w, a)
            expected = (1.0 - hazard) * previous[:, :, kind][..., older] + hazard * previous[:, :, 1 - kind][..., :1]
            # the value of running c this tick having entered it owing `owed` units of restart
            entered: dict[tuple[int, int], npt.NDArray[np.float64]] = {(_IDLE, 0): expected[_IDLE, 0]}
            for config in (_SPOT, _ON_DEMAND):
                if config == _SPOT and kind == 0:
                    continue
                for owed in [*owed_states, restart]:
                    spent = min(owed, sub)
                    gain = sub - spent
                    left = np.maximum(work - gain, 0)
                    finishing = (work > 0) & (work <= gain)
                    tick_cost = prices[config] * g * np.where(finishing, (spent + work) / sub, 1.0)
                    later = np.where(finishing[:, None], 0.0, expected[config, owed_index[owed - spent]][left])
                    entered[(config, owed)] = tick_cost[:, None] + later
            for held in (_IDLE, _SPOT, _ON_DEMAND):
                for owed, o in owed_index.items():
                    best: npt.NDArray[np.float64] | None = None
                    choice = np.zeros((total + 1, ages), dtype=np.uint8)
                    for config in (_IDLE, _SPOT, _ON_DEMAND):
                        if config == _SPOT and kind == 0:
                            continue
                        keeps = config == held and config != _IDLE
                        option = entered[(config, owed if keeps else (0 if config == _IDLE else restart))]
                        if best is None:
                            best = option.copy()
                        else:
                            better = option < best - 1e-9
                            best = np.where(better, option, best)
                            choice = np.where(better, np.uint8(config), choice)
                    assert best is not None
                    best[0, :] = 0.0
                    value[held, o, kind] = best
                    actions[ticks_left, held, o, kind] = choice
    return KnownDistributionPolicy(actions, g, sub, owed_index)


def policy(job: SimJob, gap_seconds: float, fitted_on: npt.NDArray[np.int64]) -> SimPolicy:
    """The known-distribution policy for `job`, its model fitted on the availability counts `fitted_on`."""
    return solve(job, gap_seconds, fit_hazards(fitted_on))
