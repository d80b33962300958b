"""What the spot availability seen so far says about the rest of the job: an online forecast, no look-ahead.

The operator records every change of the spot capacity obtainable for the job as a run
(count, seconds it lasted), oldest first; the run in progress is (count now, its age). From those runs:

- periods: a spot generation of s workers lives while the count stays >= s, so the lengths that matter
  are those of the maximal periods with count >= s (uptimes) and with count < m (outages, m the
  smallest size the job may run at);
- R(a), the expected rest of a period that has lasted a, is the empirical mean residual life over the
  completed periods longer than a, with one pseudo-observation of a itself (Lindy: a period that has
  lasted a is expected to last about a more when nothing longer has been seen):

      R(a) = (a + sum_{D_j > a} (D_j - a)) / (1 + #{D_j > a})

  Spot outages and uptimes are heavy-tailed, so R grows with a: an outage that has lasted long is
  expected to last longer still, which is when waiting for spot stops paying;
- q, the usable spot fraction: the full-speed seconds of spot work per second of wall time, each uptime
  paying one restart d, shrunk towards a prior q0 with the weight of H0 seconds:

      q = (q0 * H0 + sum_P wbar_P * max(len_P - d, 0)) / (H0 + sum_P len_P),
      wbar_P = mean over P of X(min(count, N)) / X(N)   (0 in outages).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SpotRun = tuple[int, float]
"""(spot workers obtainable, seconds that count lasted)."""


@dataclass(frozen=True)
class SpotOutlook:
    """The forecast the MinCost rules use (all in seconds)."""

    #: q: full-speed seconds of spot work per wall-clock second, restarts paid
    usable_fraction: float
    #: R(a) of the period in progress: the uptime at the current count, or the outage
    period_left_s: float
    #: F: full-speed seconds of spot work expected before the deadline (see `forecast`)
    spot_work_s: float


def periods(runs: Sequence[SpotRun], inside: Callable[[int], bool]) -> list[float]:
    """Lengths of the maximal stretches of consecutive runs whose count satisfies `inside`."""
    lengths: list[float] = []
    open_period = False
    for count, seconds in runs:
        if inside(count):
            if open_period:
                lengths[-1] += seconds
            else:
                lengths.append(seconds)
            open_period = True
        else:
            open_period = False
    return lengths


def expected_remaining_s(completed: Sequence[float], age_s: float) -> float:
    """R(a) = (a + sum_{D_j > a} (D_j - a)) / (1 + #{D_j > a}) over the completed periods D_j."""
    longer = [length - age_s for length in completed if length > age_s]
    return (age_s + sum(longer)) / (1 + len(longer))


def usable_fraction(runs: Sequence[SpotRun], weight: Callable[[int], float], min_workers: int,
                    restart_overhead_s: float, prior_fraction: float, prior_weight_s: float) -> float:
    """q = (q0 * H0 + sum_P wbar_P * max(len_P - d, 0)) / (H0 + sum_P len_P); `runs` includes the one in
    progress, `weight(c)` is X(min(c, N)) / X(N)."""
    usable = 0.0
    observed = 0.0
    period_work = period_seconds = 0.0
    for count, seconds in [*runs, (0, 0.0)]:
        observed += seconds
        if count >= min_workers:
            period_work += weight(count) * seconds
            period_seconds += seconds
            continue
        if period_seconds > 0:
            mean_weight = period_work / period_seconds
            usable += mean_weight * max(period_seconds - restart_overhead_s, 0.0)
        period_work = period_seconds = 0.0
    return (prior_fraction * prior_weight_s + usable) / (prior_weight_s + observed)


def forecast(history: Sequence[SpotRun], available: int, age_s: float, spot_workers: int, min_workers: int,
             weight: Callable[[int], float], restart_overhead_s: float, entry_overhead_s: float,
             seconds_left: float, prior_fraction: float, prior_weight_s: float) -> SpotOutlook:
    """F, the spot work expected before the deadline T, in full-speed seconds.

    With s = `spot_workers` >= m usable now (w = weight(s), e the restart still to pay to run on them):
        U = R(a) of the uptime at >= s;  F = w * max(min(U, T) - e, 0) + q * max(T - U, 0)
    in an outage (fewer than m obtainable):
        R = R(a) of the outage;          F = q * max(T - R, 0)
    """
    runs = [*history, (available, age_s)]
    q = usable_fraction(runs, weight, min_workers, restart_overhead_s, prior_fraction, prior_weight_s)
    if spot_workers >= min_workers:
        at_least = periods(runs, lambda count: count >= spot_workers)
        uptime = expected_remaining_s(at_least[:-1], at_least[-1])
        work = weight(spot_workers) * max(min(uptime, seconds_left) - entry_overhead_s, 0.0)
        return SpotOutlook(q, uptime, work + q * max(seconds_left - uptime, 0.0))
    below = periods(runs, lambda count: count < min_workers)
    outage = expected_remaining_s(below[:-1], below[-1])
    return SpotOutlook(q, outage, q * max(seconds_left - outage, 0.0))


def wait_limit_s(outages: Sequence[float], outages_per_second: float, seconds_left: float,
                 budget_s: float) -> float:
    """a*: wait out each outage up to this age, then run on-demand. With n = rate * T outages expected
    before the deadline, a* is the largest age with n * E[min(D, a*)] <= B (B the slack left to spend
    on waiting); inf when n * E[D] <= B, 0 without budget. Waiting out the short outages and filling
    the long ones keeps each filled outage worth its two restarts (into on-demand and back to spot)."""
    expected = outages_per_second * seconds_left
    if budget_s <= 0 or not outages:
        return 0.0 if budget_s <= 0 else math.inf
    per_outage = budget_s / max(expected, 1.0)
    lengths = sorted(outages)
    if sum(lengths) / len(lengths) <= per_outage:
        return math.inf
    # E[min(D, a)] is piecewise linear in a: walk the sorted lengths to the piece holding per_outage
    below = 0.0
    for index, length in enumerate(lengths):
        longer = len(lengths) - index
        if (below + longer * length) / len(lengths) >= per_outage:
            return (per_outage * len(lengths) - below) / longer
        below += length
    return math.inf


@dataclass(frozen=True)
class Outages:
    """The outages seen so far: periods with fewer than m spot workers obtainable."""

    #: lengths of the completed outages (s)
    completed: tuple[float, ...]
    #: age of the outage in progress (s); None while spot is usable
    current_age_s: float | None
    #: outages begun per second of observation
    per_second: float


def outages(history: Sequence[SpotRun], available: int, age_s: float, min_workers: int) -> Outages:
    """Split the observed runs (and the one in progress) into outage periods."""
    runs = [*history, (available, age_s)]
    below = periods(runs, lambda count: count < min_workers)
    ongoing = available < min_workers
    observed = sum(seconds for _, seconds in runs)
    completed = tuple(below[:-1] if ongoing else below)
    return Outages(completed, below[-1] if ongoing else None, len(below) / observed if observed > 0 else 0.0)
