"""What the spot availability seen so far says about the outage in progress: an online estimate, no look-ahead.

The operator records every change of the spot capacity obtainable for the job as a run
(count, seconds it lasted), oldest first; the run in progress is (count now, its age). From those runs:

- outages are the maximal periods with fewer than m spot workers obtainable (m the smallest size the
  job may run at);
- R(a), the expected rest of an outage that has lasted a, is the empirical mean residual life over the
  completed outages longer than a, with one pseudo-observation of a itself (Lindy: a period that has
  lasted a is expected to last about a more when nothing longer has been seen):

      R(a) = (a + sum_{D_j > a} (D_j - a)) / (1 + #{D_j > a})

  Spot outages are heavy-tailed, so R grows with a: an outage that has lasted long is expected to last
  longer still, which is when waiting for spot stops paying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

SpotRun = tuple[int, float]
"""(spot workers obtainable, seconds that count lasted)."""


@dataclass(frozen=True)
class Stretches:
    """The stretches seen so far of availability of one kind (outages: fewer than m obtainable; or at
    least n obtainable)."""

    #: lengths of the completed stretches (s)
    completed: tuple[float, ...]
    #: age of the stretch in progress (s); None while the availability now is of the other kind
    current_age_s: float | None


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
        open_period = inside(count)
    return lengths


def stretches(history: Sequence[SpotRun], available: int, age_s: float, inside: Callable[[int], bool]) -> Stretches:
    """Split the observed runs, and the one in progress (`available` for `age_s`), into the stretches
    whose counts satisfy `inside`."""
    lengths = periods([*history, (available, age_s)], inside)
    if inside(available):
        return Stretches(tuple(lengths[:-1]), lengths[-1])
    return Stretches(tuple(lengths), None)


def outages(history: Sequence[SpotRun], available: int, age_s: float, min_workers: int) -> Stretches:
    """The outages: stretches with fewer than `min_workers` spot workers obtainable."""
    return stretches(history, available, age_s, lambda count: count < min_workers)


def expected_remaining_s(completed: Sequence[float], age_s: float) -> float:
    """R(a) = (a + sum_{D_j > a} (D_j - a)) / (1 + #{D_j > a}) over the completed periods D_j."""
    longer = [length - age_s for length in completed if length > age_s]
    return (age_s + sum(longer)) / (1 + len(longer))
