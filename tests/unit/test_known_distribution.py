"""The known-distribution reference: hazards counted by hand, and the choices a known distribution implies."""

from __future__ import annotations

import numpy as np
import pytest

from elasticft.sim import baselines, known_distribution, omniscient
from elasticft.sim.replay import SimJob, SimObservation, follow_schedule, replay, start_ticks
from elasticft.sim.trace import SpotTrace
from elasticft.types import Size


def trace_of(counts: list[int], gap_seconds: float = 3600.0) -> SpotTrace:
    return SpotTrace("hand", gap_seconds, np.asarray(counts, dtype=np.int64))


def test_hazards_are_the_share_of_runs_of_each_age_that_end_there() -> None:
    # spot runs of 2 and 3 ticks, outages of 1 and 2 ticks
    hazards = known_distribution.fit_hazards(np.array([1, 1, 0, 1, 1, 1, 0, 0]), max_age=4)
    assert hazards.h[1].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert hazards.h[0].tolist() == [0.5, 1.0, 1.0, 1.0]


def test_hazard_past_the_table_is_runs_ended_over_ticks_spent_there() -> None:
    # spot runs of 5 and 7 ticks with a table of 3 ages: ages >= 2 were lived 3 + 5 ticks, 2 runs ended
    hazards = known_distribution.fit_hazards(np.array([1] * 5 + [0] + [1] * 7 + [0]), max_age=3)
    assert hazards.h[1, 2] == pytest.approx(2 / 8)


def test_spot_that_never_fails_is_used_from_the_start() -> None:
    job = SimJob(work_hours=3.0, deadline_hours=5.0, restart_overhead_hours=0.5)
    trace = trace_of([1] * 8)
    result = replay(job, trace, 0, known_distribution.policy(job, trace.gap_seconds, trace.available))
    assert result.deadline_met and result.on_demand_hours == 0.0
    assert result.cost == pytest.approx(3.5)


def test_without_spot_it_runs_on_demand_and_meets_the_deadline() -> None:
    job = SimJob(work_hours=3.0, deadline_hours=5.0, restart_overhead_hours=0.5)
    trace = trace_of([0] * 8)
    result = replay(job, trace, 0, known_distribution.policy(job, trace.gap_seconds, trace.available))
    assert result.deadline_met
    assert result.cost == pytest.approx(3.14 * 3.5)


def test_outages_known_to_be_short_are_waited_out() -> None:
    # every outage lasts one tick: with 6 h of slack, waiting beats paying for on-demand
    job = SimJob(work_hours=6.0, deadline_hours=12.0, restart_overhead_hours=0.25)
    trace = trace_of([1, 1, 1, 0] * 6)
    result = replay(job, trace, 0, known_distribution.policy(job, trace.gap_seconds, trace.available))
    assert result.deadline_met and result.on_demand_hours == 0.0


def test_outage_known_to_be_long_is_filled_with_on_demand() -> None:
    # outages last 6 h; with 2 h of slack the job cannot wait one out: it idles the hour its slack spares
    # (1 h + 2 restarts of 0.25 h fit) and fills the rest of the outage, then takes spot when it returns
    job = SimJob(work_hours=8.0, deadline_hours=10.0, restart_overhead_hours=0.25)
    trace = trace_of(([0] * 6 + [1] * 6) * 4)
    chosen = known_distribution.policy(job, trace.gap_seconds, trace.available)
    choices: list[Size] = []

    def watch(observation: SimObservation) -> Size:
        choices.append(chosen(observation))
        return choices[-1]

    result = replay(job, trace, 0, watch)
    assert result.deadline_met
    assert choices[:7] == [(0, 0)] + [(0, 1)] * 5 + [(1, 0)]


def test_it_meets_every_deadline_and_costs_between_the_omniscient_and_on_demand() -> None:
    rng = np.random.default_rng(7)
    counts: list[int] = []
    while len(counts) < 300:
        counts += [int(rng.integers(0, 2))] * int(rng.pareto(1.2) + 1)
    trace = SpotTrace("random", 1800.0, np.asarray(counts[:300], dtype=np.int64))
    job = SimJob(work_hours=16.0, deadline_hours=20.0, restart_overhead_hours=0.25)
    chosen = known_distribution.policy(job, trace.gap_seconds, trace.available)
    starts = start_ticks(trace, job, 6)
    optimum = omniscient.plan(job, trace, starts)
    for start, schedule in zip(starts, optimum.schedules, strict=True):
        result = replay(job, trace, start, chosen)
        assert result.deadline_met, start
        assert replay(job, trace, start, follow_schedule(schedule)).cost - 1e-6 <= result.cost
        assert result.cost <= replay(job, trace, start, baselines.on_demand).cost + 1e-6


def test_jobs_of_more_than_one_worker_are_refused() -> None:
    job = SimJob(work_hours=2.0, deadline_hours=4.0, restart_overhead_hours=0.1, speedup=(0.0, 1.0, 1.9))
    with pytest.raises(ValueError, match="single-worker"):
        known_distribution.policy(job, 3600.0, np.array([1, 0]))


def test_a_table_that_would_not_fit_in_memory_is_refused_before_anything_is_allocated() -> None:
    job = SimJob(48.0, 60.0, 0.2)
    assert known_distribution.too_large(job, 600.0) is None  # Table 3's traces: a few hundred MiB
    reason = known_distribution.too_large(job, 195.0)  # the long traces' tick
    assert reason is not None and "GiB at a 195 s tick" in reason
    with pytest.raises(ValueError, match="does not fit"):
        known_distribution.solve(job, 195.0, known_distribution.fit_hazards(np.ones(100, dtype=np.int64)))
