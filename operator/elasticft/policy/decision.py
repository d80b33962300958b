"""The sizing decision: how many spot and on-demand workers a job should run now, and why.

Vocabulary (all times in seconds, throughput X(n) in samples/s from `policy.throughput`):

- N: the largest useful size, `max_workers` capped where a worker's marginal throughput falls below
  `min_scaling_efficiency` of its share (see `useful_max_workers`);
- N_od: MinCost's on-demand size, the smallest n with W / X(n) <= 0.8 T (`on_demand_size`): on a
  sublinear curve on-demand work is cheapest on few workers, while spot may still use up to N. S and L
  below are taken at N_od; the safety net (rule 1) at N, so that it always finishes;
- W: samples left; T: time left to the deadline; d: restart overhead (save + reschedule + load);
  g: the decision interval (how long a decision holds);
- slack S = T - W / X(N) - r, with r the restart still in progress: the time the job can still spend
  idle, restarting or running below full speed and yet finish on N on-demand workers. Running at X(N)
  keeps S constant; idling spends it at 1 s/s; every restart spends d.
- pace line L = pace * (1 - F0 / T0) * T, with F0 the whole job's time at X(N) and T0 the whole
  window: *Can't Be Late*'s uniform-progress line (pace = 1) expressed as slack, loosened by `pace` < 1.

MinCost rules (single worker: Can't Be Late's Uniform Progress with its hysteresis replaced by slack
arithmetic; N workers: the same on counts, with the elastic edge of using any k <= N spot workers):

1. safety net (`_rule1_safety_net`): idle, or running below full speed, with S - d < 2d + g: move to N
   on-demand and stay; unless the running world of k finishes with a restart to spare, W / X(k) <= T - r
   - d - g (`_finishes_where_it_is`);
2. exploitation (`_rule2_keep_running_spot`): a running spot generation is kept until it is preempted;
3. taking risks (`_rule3_take_spot`): spot whenever at least `min_workers` spot workers are obtainable
   and S - d >= 2d + g (so that one preemption and a move to on-demand still fit);
4. uniform progress (`_rule4_uniform_progress`; `_spot_disabled` when spot is off): with no usable spot,
   idle while S >= L, on-demand otherwise; behind the line, spot workers are topped up to N with
   on-demand. Ahead of the line, an outage whose expected rest R(a) (from the outages seen so far,
   `policy.availability`) exceeds S - L + 3d is filled with on-demand at once: waiting it out would
   cross the line anyway, after spending slack a later spot run could use;
5. leave on-demand (`_rule5_leave_on_demand`) for spot only if S - d >= 2d + g, the spot capacity has
   lasted one decision interval (short-lived spot is the commonest kind and costs two restarts) and
   either S >= L or, behind the line, a full-speed mix of spot and on-demand saves enough (rule 6); and
   only if the spot stretch's expected rest R(a) saves more than the restart back to on-demand costs
   (`spot_stint_pays`);
6. change a running generation (`rescale_pays`, `swap_pays`, used by rules 2 and 5) only when the change
   repays its restart within `rescale_payback_s`: in throughput, (X(new) - X(now)) * payback >= X(new) *
   d, or in money, with c the hourly cost, (c(now) - c(new)) * payback >= c(new) * d; never within the
   cooldown;
7. elastic (`_rule7_elastic_spot_size`; N > m): spot runs at one robust size n* (`spot_size`): the
   smallest n whose training share u(n) over the availability seen so far (stretches with >= n
   obtainable, each entered with a restart d) keeps X(n) * u(n) on the pace W / (0.8 (T - r)). A new
   spot generation starts at n* only when n* are obtainable; a running one grows only up to n*; ahead of
   the line a measured dip below n* is waited out (rules 3-4 with no usable spot) instead of re-forming
   smaller and growing back, two restarts (with the availability's age not measured, the obtainable
   workers are used); an outage is filled with on-demand at the smallest n with W / X(n) <= 0.95 T.

MinTime runs the fastest configuration whose projected cost stays within the budget; Balanced is
MinCost aiming halfway between the fastest finish and the deadline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from elasticft.policy.availability import SpotRun, expected_remaining_s, outages, periods, stretches
from elasticft.policy.throughput import (
    PRIOR,
    ThroughputParams,
    ThroughputPoint,
    fit_throughput,
    predict_throughput,
)
from elasticft.types import Mode, Prices, Size

__all__ = ["Decision", "PolicyInput", "decide"]

#: Ahead of the pace line, an outage expected to outlast the slack above the line by this many restarts d
#: is filled with on-demand at once rather than after it has spent that slack.
OUTAGE_MARGIN_RESTARTS = 3.0
#: C/R of *Can't Be Late*'s jobs: MinCost sizes its on-demand fallback to keep this share of the time left.
JOB_FRACTION = 0.8
#: Elastic jobs fill an outage with on-demand sized for this C/R: spot does most of the work, so the
#: on-demand fill may run at the smaller, cheaper-per-sample size (measured: 0.95 beats 0.8 and 0.9).
ON_DEMAND_FILL_FRACTION = 0.95
#: Prior hours of observed availability with spot always there, for `spot_size` before much is seen.
SPOT_PRIOR_HOURS = 2.0


@dataclass(frozen=True)
class PolicyInput:
    """Everything the policy may know: the job's spec and what has been measured so far."""

    min_workers: int
    max_workers: int
    mode: Mode
    samples_done: float
    samples_left: float
    seconds_elapsed: float
    #: seconds to the deadline (negative once past it); None for a job without a deadline
    seconds_left: float | None
    #: measured (workers, samples/s); may be empty before the first measurement
    throughput_points: tuple[ThroughputPoint, ...]
    spot_price_per_hour: float
    on_demand_price_per_hour: float
    #: spot workers obtainable now: the running ones plus those that could be placed
    spot_available: int
    current_spot: int
    current_on_demand: int
    restart_overhead_s: float
    #: seconds since the observed spot availability last changed
    spot_availability_age_s: float = math.inf
    #: part of the current generation's restart that has not elapsed yet
    restart_remaining_s: float = 0.0
    seconds_since_rescale: float = math.inf
    rescale_cooldown_s: float = 0.0
    #: a spot worker of the current generation was preempted since the last decision
    preempted: bool = False
    decision_interval_s: float = 60.0
    cost_so_far: float = 0.0
    max_total_cost: float | None = None
    max_cost_per_hour: float | None = None
    spot_enabled: bool = True
    on_demand_enabled: bool = True
    min_scaling_efficiency: float = 0.0
    pace: float = 0.75
    #: completed runs of the observed spot availability since the job started, oldest first:
    #: (spot workers obtainable, seconds that count lasted); the run in progress is
    #: (spot_available, spot_availability_age_s)
    spot_history: tuple[SpotRun, ...] = ()
    rescale_payback_s: float = 7200.0
    throughput_prior: ThroughputParams = PRIOR

    @property
    def prices(self) -> Prices:
        return Prices(self.spot_price_per_hour, self.on_demand_price_per_hour)

    @property
    def current(self) -> Size:
        return Size(self.current_spot, self.current_on_demand)

    @property
    def min_size(self) -> int:
        """The smallest world worth running: min_workers, and never 0."""
        return max(self.min_workers, 1)


