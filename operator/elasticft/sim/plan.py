"""`elasticft plan JOB.yaml`: predicted cost and completion time of a job under each policy on a trace,
and the cost-time Pareto frontier over worker counts and deadlines.

The job's work comes from its spec: totalSteps * globalBatchSize samples at the throughput prior
(`spec.throughputPrior`: one worker's samples/s and the Amdahl serial fraction). The deadline is
`objective.maxDuration`, or `objective.deadline` from now, or else 1.25 x the time at maxWorkers (the
*Can't Be Late* job fraction 0.8). The trace's ticks are split so that the job spans at least 100 of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from elasticft.api import FineTuneJob, InvalidJobError, load_finetunejobs
from elasticft.api.durations import parse_duration
from elasticft.sim.compare import OMNISCIENT, PolicySummary, run_policies, summarise
from elasticft.sim.policies import POLICIES
from elasticft.sim.replay import SimJob, start_ticks
from elasticft.sim.trace import SPOT_TRACES_DIR, SpotTrace, load_trace

DEFAULT_TRACE = SPOT_TRACES_DIR / "availability/16-node/aws-08-27-2023/us-west-2a_v100_1.json"
#: p3.2xlarge, the reference prices of the Can't Be Late paper: used when the spec gives no price.
DEFAULT_SPOT_PRICE = 0.97
DEFAULT_ON_DEMAND_PRICE = 3.06
JOB_FRACTION = 0.8
MIN_TICKS_PER_JOB = 100
DEADLINE_FACTORS = (0.5, 1.0, 1.5, 2.0)


class PlanError(ValueError):
    """The job lacks something the plan needs; the message says which field."""


def sim_job(job: FineTuneJob, restart_overhead_s: float, now: datetime) -> SimJob:
    """The simulator's view of a FineTuneJob (work in single-worker hours, prices per worker-hour)."""
    spec = job.spec
    prior = spec.throughput_prior
    if prior is None:
        raise PlanError("spec.throughputPrior.samplesPerSecond is needed to predict how long the job runs")
    if spec.total_steps is None:
        raise PlanError("spec.totalSteps is needed (epochs depend on the dataset size)")
    workers = spec.elastic.max_workers
    speedup = tuple([0.0] + [n / (1 + prior.serial_fraction * (n - 1)) for n in range(1, workers + 1)])
    work_hours = spec.total_steps * spec.global_batch_size / prior.samples_per_second / 3600.0
    objective = spec.objective
    if objective.max_duration is not None:
        deadline_hours = parse_duration(objective.max_duration) / 3600.0
    elif objective.deadline is not None:
        deadline_hours = (objective.deadline - now).total_seconds() / 3600.0
    else:
        deadline_hours = work_hours / speedup[-1] / JOB_FRACTION
    if deadline_hours <= 0:
        raise PlanError("the deadline has already passed")
    spot_price = spec.capacity.spot.price_per_hour
    on_demand_price = spec.capacity.on_demand.price_per_hour
    return SimJob(
        work_hours=work_hours,
        deadline_hours=deadline_hours,
        restart_overhead_hours=restart_overhead_s / 3600.0,
        speedup=speedup,
        min_workers=spec.elastic.min_workers,
        spot_price_per_hour=DEFAULT_SPOT_PRICE if spot_price is None else spot_price,
        on_demand_price_per_hour=DEFAULT_ON_DEMAND_PRICE if on_demand_price is None else on_demand_price,
    )


def refine(trace: SpotTrace, job: SimJob) -> SpotTrace:
    """Split each tick into k equal ticks so that the job at full size spans >= MIN_TICKS_PER_JOB ticks."""
    full_speed_seconds = job.full_speed_hours * 3600.0
    split = max(1, math.ceil(MIN_TICKS_PER_JOB * trace.gap_seconds / full_speed_seconds))
    if split == 1:
        return trace
    prices = None if trace.spot_price_per_hour is None else np.repeat(trace.spot_price_per_hour, split)
    return SpotTrace(trace.name, trace.gap_seconds / split, np.repeat(trace.available, split), prices)


def pareto_frontier(points: list[dict[str, float]]) -> list[dict[str, float]]:
    """Points not dominated in (completion_hours, cost): nothing else is both faster and cheaper."""
    frontier: list[dict[str, float]] = []
    for point in sorted(points, key=lambda p: (p["completion_hours"], p["cost"])):
        if not frontier or point["cost"] < frontier[-1]["cost"]:
            frontier.append(point)
    return frontier


