"""Value-based MinCost controller for a one-worker job: a dynamic program over (steps left, work left,
spot state, running configuration) on an availability model fitted to the history observed so far.

Model (time in steps of length h, work in steps of one worker's progress):

- spot is a two-state Markov chain, up (>= m spot workers obtainable) or down, with per-step switching
  probabilities q_down = 1 - exp(-h * lam_down) and q_up = 1 - exp(-h * lam_up). The rates are the
  censored-exponential maximum-likelihood estimates with a prior of one pseudo-period of PRIOR_PERIOD_S:

      lam_down = (completed up periods + 1) / (seconds up, the current period included, + PRIOR_PERIOD_S)

  and likewise lam_up from the down periods. They are rounded to a grid of RATE_GRID per octave, so that
  nearby histories share one solution (the cache below); nothing after the current instant is used.
- configurations: idle, spot or on-demand, each with r in {0..D} restart steps left, D = ceil(d / h);
  starting a configuration sets r = D; a step with r > 0 bills but makes no progress; a step with r = 0
  makes one step of work. A running spot worker is lost when spot goes down.
- cost of a step: p_spot * h or p_od * h (idle is free); unfinished work at the deadline costs MISS_PENALTY
  per step of work, so the optimum always keeps an on-demand finish reachable (the safety net).

Bellman recursion, t steps left, w steps of work left, a the spot state now, s the configuration:

    V_0(w, a, s) = MISS_PENALTY * w,   V_t(0, a, s) = 0,
    V_t(w, a, s) = min over allowed actions c' of  price(c') * h + sum_a' P(a, a') V_{t-1}(w - [r' = 0], a', s'')

with s'' = (c', max(r' - 1, 0)). Allowed: idle; keep s (spot only while up); start spot (up, not already
on spot); start on-demand (not already on it). Mapping the live state onto the grid is conservative:
t = floor(T / h), w = ceil(W / (X(1) h)), r = ceil(restart left / h).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from elasticft.policy.availability import SpotRun, expected_remaining_s, periods

#: weight and length of the prior pseudo-period of each spot state
PRIOR_PERIOD_S = 3.0 * 3600.0
#: switching rates are rounded to 2^(k / RATE_GRID)
RATE_GRID = 4
#: cost of a step of work left unfinished at the deadline, in units of one on-demand step
MISS_PENALTY = 1e6
#: the planner's step is at least the window over this many steps (keeps a solve to a few ms)
MAX_STEPS = 720

IDLE, KEEP, SPOT, ON_DEMAND = 0, 1, 2, 3
ACTION_NAMES = ("idle", "keep", "spot", "on-demand")


@dataclass(frozen=True)
class PlannerJob:
    """The grid a plan is solved on: horizon and work in steps, restart steps, prices per step."""

    steps: int
    work_steps: int
    restart_steps: int
    spot_cost: float
    on_demand_cost: float


@dataclass(frozen=True)
class SpotModel:
    """Per-step switching probabilities of the two-state availability chain."""

    q_down: float
    q_up: float


def switching_rates(history: tuple[SpotRun, ...], available: int, age_s: float, min_workers: int) -> tuple[float, float]:
    """(lam_down, lam_up) per second: (completed periods + 1) / (exposure + PRIOR_PERIOD_S) for up and down."""
    runs = [*history, (available, age_s)]
    up = periods(runs, lambda count: count >= min_workers)
    down = periods(runs, lambda count: count < min_workers)
    is_up = available >= min_workers
    ended_up = len(up) - (1 if is_up else 0)
    ended_down = len(down) - (0 if is_up else 1)
    return ((ended_up + 1) / (sum(up) + PRIOR_PERIOD_S), (ended_down + 1) / (sum(down) + PRIOR_PERIOD_S))


def age_aware_rates(history: tuple[SpotRun, ...], available: int, age_s: float,
                    min_workers: int) -> tuple[float, float]:
    """As `switching_rates`, but the current state's rate is 1 / R(a), the mean residual life of a period
    that has lasted a (`availability.expected_remaining_s`, heavy-tailed: R grows with a)."""
    lam_down, lam_up = switching_rates(history, available, age_s, min_workers)
    runs = [*history, (available, age_s)]
    is_up = available >= min_workers
    same = periods(runs, (lambda count: count >= min_workers) if is_up else (lambda count: count < min_workers))
    rest = expected_remaining_s(same[:-1], same[-1])
    rate = 1.0 / max(rest, 1.0)
    return (rate, lam_up) if is_up else (lam_down, rate)


def spot_model(lam_down: float, lam_up: float, step_s: float) -> SpotModel:
    """q = 1 - exp(-h * lam), lam rounded to the RATE_GRID log grid."""

    def snap(rate: float) -> float:
        return float(2.0 ** (round(math.log2(max(rate, 1e-9)) * RATE_GRID) / RATE_GRID))

    return SpotModel(1.0 - math.exp(-step_s * snap(lam_down)), 1.0 - math.exp(-step_s * snap(lam_up)))


Policy = npt.NDArray[np.int8]
"""Best action per (t, w, a, s), s = 0 idle, 1 + r spot with r restart steps left, D + 2 + r on-demand."""


@functools.lru_cache(maxsize=160)
def solve(job: PlannerJob, model: SpotModel) -> Policy:
    """Backward induction of the Bellman recursion in the module docstring; returns the argmin actions."""
    d = job.restart_steps
    configs = 2 * d + 3
    work = np.arange(job.work_steps + 1)
    transition = np.array([[1.0 - model.q_up, model.q_up], [model.q_down, 1.0 - model.q_down]])
    value = np.broadcast_to((MISS_PENALTY * job.on_demand_cost * work)[:, None, None],
                            (work.size, 2, configs)).copy()
    policy = np.zeros((job.steps + 1, work.size, 2, configs), dtype=np.int8)
    big = MISS_PENALTY * job.on_demand_cost * (job.work_steps + 1)
    for t in range(1, job.steps + 1):
        expected = np.einsum("ab,wbs->was", transition, value)
        # run one step on a configuration whose restart has r steps left, landing in the state after it
        def run(first: int, r: int, price: float) -> npt.NDArray[np.float64]:
            after = first + max(r - 1, 0)
            landed = expected[:, :, after]
            if r == 0:
                landed = np.concatenate([np.zeros((1, 2)), landed[:-1]])
            return price + landed
        idle = expected[:, :, IDLE]
        start_spot = run(1, d, job.spot_cost)
        start_spot[:, 0] = big
        start_on_demand = run(d + 2, d, job.on_demand_cost)
        candidates = np.full((4, work.size, 2, configs), big)
        candidates[IDLE] = idle[:, :, None]
        candidates[SPOT] = start_spot[:, :, None]
        candidates[ON_DEMAND] = start_on_demand[:, :, None]
        for r in range(d + 1):
            keep_spot = run(1, r, job.spot_cost)
            keep_spot[:, 0] = big
            candidates[KEEP, :, :, 1 + r] = keep_spot
            candidates[SPOT, :, :, 1 + r] = big
            candidates[KEEP, :, :, d + 2 + r] = run(d + 2, r, job.on_demand_cost)
            candidates[ON_DEMAND, :, :, d + 2 + r] = big
        best = np.argmin(candidates, axis=0)
        value = np.take_along_axis(candidates, best[None], axis=0)[0]
        value[0] = 0.0
        policy[t] = best
    return policy


@dataclass(frozen=True)
class PlanState:
    """The live state of a one-worker job in seconds, as the operator sees it."""

    window_s: float
    seconds_left: float
    work_total_s: float
    work_left_s: float
    restart_s: float
    restart_left_s: float
    step_s: float
    spot_price: float
    on_demand_price: float
    spot_up: bool
    #: "idle", "spot" or "on-demand"
    running: str


def planner_job(state: PlanState) -> tuple[PlannerJob, float]:
    """The grid for this job and its step h = max(decision interval, window / MAX_STEPS)."""
    step = max(state.step_s, state.window_s / MAX_STEPS)
    job = PlannerJob(
        steps=math.ceil(state.window_s / step), work_steps=math.ceil(state.work_total_s / step - 1e-9),
        restart_steps=math.ceil(state.restart_s / step - 1e-9), spot_cost=round(state.spot_price * step / 3600.0, 4),
        on_demand_cost=round(state.on_demand_price * step / 3600.0, 4),
    )
    return job, step


def best_action(state: PlanState, model_rates: tuple[float, float]) -> str:
    """The planner's action now: "idle", "keep", "spot" or "on-demand" (see the module docstring)."""
    job, step = planner_job(state)
    policy = solve(job, spot_model(*model_rates, step))
    d = job.restart_steps
    t = min(max(math.floor(state.seconds_left / step + 1e-9), 0), job.steps)
    w = min(math.ceil(state.work_left_s / step - 1e-9), job.work_steps)
    r = min(math.ceil(state.restart_left_s / step - 1e-9), d)
    s = {"idle": IDLE, "spot": 1 + r, "on-demand": d + 2 + r}[state.running]
    if state.running == "spot" and not state.spot_up:
        s = IDLE
    return ACTION_NAMES[int(policy[t, w, int(state.spot_up), s])]


def applies(one_worker: bool, has_deadline: bool, spot_enabled: bool, on_demand_enabled: bool) -> bool:
    """The planner covers MinCost jobs of one useful worker with a deadline and both capacity types."""
    return one_worker and has_deadline and spot_enabled and on_demand_enabled