@dataclass(frozen=True)
class Decision:
    """Desired worker counts and a one-line reason (shown in status.lastDecision and Events)."""

    spot: int
    on_demand: int
    reason: str

    @property
    def workers(self) -> int:
        return self.spot + self.on_demand

    @property
    def size(self) -> Size:
        return Size(self.spot, self.on_demand)


def useful_max_workers(params: ThroughputParams, min_workers: int, max_workers: int,
                       min_scaling_efficiency: float) -> int:
    """N = the largest n <= max_workers with X(n) - X(n-1) >= min_scaling_efficiency * X(n) / n for all
    sizes up to n (a worker adding less than that fraction of its share is not worth paying for)."""
    best = max(min_workers, 1)
    for n in range(best + 1, max_workers + 1):
        x = predict_throughput(params, n)
        if x - predict_throughput(params, n - 1) < min_scaling_efficiency * x / n:
            break
        best = n
    return min(best, max_workers)


def slack_seconds(inp: PolicyInput, params: ThroughputParams, full_size: int) -> float:
    """S = T - W / X(N) - r: time the job may still lose and finish on N on-demand workers."""
    assert inp.seconds_left is not None
    return inp.seconds_left - inp.samples_left / predict_throughput(params, full_size) - inp.restart_remaining_s


def hourly_cost(inp: PolicyInput, spot: int, on_demand: int) -> float:
    """Cost per hour of a configuration (`Prices.rate`): spot * p_spot + on_demand * p_on_demand."""
    return inp.prices.rate(spot, on_demand)


