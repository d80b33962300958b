"""Baseline policies for the simulator.

All baselines run the job at its full size N = `job.max_workers` (a gang), except `throughput-only`, which
is elastic. Time is counted in ticks, as in the *Can't Be Late* simulator, because a decision holds for a
whole tick: a safety net computed in continuous time is late by up to one tick.
"""

from __future__ import annotations

import math

from elasticft.sim.replay import SimObservation
from elasticft.types import IDLE, Size


def _gang(observation: SimObservation) -> int:
    return observation.job.max_workers


def _full_speed_hours_left(observation: SimObservation) -> float:
    """C(t): hours of compute left at full size."""
    job = observation.job
    return observation.work_left_hours / job.speedup[job.max_workers]


def _past_point_of_no_return(observation: SimObservation, changeovers: int) -> bool:
    """True when the ticks left no longer cover the compute left plus `changeovers` restarts."""
    gap = observation.gap_hours
    ticks_left = math.floor(observation.hours_left / gap + 1e-9)
    ticks_needed = math.ceil(
        (_full_speed_hours_left(observation) + changeovers * observation.job.restart_overhead_hours) / gap
        - 1e-9
    )
    return ticks_needed >= ticks_left


def on_demand(observation: SimObservation) -> Size:
    """Everything on on-demand at full size, from start to finish."""
    return Size(0, _gang(observation))


def greedy(observation: SimObservation) -> Size:
    """Spot whenever N spot instances are available, idle otherwise, and a safety net.

    Once the ticks left no longer cover C(t) + 2d the job moves to on-demand for good; a spot run
    already past its restart is kept until preempted while the ticks still cover C(t) + d.
    """
    n = _gang(observation)
    on_spot = observation.current == (n, 0) and observation.restart_overhead_left_hours <= 1e-9
    if observation.current == (0, n):
        return Size(0, n)
    if _past_point_of_no_return(observation, changeovers=1):
        return Size(n, 0) if on_spot else Size(0, n)
    if _past_point_of_no_return(observation, changeovers=2) and not on_spot:
        return Size(0, n)
    return Size(n, 0) if observation.spot_available >= n else IDLE


def uniform_progress(observation: SimObservation) -> Size:
    """Uniform Progress (Can't Be Late), polarized to 0-or-N spot instances for a gang of N.

    With cp(t) the compute done and ep(t) = t * C0 / R0 the uniform-progress line:
    safety net: when the ticks left no longer cover C(t) + 2d, on-demand until the end;
    hysteresis: on on-demand, stay there until cp(t) >= ep(t + 2d);
    taking risks: spot whenever N instances are available;
    uniform progress: idle while cp(t) >= ep(t), on-demand to catch up otherwise.
    """
    job = observation.job
    n = _gang(observation)
    d = job.restart_overhead_hours

    def expected_progress(t: float) -> float:
        return t * job.full_speed_hours / job.deadline_hours

    progress = observation.work_done_hours / job.speedup[n]
    if _past_point_of_no_return(observation, changeovers=2):
        return Size(0, n)
    if observation.current == (0, n) and progress < expected_progress(observation.elapsed_hours + 2 * d):
        return Size(0, n)
    if observation.spot_available >= n:
        return Size(n, 0)
    if progress < expected_progress(observation.elapsed_hours):
        return Size(0, n)
    return IDLE


def throughput_only(observation: SimObservation) -> Size:
    """DLRover-like: always N workers for the best throughput, spot first, on-demand for the rest."""
    n = _gang(observation)
    spot = min(observation.spot_available, n)
    return Size(spot, n - spot)
