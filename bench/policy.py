"""Policy benchmark on real spot traces.

    python bench/policy.py table3  --json bench/results/policy_table3.json
    python bench/policy.py elastic --json bench/results/policy_elastic.json [--trace-dir DIR] [--gang-workers G]

table3:  the setting of Can't Be Late's Table 3 (NSDI 2024): one worker, C = 48 h, deadline 60 h,
         d = 0.2 h, spot = 1, on-demand k = 3.14, 300 start points on each of the 8 single-node traces.
         Two references beside the policies (`elasticft.sim.known_distribution`): the best online policy
         that knows the availability's distribution, fitted on the whole trace (known-distribution) or on
         the half of the trace the run does not start in (held-out-distribution). On traces whose tick
         would make that reference's table exceed `known_distribution.MAX_TABLE_BYTES` (e.g. 195 s
         ticks), both references are skipped and the JSON says why (`skipped_references`): with two
         worker processes the bench then stays within about 4 GB.
elastic: a data-parallel job whose throughput is X(n) = n / (1 + 0.05 (n - 1)) (Amdahl, 5 % serial),
         with the work of 48 h on a gang of G = min(8, M) workers (--gang-workers), deadline 60 h,
         d = 0.2 h, on the 16-node availability and 4-node preemption traces (M = the trace's largest
         count: 16 and 4).
         The gang policies (on-demand, greedy, polarized 0-or-G uniform-progress) run exactly G workers,
         all or nothing; the elastic ones (throughput-only, elasticft, omniscient) may run any k in [1, M]
         on the same curve, same work, same deadline: that freedom is the elastic edge docs/policy.md claims.

Prints a table (also written as Markdown beside the JSON), writes the JSON
`{"scenario", "parameters", "policies": {NAME: {...}}}` and a PNG plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from elasticft.sim import known_distribution
from elasticft.sim.compare import (
    HELD_OUT_DISTRIBUTION,
    KNOWN_DISTRIBUTION,
    OMNISCIENT,
    PolicySummary,
    run_policies,
    summarise,
)
from elasticft.sim.replay import RunResult, SimJob, start_ticks
from elasticft.sim.trace import SPOT_TRACES_DIR, SpotTrace, load_trace_dir

NAMES = ["on-demand", "greedy", "uniform-progress", "throughput-only", "elasticft", OMNISCIENT]
#: table3 also reports how close an online policy gets knowing the availability's distribution
#: (`sim.known_distribution`): the reference for what the elasticft target asks.
REFERENCES = {"table3": [KNOWN_DISTRIBUTION, HELD_OUT_DISTRIBUTION], "elastic": []}
#: In `elastic`, these run a gang of exactly G workers; the others may use any k <= M.
GANG_POLICIES = ["on-demand", "greedy", "uniform-progress"]
DEFAULT_DIRS = {
    "table3": [SPOT_TRACES_DIR / "availability/1-node/aws-10-26-2022"],
    "elastic": [SPOT_TRACES_DIR / "availability/16-node/aws-08-27-2023",
                SPOT_TRACES_DIR / "preemption/4-node/aws-08-03-2023"],
}
#: Can't Be Late, Table 3: compute hours (changeover delays excluded) on on-demand and spot.
PUBLISHED_TABLE3 = {"greedy": (30.8, 17.2), "uniform-progress": (25.1, 22.9), OMNISCIENT: (20.7, 27.4)}
WORK_HOURS_AT_FULL_SIZE = 48.0
DEADLINE_HOURS = 60.0
RESTART_OVERHEAD_HOURS = 0.2
SERIAL_FRACTION = 0.05
GANG_WORKERS = 8
#: k, the on-demand price with spot = 1: SimJob's default, which every job here keeps
ON_DEMAND_PRICE = SimJob.on_demand_price_per_hour


def speedup_table(workers: int) -> tuple[float, ...]:
    """X(n) / X(1) for n = 0..workers: Amdahl with a 5 % serial fraction."""
    return tuple([0.0] + [n / (1 + SERIAL_FRACTION * (n - 1)) for n in range(1, workers + 1)])


def jobs_for(scenario: str, trace: SpotTrace, gang_workers: int = GANG_WORKERS) -> tuple[SimJob, SimJob]:
    """(gang job, elastic job) of the scenario on this trace: same work, curve and deadline; the gang runs
    exactly G workers, the elastic job any k <= M. In `table3` both are the single-worker job."""
    if scenario == "table3":
        job = SimJob(WORK_HOURS_AT_FULL_SIZE, DEADLINE_HOURS, RESTART_OVERHEAD_HOURS)
        return job, job
    pool = max(1, trace.max_available)
    gang = speedup_table(min(gang_workers, pool))
    work = WORK_HOURS_AT_FULL_SIZE * gang[-1]
    return (SimJob(work, DEADLINE_HOURS, RESTART_OVERHEAD_HOURS, gang),
            SimJob(work, DEADLINE_HOURS, RESTART_OVERHEAD_HOURS, speedup_table(pool)))


def skipped_references(scenario: str, traces: list[SpotTrace], gang_workers: int) -> dict[str, str]:
    """The references that would not fit in memory on some trace, with why; skipped on every trace so
    that each reported mean is over the same runs as the policies'."""
    for trace in traces:
        reason = known_distribution.too_large(jobs_for(scenario, trace, gang_workers)[1], trace.gap_seconds)
        if reason is not None and REFERENCES[scenario]:
            return {name: f"skipped: on {trace.name} {reason}" for name in REFERENCES[scenario]}
    return {}