def projected_cost(inp: PolicyInput, params: ThroughputParams, spot: int, on_demand: int) -> float:
    """Cost to finish on a configuration: hourly_cost * (d + W / X(spot + on_demand)) / 3600."""
    throughput = predict_throughput(params, spot + on_demand)
    if throughput <= 0:
        return math.inf
    seconds = inp.restart_overhead_s + inp.samples_left / throughput
    return hourly_cost(inp, spot, on_demand) * seconds / 3600.0


def rescale_pays(inp: PolicyInput, params: ThroughputParams, workers_now: int, workers_new: int) -> bool:
    """(X(new) - X(now)) * payback >= X(new) * d: the gain repays the restart within the payback time."""
    x_new = predict_throughput(params, workers_new)
    gain = x_new - predict_throughput(params, workers_now)
    return gain * inp.rescale_payback_s >= x_new * inp.restart_overhead_s


def swap_pays(inp: PolicyInput, now: tuple[int, int], new: tuple[int, int]) -> bool:
    """(c(now) - c(new)) * payback >= c(new) * d, c = hourly_cost: the saving repays the restart."""
    saving = hourly_cost(inp, *now) - hourly_cost(inp, *new)
    return saving * inp.rescale_payback_s >= hourly_cost(inp, *new) * inp.restart_overhead_s


def decide(inp: PolicyInput) -> Decision:
    """The configuration to run now; see the module docstring for the rules and their formulas."""
    if inp.samples_left <= 0:
        return Decision(0, 0, "finished: all samples consumed")
    params = fit_throughput(inp.throughput_points, inp.throughput_prior)
    full_size = useful_max_workers(params, inp.min_workers, inp.max_workers, inp.min_scaling_efficiency)
    spot_usable = min(inp.spot_available, full_size) if inp.spot_enabled else 0
    current = (inp.current_spot, inp.current_on_demand)
    running = sum(current) > 0
    broken = inp.preempted or inp.current_spot > spot_usable
    if running and not broken and inp.seconds_since_rescale < inp.rescale_cooldown_s:
        decision = Decision(*current, f"hold: in the rescale cooldown ({inp.rescale_cooldown_s:.0f} s)")
        if inp.seconds_left is None or not _must_fall_back(inp, params, full_size):
            return _within_budget(inp, params, decision)
    if inp.mode == Mode.MIN_TIME:
        decision = _fastest(inp, params, full_size, spot_usable, broken)
    elif inp.mode == Mode.BALANCED and inp.seconds_left is not None:
        fastest_finish = inp.samples_left / predict_throughput(params, full_size)
        midway = dataclasses.replace(inp, seconds_left=(inp.seconds_left + fastest_finish) / 2)
        decision = _cheapest(midway, params, full_size, spot_usable, broken)
    else:
        decision = _cheapest(inp, params, full_size, spot_usable, broken)
    return _within_budget(inp, params, decision)


def on_demand_size(inp: PolicyInput, params: ThroughputParams, largest: int,
                   fraction: float = JOB_FRACTION) -> int:
    """MinCost's on-demand size N_od = min{n in [m, N] : W / X(n) <= fraction * T}, else N.

    On-demand work costs n * k / X(n) per sample, which grows with n on a sublinear curve, so the
    cheapest on-demand size is the smallest that leaves the deadline the slack of a Can't Be Late job
    (C/R = fraction, JOB_FRACTION by default). Spot, far cheaper at any size, may still use up to N workers."""
    if inp.seconds_left is None:
        return largest
    for n in range(inp.min_size, largest):
        if inp.samples_left / predict_throughput(params, n) <= fraction * inp.seconds_left:
            return n
    return largest


def _at_least(size: int, count: int) -> bool:
    return count >= size


