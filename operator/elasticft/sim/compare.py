"""Run every policy (and the omniscient optimum) on the same trace windows and summarise the costs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from elasticft.sim import omniscient
from elasticft.sim.policies import POLICIES
from elasticft.sim.replay import RunResult, SimJob, follow_schedule, replay
from elasticft.sim.trace import SpotTrace

OMNISCIENT = "omniscient"


def run_policies(job: SimJob, trace: SpotTrace, starts: list[int], names: Iterable[str]) -> dict[str, list[RunResult]]:
    """One RunResult per start tick for each named policy; `omniscient` replays its hindsight schedule."""
    results: dict[str, list[RunResult]] = {}
    for name in names:
        if name == OMNISCIENT:
            optimum = omniscient.plan(job, trace, starts)
            results[name] = [replay(job, trace, start, follow_schedule(schedule))
                             for start, schedule in zip(starts, optimum.schedules, strict=True)]
        else:
            results[name] = [replay(job, trace, start, POLICIES[name]) for start in starts]
    return results


@dataclass(frozen=True)
class PolicySummary:
    """Means over runs; `cost_vs_omniscient` is mean cost over the omniscient's mean cost."""

    cost: float
    cost_vs_omniscient: float
    on_demand_hours: float
    spot_hours: float
    on_demand_work_hours: float
    spot_work_hours: float
    completion_hours: float
    restarts: float
    deadline_misses: int
    runs: int


def summarise(results: dict[str, list[RunResult]]) -> dict[str, PolicySummary]:
    """Aggregate per policy; the omniscient's mean cost (if present) is the reference."""
    reference = float(np.mean([r.cost for r in results[OMNISCIENT]])) if OMNISCIENT in results else float("nan")
    summary = {}
    for name, runs in results.items():
        cost = float(np.mean([r.cost for r in runs]))
        summary[name] = PolicySummary(
            cost=cost,
            cost_vs_omniscient=cost / reference,
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
