"""The simulator: costs computed by hand, the omniscient optimum against brute force, deadline safety."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from elasticft.sim import baselines, omniscient
from elasticft.sim.policies import elasticft
from elasticft.sim.replay import IDLE, SimJob, SimObservation, follow_schedule, replay, start_ticks
from elasticft.sim.trace import SPOT_TRACES_DIR, SpotTrace, load_trace, load_trace_dir


def trace_of(counts: list[int], gap_seconds: float = 3600.0) -> SpotTrace:
    return SpotTrace("hand", gap_seconds, np.asarray(counts, dtype=np.int64))


def test_on_demand_run_costs_work_plus_one_restart_at_the_on_demand_price() -> None:
    job = SimJob(work_hours=3.0, deadline_hours=5.0, restart_overhead_hours=0.5)
    result = replay(job, trace_of([0] * 6), 0, baselines.on_demand)
    assert result.cost == pytest.approx(3.14 * 3.5)
    assert result.completion_hours == pytest.approx(3.5)
    assert result.deadline_met and result.on_demand_work_hours == pytest.approx(3.0)
    assert result.work_cost == pytest.approx(3.14 * 3.0)  # the paper's measure: the restart is not billed


def test_preempted_spot_run_pays_a_restart_on_each_side_of_the_outage() -> None:
    # spot for 2 h, gone for 1 h, back: greedy idles through the gap and restarts on spot.
    job = SimJob(work_hours=2.0, deadline_hours=8.0, restart_overhead_hours=0.5)
    result = replay(job, trace_of([1, 1, 0, 1, 1, 1, 1, 1, 1]), 0, baselines.greedy)
    # 1.5 h of work in the first 2 h, idle 1 h, then 0.5 h restart + 0.5 h work.
    assert result.cost == pytest.approx(2.0 + 1.0)
    assert result.completion_hours == pytest.approx(4.0)
    assert result.restarts == 2 and result.spot_work_hours == pytest.approx(2.0)
    assert result.work_cost == pytest.approx(2.0)


def test_elastic_job_runs_faster_on_more_workers_as_its_curve_says() -> None:
    job = SimJob(work_hours=3.6, deadline_hours=4.0, restart_overhead_hours=0.0, speedup=(0.0, 1.0, 1.8))
    result = replay(job, trace_of([2] * 4), 0, lambda _: (2, 0))
    assert result.completion_hours == pytest.approx(2.0)
    assert result.cost == pytest.approx(2 * 2.0)


def brute_force_cost(job: SimJob, trace: SpotTrace) -> float:
    ticks = int(job.deadline_hours * 3600 / trace.gap_seconds)
    configs = omniscient.configurations(job)
    best = np.inf
    for schedule in itertools.product(configs, repeat=ticks):
        if any(c[0] > a for c, a in zip(schedule, trace.available, strict=False)):
            continue
        result = replay(job, trace, 0, follow_schedule(list(schedule)))
        if result.deadline_met:
            best = min(best, result.cost)
    return float(best)


@pytest.mark.parametrize("counts", [[1, 0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 0, 1, 1]])
def test_omniscient_schedule_costs_what_brute_force_finds(counts: list[int]) -> None:
    job = SimJob(work_hours=3.0, deadline_hours=7.0, restart_overhead_hours=0.5)
    trace = trace_of(counts)
    plan = omniscient.plan(job, trace, [0])
    found = replay(job, trace, 0, follow_schedule(plan.schedules[0]))
    assert found.deadline_met
    assert found.cost == pytest.approx(brute_force_cost(job, trace))
    assert plan.lower_bound[0] <= found.cost + 1e-9


def test_omniscient_stays_between_its_lower_bound_and_twenty_percent_above_the_optimum() -> None:
    # a 7-tick window with a restart of half a tick is where the Lagrangian's duality gap is widest
    job = SimJob(work_hours=3.0, deadline_hours=7.0, restart_overhead_hours=0.5)
    trace = trace_of([1, 1, 0, 1, 0, 1, 0])
    plan = omniscient.plan(job, trace, [0])
    found = replay(job, trace, 0, follow_schedule(plan.schedules[0]))
    optimum = brute_force_cost(job, trace)
    assert found.deadline_met
    assert plan.lower_bound[0] <= optimum + 1e-9
    assert optimum <= found.cost <= 1.2 * optimum


def random_traces(count: int, ticks: int, seed: int) -> list[SpotTrace]:
    rng = np.random.default_rng(seed)
    traces = []
    for index in range(count):
        # runs of availability and outage with heavy-tailed lengths, like the real traces
        counts: list[int] = []
        while len(counts) < ticks:
            counts += [int(rng.integers(0, 5))] * int(rng.pareto(1.2) + 1)
        traces.append(SpotTrace(f"random-{index}", 600.0, np.asarray(counts[:ticks], dtype=np.int64)))
    return traces


def test_elasticft_meets_every_deadline_that_on_demand_meets() -> None:
    speedup = tuple([0.0] + [n / (1 + 0.05 * (n - 1)) for n in range(1, 5)])
    job = SimJob(work_hours=20 * speedup[4], deadline_hours=25.0, restart_overhead_hours=0.2, speedup=speedup)
    for trace in random_traces(6, 200, seed=1):
        for start in start_ticks(trace, job, 8):
            if replay(job, trace, start, baselines.on_demand).deadline_met:
                assert replay(job, trace, start, elasticft).deadline_met, (trace.name, start)


def test_elasticft_is_cheaper_than_uniform_progress_on_the_table3_traces() -> None:
    job = SimJob(work_hours=48.0, deadline_hours=60.0, restart_overhead_hours=0.2)
    ours, theirs = [], []
    for trace in load_trace_dir(SPOT_TRACES_DIR / "availability/1-node/aws-10-26-2022")[:4]:
        for start in start_ticks(trace, job, 6):
            ours.append(replay(job, trace, start, elasticft))
            theirs.append(replay(job, trace, start, baselines.uniform_progress))
    assert all(r.deadline_met for r in ours)
    assert sum(r.cost for r in ours) < sum(r.cost for r in theirs)


def test_policy_asking_for_unavailable_spot_is_rejected() -> None:
    job = SimJob(work_hours=1.0, deadline_hours=3.0, restart_overhead_hours=0.1)
    with pytest.raises(ValueError, match="available"):
        replay(job, trace_of([0, 0, 0]), 0, lambda _: (1, 0))


def test_malformed_trace_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"data": [1, 0]}))
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_trace(path)


def test_idle_schedule_never_finishes() -> None:
    job = SimJob(work_hours=1.0, deadline_hours=2.0, restart_overhead_hours=0.1)
    result = replay(job, trace_of([1] * 10), 0, follow_schedule([IDLE]))
    assert not result.finished and not result.deadline_met


def test_policy_sees_the_availability_history_of_the_run_so_far_and_nothing_later() -> None:
    job = SimJob(work_hours=10.0, deadline_hours=6.0, restart_overhead_hours=0.1)
    seen = []

    def watch(observation: SimObservation) -> tuple[int, int]:
        seen.append((observation.availability_history, observation.hours_since_availability_change))
        return IDLE

    replay(job, trace_of([9, 1, 1, 0, 2, 2, 2, 0]), 1, watch)
    assert seen[0] == ((), 0.0)
    assert seen[2] == (((1, 2.0),), 0.0)
    assert seen[4] == (((1, 2.0), (0, 1.0)), 1.0)