def spot_size(inp: PolicyInput, params: ThroughputParams, largest: int) -> int:
    """Elastic spot size n* = min{n in [m, N] : X(n) * u(n) >= W / (JOB_FRACTION * (T - r))}, else the n
    maximising X(n) * u(n), where

        u(n) = (sum_j max(P_j(n) - d, 0) + H) / (A + H)

    is the share of the observed time a job fixed at n workers would have spent training: P_j(n) are the
    stretches of the observed availability (history and the run in progress, total length A) with at least
    n spot workers obtainable, each entered with one restart d (but for the one in progress, whose restart
    is already paid or past), and H = SPOT_PRIOR_HOURS of prior observation with spot always there. The
    smallest size on pace is the cheapest (n / X(n) grows with n), and sits below the availability's
    frequent dips, so a dip from 16 to 14 obtainable does not preempt it."""
    assert inp.seconds_left is not None
    runs = observed_runs(inp)
    prior = SPOT_PRIOR_HOURS * 3600.0
    observed = sum(seconds for _, seconds in runs) + prior
    needed = inp.samples_left / (JOB_FRACTION * max(inp.seconds_left - inp.restart_remaining_s, 1.0))
    best, best_rate = largest, -1.0
    for n in range(inp.min_size, largest + 1):
        lengths = periods(runs, functools.partial(_at_least, n))
        useful = sum(max(length - inp.restart_overhead_s, 0.0) for length in lengths) + prior
        if lengths and runs[-1][0] >= n:  # the stretch in progress: its restart is not counted against it
            useful += min(lengths[-1], inp.restart_overhead_s)
        rate = predict_throughput(params, n) * useful / observed
        if rate >= needed:
            return n
        if rate > best_rate:
            best, best_rate = n, rate
    return best


def observed_runs(inp: PolicyInput) -> list[SpotRun]:
    """The completed availability runs and the one in progress (`spot_available` for its age, if measured)."""
    runs = list(inp.spot_history)
    if math.isfinite(inp.spot_availability_age_s):
        runs.append((inp.spot_available, inp.spot_availability_age_s))
    return runs


def spot_stint_pays(inp: PolicyInput, params: ThroughputParams, now: tuple[int, int], new: tuple[int, int]) -> bool:
    """Leaving on-demand `now` for spot `new` pays when the expected spot stint saves more than the restart
    back to on-demand costs:

        (c(now) / X(now)) * X(new) * (R - d) - c(new) * R >= c(now) * d

    with c = hourly_cost and R = R(a) (`availability.expected_remaining_s`) of the stretch in progress
    with at least new.spot workers obtainable, over the completed such stretches: a spot stretch that
    usually ends within a restart or two is not worth leaving on-demand for. With the availability's age
    not measured there is nothing to go on, and the move is allowed."""
    if not math.isfinite(inp.spot_availability_age_s):
        return True
    seen = stretches(inp.spot_history, inp.spot_available, inp.spot_availability_age_s,
                     functools.partial(_at_least, new[0]))
    if seen.current_age_s is None:
        return False
    remaining = expected_remaining_s(seen.completed, seen.current_age_s)
    d = inp.restart_overhead_s
    same_work_on_demand = hourly_cost(inp, *now) / predict_throughput(params, sum(now)) \
        * predict_throughput(params, sum(new)) * max(remaining - d, 0.0)
    saving = same_work_on_demand - hourly_cost(inp, *new) * remaining
    return saving >= hourly_cost(inp, *now) * d


def _must_fall_back(inp: PolicyInput, params: ThroughputParams, full_size: int) -> bool:
    """Safety net (rule 1): below full speed with S - d < 2d + g."""
    if not inp.on_demand_enabled:
        return False
    if inp.current_spot + inp.current_on_demand >= full_size and not inp.preempted:
        return False  # full speed spends no slack; entering it left room for one more restart
    d, g = inp.restart_overhead_s, inp.decision_interval_s
    if _finishes_where_it_is(inp, params):
        return False
    return slack_seconds(inp, params, full_size) - d < 2 * d + g