def explore(job: SimJob, trace: SpotTrace, starts: int) -> list[dict[str, float]]:
    """elasticft's mean cost and completion for every size cap and the job's deadline times each factor
    (runs that miss the deadline are kept: their completion time shows it)."""
    points = []
    for workers in range(job.min_workers, job.max_workers + 1):
        for factor in DEADLINE_FACTORS:
            sized = dataclasses.replace(job, speedup=job.speedup[: workers + 1],
                                        deadline_hours=job.deadline_hours * factor)
            runs = run_policies(sized, trace, start_ticks(trace, sized, starts), ["elasticft"])["elasticft"]
            points.append({
                "workers": workers, "deadline_hours": sized.deadline_hours,
                "cost": float(np.mean([r.cost for r in runs])),
                "completion_hours": float(np.mean([r.completion_hours for r in runs])),
                "deadline_misses": sum(not r.deadline_met for r in runs),
            })
    return points


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="elasticft plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", type=Path, help="FineTuneJob YAML (the first job in the file is planned)")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE,
                        help="any spot-trace JSON file in the skypilot-org/spot-traces format (default: the packaged "
                             f"{DEFAULT_TRACE.relative_to(SPOT_TRACES_DIR)})")
    parser.add_argument("--json", type=Path, help="write the plan as JSON here")
    parser.add_argument("--plot", type=Path, help="write the cost-time plot (PNG) here")
    parser.add_argument("--starts", type=int, default=30, help="start points on the trace (default 30)")
    parser.add_argument("--restart-overhead", type=float, default=120.0,
                        help="seconds a restart costs: save + reschedule + load (default 120)")
    args = parser.parse_args(argv)
    try:
        jobs = load_finetunejobs(args.job)
        if not jobs:
            raise PlanError(f"{args.job}: no FineTuneJob in the file")
        job = sim_job(jobs[0], args.restart_overhead, datetime.now(UTC))
        trace = refine(load_trace(args.trace), job)
        starts = start_ticks(trace, job, args.starts)
    except (InvalidJobError, PlanError, ValueError, OSError) as error:
        print(f"elasticft plan: {error}", file=sys.stderr)
        return 2
    summary = summarise(run_policies(job, trace, starts, [*POLICIES, OMNISCIENT]))
    points = explore(job, trace, max(args.starts // 3, 5))
    frontier = pareto_frontier(points)
    print(f"{jobs[0].metadata.name}: {job.work_hours:.3f} worker-hours of work, {job.max_workers} workers at most, "
          f"deadline {job.deadline_hours:.2f} h, trace {trace.name} ({len(starts)} start points)\n")
    print(_table(summary))
    print("\ncost-time Pareto frontier (elasticft, per size cap and deadline):")
    for point in frontier:
        print(f"  {point['workers']:>3} workers, deadline {point['deadline_hours']:.2f} h: "
              f"{point['completion_hours']:.2f} h for {point['cost']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "job": jobs[0].metadata.name, "sim_job": dataclasses.asdict(job), "trace": str(args.trace),
            "policies": {name: dataclasses.asdict(s) for name, s in summary.items()},
            "points": points, "pareto_frontier": frontier,
        }, indent=2) + "\n")
    if args.plot:
        _plot(summary, points, frontier, args.plot)
    return 0


def _table(summary: dict[str, PolicySummary]) -> str:
    lines = [f"{'policy':<18}{'cost':>10}{'vs best':>9}{'finish h':>10}{'misses':>8}"]
    for name, s in summary.items():
        lines.append(f"{name:<18}{s.cost:>10.2f}{s.cost_vs_omniscient:>9.3f}{s.completion_hours:>10.2f}"
                     f"{s.deadline_misses:>8}")
    return "\n".join(lines)


def _plot(summary: dict[str, PolicySummary], points: list[dict[str, float]],
          frontier: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter([p["completion_hours"] for p in points], [p["cost"] for p in points], color="#bbbbbb",
                 label="elasticft: size cap x deadline")
    axes.plot([p["completion_hours"] for p in frontier], [p["cost"] for p in frontier], "o-", color="#d62728",
              label="Pareto frontier")
    for name, s in summary.items():
        axes.scatter([s.completion_hours], [s.cost], marker="x")
        axes.annotate(name, (s.completion_hours, s.cost), fontsize=8)
    axes.set_xlabel("mean completion time (h)")
    axes.set_ylabel("mean cost")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
