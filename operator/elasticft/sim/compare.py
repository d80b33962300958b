"""Run every policy (and the omniscient optimum) on the same trace windows and summarise the costs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from elasticft.sim import known_distribution, omniscient
from elasticft.sim.policies import POLICIES
from elasticft.sim.replay import RunResult, SimJob, follow_schedule, replay
from elasticft.sim.trace import SpotTrace

OMNISCIENT = "omniscient"
#: References for single-worker jobs (`sim.known_distribution`): the optimal policy for the availability's
#: run-length distribution fitted on the whole trace, or on the half of it the run does not start in.
KNOWN_DISTRIBUTION = "known-distribution"
HELD_OUT_DISTRIBUTION = "held-out-distribution"


def run_policies(job: SimJob, trace: SpotTrace, starts: list[int], names: Iterable[str]) -> dict[str, list[RunResult]]:
    """One RunResult per start tick for each named policy; `omniscient` replays its hindsight schedule."""
    results: dict[str, list[RunResult]] = {}
    for name in names:
        if name == KNOWN_DISTRIBUTION:
            fitted = known_distribution.policy(job, trace.gap_seconds, trace.available)
            results[name] = [replay(job, trace, start, fitted) for start in starts]
        elif name == HELD_OUT_DISTRIBUTION:
            results[name] = _held_out_runs(job, trace, starts)
        elif name == OMNISCIENT:
            optimum = omniscient.plan(job, trace, starts)
            results[name] = [replay(job, trace, start, follow_schedule(schedule))
                             for start, schedule in zip(starts, optimum.schedules, strict=True)]
        else:
            results[name] = [replay(job, trace, start, POLICIES[name]) for start in starts]
    return results


def _held_out_runs(job: SimJob, trace: SpotTrace, starts: list[int]) -> list[RunResult]:
    """The known-distribution policy fitted on the half of the trace each run does not start in."""
    half = trace.ticks // 2
    runs: dict[int, RunResult] = {}
    halves = ((trace.available[half:], range(half)), (trace.available[:half], range(half, trace.ticks)))
    for fitted_on, starting_in in halves:
        chosen = [start for start in starts if start in starting_in]
        if chosen:
            fitted = known_distribution.policy(job, trace.gap_seconds, fitted_on)
            runs.update((start, replay(job, trace, start, fitted)) for start in chosen)
    return [runs[start] for start in starts]


@dataclass(frozen=True)
class PolicySummary:
    """Means over runs; `*_vs_omniscient` is a mean over the omniscient's mean of the same measure.

    `cost` is what the instances bill; `work_cost` is the paper's Table 3 measure (`RunResult.work_cost`).
    """

    cost: float
    cost_vs_omniscient: float
    work_cost: float
    work_cost_vs_omniscient: float
    on_demand_hours: float
    spot_hours: float
    on_demand_work_hours: float
    spot_work_hours: float
    completion_hours: float
    restarts: float
    deadline_misses: int
    runs: int


def summarise(results: dict[str, list[RunResult]]) -> dict[str, PolicySummary]:
    """Aggregate per policy; the omniscient's mean cost and work cost (if present) are the references."""
    optimum = results.get(OMNISCIENT)
    reference = float(np.mean([r.cost for r in optimum])) if optimum else float("nan")
    work_reference = float(np.mean([r.work_cost for r in optimum])) if optimum else float("nan")
    summary = {}
    for name, runs in results.items():
        cost = float(np.mean([r.cost for r in runs]))
        work_cost = float(np.mean([r.work_cost for r in runs]))
        summary[name] = PolicySummary(
            cost=cost,
            cost_vs_omniscient=cost / reference,
            work_cost=work_cost,
            work_cost_vs_omniscient=work_cost / work_reference,
            on_demand_hours=float(np.mean([r.on_demand_hours for r in runs])),
            spot_hours=float(np.mean([r.spot_hours for r in runs])),
            on_demand_work_hours=float(np.mean([r.on_demand_work_hours for r in runs])),
            spot_work_hours=float(np.mean([r.spot_work_hours for r in runs])),
            completion_hours=float(np.mean([r.completion_hours for r in runs])),
            restarts=float(np.mean([r.restarts for r in runs])),
            deadline_misses=sum(not r.deadline_met for r in runs),
            runs=len(runs),
        )
    return summary