def _finishes_where_it_is(inp: PolicyInput, params: ThroughputParams) -> bool:
    """A running world of k workers that finishes with d + g to spare, W / X(k) <= T - r - d - g, needs no
    safety net: a preemption at any moment t of its run still leaves t + d + (W - X(k) t) / X(N) <=
    W / X(k) + d of time for the restart onto N on-demand. Moving it to N instead spends a restart d on
    work it would have finished in less (the end of a job, where W is small)."""
    workers = inp.current_spot + inp.current_on_demand
    if workers == 0 or inp.preempted or inp.seconds_left is None:
        return False
    time_left = inp.seconds_left - inp.restart_remaining_s - inp.restart_overhead_s - inp.decision_interval_s
    return inp.samples_left / predict_throughput(params, workers) <= time_left


def _cheapest(inp: PolicyInput, params: ThroughputParams, largest: int, spot_usable: int,
              broken: bool) -> Decision:
    """MinCost: the module docstring's rules in order, each a function named after its rule; the first
    that decides ends the look. The safety net falls back to N = `largest`, other on-demand use is N_od."""
    if inp.seconds_left is None:
        return _without_deadline(inp, params, largest, spot_usable, broken)
    full_size = on_demand_size(inp, params, largest)
    slack = slack_seconds(inp, params, full_size)
    line = pace_line_seconds(inp, params, full_size)
    hours = f"slack {slack / 3600:.2f} h, pace line {line / 3600:.2f} h"
    first = _rule1_safety_net(inp, params, largest, hours) or _spot_disabled(inp, full_size, broken, hours)
    if first is not None:
        return first
    look = _MinCostLook(inp, params, broken, full_size, slack, line, hours, spot_usable, (0, full_size))
    if largest > inp.min_size:
        look = _rule7_elastic_spot_size(look, largest)
    return (_rule5_leave_on_demand(look) or _rule2_keep_running_spot(look) or _rule3_take_spot(look)
            or _rule4_uniform_progress(look))


@dataclass(frozen=True)
class _MinCostLook:
    """What MinCost's rules 2-7 read at one look: N_od (`full_size`), S, L and the spot workers usable."""

    inp: PolicyInput
    params: ThroughputParams
    broken: bool
    full_size: int
    slack: float
    line: float
    hours: str  # the slack and line, as every reason states them
    spot_usable: int
    fallback: tuple[int, int]  # the on-demand size an outage is filled with

    @property
    def spot_ok(self) -> bool:
        return self.spot_usable >= self.inp.min_size

    @property
    def room_for_spot(self) -> bool:
        """S - d >= 2d + g: one preemption and a move to on-demand still fit."""
        d, g = self.inp.restart_overhead_s, self.inp.decision_interval_s
        return self.slack - d >= 2 * d + g

    @property
    def behind(self) -> bool:
        return self.slack < self.line

    @property
    def may_restart(self) -> bool:
        """Room for a restart, spot lasting one decision interval, and no restart still in progress."""
        inp = self.inp
        return self.room_for_spot and inp.spot_availability_age_s >= inp.decision_interval_s \
            and inp.restart_remaining_s <= 0

    def spot_config(self, reason: str) -> Decision:
        """The usable spot workers, topped up to N_od with on-demand behind the line (rule 4)."""
        top_up = max(self.full_size - self.spot_usable, 0) if self.behind and self.inp.on_demand_enabled else 0
        return Decision(self.spot_usable, top_up, f"{reason}: {self.spot_usable} spot"
                        f"{f' + {top_up} on-demand' if top_up else ''} ({self.hours})")


def _rule1_safety_net(inp: PolicyInput, params: ThroughputParams, largest: int, hours: str) -> Decision | None:
    """Rule 1: below full speed with S - d < 2d + g, move to N on-demand and stay."""
    if not _must_fall_back(inp, params, largest):
        return None
    if inp.current_spot == 0 and inp.current_on_demand >= largest:
        return Decision(*inp.current, f"on-demand until the end: {hours}")
    return Decision(0, largest, f"safety net: {hours} leaves no room for another restart; all on-demand")


def _spot_disabled(inp: PolicyInput, full_size: int, broken: bool, hours: str) -> Decision | None:
    """Rule 4 with spot disabled: nothing to wait for, N_od on-demand from the start."""
    if inp.spot_enabled:
        return None
    if inp.current_spot == 0 and inp.current_on_demand >= full_size and not broken:
        return Decision(*inp.current, f"spot disabled: keep {inp.current_on_demand} on-demand ({hours})")
    return Decision(0, full_size, f"spot disabled: {full_size} on-demand finish by the deadline ({hours})")