def _run_trace(scenario: str, trace: SpotTrace, starts: int, gang_workers: int,
               references: list[str]) -> tuple[str, dict[str, list[RunResult]], float]:
    begun = time.perf_counter()
    gang, elastic = jobs_for(scenario, trace, gang_workers)
    ticks = start_ticks(trace, gang, starts)  # same deadline, so the same start points for both jobs
    results = run_policies(gang, trace, ticks, GANG_POLICIES)
    names = NAMES + references
    results.update(run_policies(elastic, trace, ticks, [n for n in names if n not in GANG_POLICIES]))
    return trace.name, {name: results[name] for name in names}, time.perf_counter() - begun


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(DEFAULT_DIRS))
    parser.add_argument("--trace-dir", type=Path, help="use every *.json trace in this folder instead")
    parser.add_argument("--starts", type=int, default=300, help="start points per trace (default 300)")
    parser.add_argument("--gang-workers", type=int, default=GANG_WORKERS,
                        help=f"elastic: the gang policies' size G = min(this, M) (default {GANG_WORKERS})")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--plot", type=Path, help="PNG (default: beside the JSON)")
    args = parser.parse_args(argv)

    begun = time.perf_counter()
    dirs = [args.trace_dir] if args.trace_dir else DEFAULT_DIRS[args.scenario]
    traces = [trace for directory in dirs for trace in load_trace_dir(directory)]
    skipped = skipped_references(args.scenario, traces, args.gang_workers)
    for name, note in skipped.items():
        print(f"  {name}: {note}", file=sys.stderr)
    references = [name for name in REFERENCES[args.scenario] if name not in skipped]
    merged: dict[str, list[RunResult]] = {name: [] for name in NAMES + references}
    per_trace: dict[str, dict[str, PolicySummary]] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_run_trace, args.scenario, trace, args.starts, args.gang_workers, references)
                   for trace in traces]
        for future in futures:
            name, results, seconds = future.result()
            per_trace[name] = summarise(results)
            print(f"  {name}: {seconds:.0f} s", file=sys.stderr)
            for policy, runs in results.items():
                merged[policy] += runs
    summary = summarise(merged)
    elapsed = time.perf_counter() - begun

    sizes = {trace.name: {"gang": gang.max_workers, "elastic_max": elastic.max_workers}
             for trace in traces for gang, elastic in [jobs_for(args.scenario, trace, args.gang_workers)]}
    parameters = {
        "work_hours_at_full_size": WORK_HOURS_AT_FULL_SIZE, "deadline_hours": DEADLINE_HOURS,
        "restart_overhead_hours": RESTART_OVERHEAD_HOURS, "spot_price": 1.0, "on_demand_price": ON_DEMAND_PRICE,
        "starts_per_trace": args.starts, "traces": [str(d) for d in dirs], "workers_per_trace": sizes,
        "throughput_curve": "X(n) = n / (1 + 0.05 (n - 1))" if args.scenario == "elastic" else "X(1) = 1",
        "sizes": ("gang policies (on-demand, greedy, uniform-progress: polarized 0-or-G) run exactly G = "
                  f"min({args.gang_workers}, M) workers; throughput-only, elasticft and omniscient run any k "
                  "in [1, M], "
                  "M = the trace's largest count; work = 48 h at G workers for all"
                  if args.scenario == "elastic" else "one worker"),
        "wall_seconds": round(elapsed, 1),
    }
    document = {
        "scenario": args.scenario,
        "parameters": parameters,
        "policies": {name: dataclasses.asdict(s) for name, s in summary.items()},
        "per_trace": {t: {n: dataclasses.asdict(s) for n, s in p.items()} for t, p in per_trace.items()},
    }
    if skipped:
        document["skipped_references"] = skipped
    document["elasticft_vs_uniform_progress"] = summary["elasticft"].cost / summary["uniform-progress"].cost
    if args.scenario == "table3":
        document["published_table3"] = {n: {"on_demand_work_hours": od, "spot_work_hours": spot}
                                        for n, (od, spot) in PUBLISHED_TABLE3.items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    rendered = table(args.scenario, summary)
    args.json.with_suffix(".md").write_text(rendered + "\n")
    print(rendered)
    print(f"\nelasticft / uniform-progress cost: {document['elasticft_vs_uniform_progress']:.3f}")
    print(f"\n{len(traces)} traces x {args.starts} starts in {elapsed:.0f} s; wrote {args.json}")
    plot(args.scenario, summary, args.plot or args.json.with_suffix(".png"))
    return 0


def table(scenario: str, summary: dict[str, PolicySummary]) -> str:
    """Markdown table; in table3 the paper's measure (work cost) and its published figures beside ours."""
    head = "| policy | cost | vs omniscient | on-demand h | spot h | OD compute h | spot compute h | misses | runs |"
    if scenario == "table3":
        head += " work cost vs omniscient | paper: OD / spot compute h, work cost vs omniscient |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, s in summary.items():
        line = (f"| {name} | {s.cost:.1f} | {s.cost_vs_omniscient:.3f} | {s.on_demand_hours:.1f} | "
                f"{s.spot_hours:.1f} | {s.on_demand_work_hours:.1f} | {s.spot_work_hours:.1f} | "
                f"{s.deadline_misses} | {s.runs} |")
        if scenario == "table3":
            published = PUBLISHED_TABLE3.get(name)
            line += f" {s.work_cost_vs_omniscient:.3f} |"
            line += (f" {published[0]} / {published[1]}, {published_work_cost_ratio(name):.3f} |" if published
                     else " |")
        lines.append(line)
    return "\n".join(lines)


def published_work_cost_ratio(name: str) -> float:
    """The paper's Table 3 work cost (k * OD + spot compute hours) of a policy over its omniscient's."""
    def work_cost(hours: tuple[float, float]) -> float:
        return ON_DEMAND_PRICE * hours[0] + hours[1]
    return work_cost(PUBLISHED_TABLE3[name]) / work_cost(PUBLISHED_TABLE3[OMNISCIENT])


def plot(scenario: str, summary: dict[str, PolicySummary], path: Path) -> None:
    """Bar chart of mean cost relative to the omniscient optimum, deadline misses annotated; in table3 the
    paper's measure (work cost) as a second bar per policy."""
    names = list(summary)
    measures = {"billed cost": [summary[n].cost_vs_omniscient for n in names]}
    if scenario == "table3":
        measures["work cost (the paper's measure)"] = [summary[n].work_cost_vs_omniscient for n in names]
    width = 0.8 / len(measures)
    figure, axes = plt.subplots(figsize=(10, 4.5))
    for index, (measure, ratios) in enumerate(measures.items()):
        positions = [i + (index - (len(measures) - 1) / 2) * width for i in range(len(names))]
        shade = ["#d62728" if n == "elasticft" else "#7f7f7f" for n in names]
        bars = axes.bar(positions, ratios, width, color=shade, alpha=1.0 - 0.45 * index, label=measure)
        for bar, name in zip(bars, names, strict=True):
            misses = summary[name].deadline_misses
            label = f"{bar.get_height():.3f}" + (f"\n{misses} misses" if misses and index == 0 else "")
            axes.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                          fontsize=8)
    axes.set_xticks(range(len(names)), names, rotation=25, ha="right")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_ylabel("mean cost / omniscient")
    axes.set_title(f"ElasticFT policy benchmark: {scenario}")
    axes.set_ylim(0, max(max(r) for r in measures.values()) * 1.2)
    if len(measures) > 1:
        axes.legend(loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