def _rule7_elastic_spot_size(look: _MinCostLook, largest: int) -> _MinCostLook:
    """Rule 7: one robust spot size n* per spot period instead of every worker obtainable; a dip below n*
    ahead of the line is waited out; an outage is filled at the ON_DEMAND_FILL_FRACTION size."""
    inp = look.inp
    size = spot_size(inp, look.params, largest)
    spot_usable = look.spot_usable
    if inp.current_spot > 0 and not look.broken:
        spot_usable = min(inp.spot_available, max(size, inp.current_spot))
    elif inp.spot_available >= size:
        spot_usable = size
    elif not look.behind and math.isfinite(inp.spot_availability_age_s):
        spot_usable = 0  # a dip below n*: wait for it to pass (or fill an outage) rather than re-form twice
    fallback = (0, on_demand_size(inp, look.params, largest, ON_DEMAND_FILL_FRACTION))
    return dataclasses.replace(look, hours=f"{look.hours}, spot size {size}", spot_usable=spot_usable,
                               fallback=fallback)


def _rule5_leave_on_demand(look: _MinCostLook) -> Decision | None:
    """Rule 5 (and 6 behind the line): on a running on-demand world, move to spot only when it pays."""
    inp = look.inp
    if not (inp.current_spot == 0 and inp.current_on_demand > 0 and not look.broken):
        return None
    if look.spot_ok and look.may_restart:
        target = look.spot_config("spot is back and stable, slack allows a restart")
        new = (target.spot, target.on_demand)
        # behind the line, a full-speed mix of spot and on-demand still beats all on-demand
        if (not look.behind or (target.on_demand > 0 and swap_pays(inp, inp.current, new))) \
                and spot_stint_pays(inp, look.params, inp.current, new):
            return target
    return Decision(*inp.current, f"stay on on-demand ({look.hours}, {look.spot_usable} spot obtainable)")


def _rule2_keep_running_spot(look: _MinCostLook) -> Decision | None:
    """Rule 2: a running spot world is kept until preempted; rule 6: it grows only when that pays."""
    inp = look.inp
    if not (inp.current_spot > 0 and not look.broken):
        return None
    if look.spot_usable > inp.current_spot and look.may_restart:
        target = look.spot_config(f"more spot obtainable ({inp.current_spot} -> {look.spot_usable})")
        new = (target.spot, target.on_demand)
        if rescale_pays(inp, look.params, sum(inp.current), sum(new)) or swap_pays(inp, inp.current, new):
            return target
    return Decision(*inp.current, f"keep the running spot generation ({look.hours})")


def _rule3_take_spot(look: _MinCostLook) -> Decision | None:
    """Rule 3: idle, or the running world lost workers: spot when enough is obtainable and S - d >= 2d + g."""
    if not (look.spot_ok and look.room_for_spot):
        return None
    inp = look.inp
    return look.spot_config("preempted, re-forming on spot" if inp.preempted else "re-forming on the spot obtainable"
                            if look.broken else "spot obtainable")


def _rule4_uniform_progress(look: _MinCostLook) -> Decision:
    """Rule 4: no usable spot: on-demand behind the line or when the outage will outlast the slack above
    it; otherwise wait for spot."""
    inp = look.inp
    if not inp.on_demand_enabled:
        return Decision(0, 0, f"waiting for spot: on-demand capacity is disabled ({look.hours})")
    if look.behind or not look.room_for_spot:
        return Decision(*look.fallback, f"behind the pace line, no usable spot: on-demand ({look.hours})")
    outage_left = expected_outage_left_s(inp)
    if outage_left > look.slack - look.line + OUTAGE_MARGIN_RESTARTS * inp.restart_overhead_s:
        return Decision(*look.fallback, f"the outage is expected to last {outage_left / 3600:.2f} h more, past the"
                        f" pace line: on-demand now ({look.hours})")
    return Decision(0, 0, f"wait for spot: ahead of the pace line ({look.hours})")


def expected_outage_left_s(inp: PolicyInput) -> float:
    """R(a) of the outage in progress (`availability.expected_remaining_s` over the completed outages);
    0 when no outage is in progress or its age is unknown (`spot_availability_age_s` not measured)."""
    if not math.isfinite(inp.spot_availability_age_s):
        return 0.0
    seen = outages(inp.spot_history, inp.spot_available if inp.spot_enabled else 0, inp.spot_availability_age_s,
                   inp.min_size)
    if seen.current_age_s is None:
        return 0.0
    return expected_remaining_s(seen.completed, seen.current_age_s)


def pace_line_seconds(inp: PolicyInput, params: ThroughputParams, full_size: int) -> float:
    """L = pace * (1 - F0 / T0) * T, F0 = (samples done + left) / X(N), T0 = elapsed + T."""
    assert inp.seconds_left is not None
    window = inp.seconds_elapsed + inp.seconds_left
    if window <= 0:
        return 0.0
    whole_job = (inp.samples_done + inp.samples_left) / predict_throughput(params, full_size)
    return inp.pace * max(1.0 - whole_job / window, 0.0) * max(inp.seconds_left, 0.0)


def _without_deadline(inp: PolicyInput, params: ThroughputParams, full_size: int, spot_usable: int,
                      broken: bool) -> Decision:
    """No deadline: spot only, as many as are obtainable; on-demand only if spot is disabled."""
    current = (inp.current_spot, inp.current_on_demand)
    if not inp.spot_enabled:
        return Decision(0, full_size, "no deadline and spot disabled: on-demand")
    if spot_usable < inp.min_size:
        return Decision(0, 0, f"no deadline: wait for spot ({spot_usable} obtainable)")
    if inp.current_spot > 0 and not broken and inp.current_on_demand == 0 and not (
            spot_usable > inp.current_spot and rescale_pays(inp, params, inp.current_spot, spot_usable)):
        return Decision(*current, "no deadline: keep the running spot generation")
    return Decision(spot_usable, 0, f"no deadline: run on the {spot_usable} obtainable spot workers")


def _fastest(inp: PolicyInput, params: ThroughputParams, full_size: int, spot_usable: int,
             broken: bool) -> Decision:
    """MinTime: the largest size (spot first, on-demand to fill) whose projected cost fits the budget."""
    current = (inp.current_spot, inp.current_on_demand)
    budget_left = math.inf if inp.max_total_cost is None else inp.max_total_cost - inp.cost_so_far
    on_demand_max = full_size - spot_usable if inp.on_demand_enabled else 0
    candidates = [(spot_usable, o) for o in range(on_demand_max, -1, -1)]
    candidates += [(s, 0) for s in range(spot_usable - 1, 0, -1)]
    for spot, on_demand in candidates:
        if spot + on_demand < inp.min_size:
            continue
        if projected_cost(inp, params, spot, on_demand) > budget_left:
            continue
        target = (spot, on_demand)
        if target != current and sum(current) > 0 and not broken \
                and not rescale_pays(inp, params, sum(current), sum(target)):
            return Decision(*current, "fastest within budget: a resize would not repay its restart")
        return Decision(spot, on_demand, f"fastest within budget: {spot} spot + {on_demand} on-demand,"
                        f" projected {projected_cost(inp, params, spot, on_demand):.2f} of {budget_left:.2f} left")
    return Decision(0, 0, f"budget exhausted: no configuration finishes within {budget_left:.2f}")


def _within_budget(inp: PolicyInput, params: ThroughputParams, decision: Decision) -> Decision:
    """Clamp to `max_cost_per_hour` (on-demand workers go first) and to [min_workers, max_workers]."""
    spot, on_demand = decision.spot, decision.on_demand
    reason = decision.reason
    if inp.max_cost_per_hour is not None:
        while spot + on_demand > 0 and hourly_cost(inp, spot, on_demand) > inp.max_cost_per_hour + 1e-9:
            if on_demand > 0:
                on_demand -= 1
            else:
                spot -= 1
        if (spot, on_demand) != (decision.spot, decision.on_demand):
            reason += f"; capped at {inp.max_cost_per_hour:.2f}/h"
    total = spot + on_demand
    if total > inp.max_workers:
        on_demand = max(inp.max_workers - spot, 0)
        spot = min(spot, inp.max_workers)
    if 0 < spot + on_demand < inp.min_workers:
        return Decision(0, 0, f"{reason}; fewer than min_workers={inp.min_workers} affordable: idle")
    return Decision(spot, on_demand, reason)
