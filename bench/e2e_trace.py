"""Elastic end to end on a real spot trace: the sandbox's realized cost against the simulator's prediction.

    python bench/e2e_trace.py --windows 5 --json bench/results/e2e_trace.json

Each window replays the real 16-node availability trace (AWS us-east-2b, V100, Aug 2023; scaled to a
peak of 8 nodes, one 300 s tick in 8 s) from its own start tick through the whole sandbox: the
operator, the real kubectl, torchrun workers on simulated V100s (simulated device time, not a GPU
figure), up to 8 workers. For the same window the simulator replays the same policy code (the
operator's own sizing, `elasticft.controller.replay`) with the device's true curve and the restart
overhead measured in that run, and prices two references: all on-demand, and a fixed gang under
*Can't Be Late*'s uniform progress. Costs are simulated p3.2xlarge prices over sandbox seconds.

Writes {"windows": [...], "summary": {...}} as JSON, prints the table and writes a PNG beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import yaml

from elasticft_sandbox.demo import DEMO_POOLS_FILE, run_demo

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parents[1]
#: Start ticks spread over the trace's first ~1000 ticks (3.5 days), each a different availability story.
START_TICKS = [13, 150, 300, 450, 600, 750, 900, 1050]
PEAK_NODES = 8
SECONDS_PER_TICK = 8


def window_pools(start_tick: int, directory: Path) -> Path:
    """The demo's pools, the spot trace started at `start_tick` and scaled to PEAK_NODES."""
    pools = yaml.safe_load(DEMO_POOLS_FILE.read_text())
    pools["seconds_per_tick"] = SECONDS_PER_TICK
    spot = next(p for p in pools["pools"] if p["capacity_type"] == "spot")
    spot["trace"].update(start_tick=start_tick, peak_nodes=PEAK_NODES)
    on_demand = next(p for p in pools["pools"] if p["capacity_type"] == "on-demand")
    on_demand["nodes"] = PEAK_NODES
    path = directory / f"pools-{start_tick}.yaml"
    path.write_text(yaml.safe_dump(pools))
    return path


def window_job(directory: Path) -> Path:
    """The demo's job with room for 8 workers."""
    job = yaml.safe_load((REPO / "examples" / "finetunejob.yaml").read_text())
    job["spec"]["elastic"]["maxWorkers"] = PEAK_NODES
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def run_window(start_tick: int, directory: Path) -> dict[str, Any]:
    with open(directory / f"window-{start_tick}.log", "w") as log:
        report = run_demo(window_job(directory), directory / f"sandbox-{start_tick}",
                          out=log, timeout_s=900, pools_file=window_pools(start_tick, directory))
    return {
        "start_tick": start_tick,
        "realized_cost": report.cost,
        "predicted_cost": report.predicted_cost,
        "realized_hours": round(report.job_seconds / 3600, 5),
        "predicted_hours": round((report.predicted_seconds or 0.0) / 3600, 5),
        "deadline_met": report.deadline_met,
        "rescales": report.rescales,
        "preemptions": report.preemptions,
        "steps_lost": report.steps_lost,
        "max_world_size": report.max_world_size,
        "gang_up_cost": report.gang_up_cost,
        "on_demand_cost": report.on_demand_cost,
        "restart_overhead_s": report.restart_overhead_s,
        "world_sizes": [f"{w.spot}+{w.on_demand}" for w in report.world_sizes],
    }


def summarize(windows: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [w["realized_cost"] / w["predicted_cost"] for w in windows if w["predicted_cost"]]
    realized = sum(w["realized_cost"] for w in windows)
    return {
        "realized_vs_predicted_mean": round(statistics.mean(ratios), 4) if ratios else None,
        "realized_vs_predicted_max_abs_error": round(max(abs(r - 1) for r in ratios), 4) if ratios else None,
        "deadline_misses": sum(not w["deadline_met"] for w in windows),
        "steps_lost": sum(w["steps_lost"] for w in windows),
        "cost_vs_gang_up": round(realized / sum(w["gang_up_cost"] or 0 for w in windows), 4),
        "cost_vs_on_demand": round(realized / sum(w["on_demand_cost"] or 0 for w in windows), 4),
        "max_world_size": max(w["max_world_size"] for w in windows),
    }


def plot(windows: list[dict[str, Any]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 4))
    ticks = [str(w["start_tick"]) for w in windows]
    xs = range(len(windows))
    for offset, key, label in ((-0.3, "realized_cost", "realized (sandbox)"), (-0.1, "predicted_cost", "predicted"),
                               (0.1, "gang_up_cost", "gang, uniform progress"), (0.3, "on_demand_cost", "on-demand")):
        axis.bar([x + offset for x in xs], [w[key] or 0 for w in windows], width=0.2, label=label)
    axis.set_xticks(list(xs), ticks)
    axis.set_xlabel("trace start tick")
    axis.set_ylabel("USD (simulated prices)")
    axis.set_title("elastic job on a real spot trace, simulated V100s (simulated device time)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=5, help=f"how many windows (at most {len(START_TICKS)})")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "e2e_trace.json")
    args = parser.parse_args()
    windows = []
    with tempfile.TemporaryDirectory(prefix="elasticft-e2e-trace-") as state:
        for start_tick in START_TICKS[: args.windows]:
            windows.append(run_window(start_tick, Path(state)))
            print(json.dumps(windows[-1]), flush=True)
    summary = summarize(windows)
    keys = ["start_tick", "realized_cost", "predicted_cost", "gang_up_cost", "on_demand_cost", "deadline_met",
            "rescales", "preemptions", "steps_lost", "max_world_size", "world_sizes"]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for window in windows:
        print("| " + " | ".join(str(window[key]) for key in keys) + " |")
    print("\n" + "\n".join(f"{key}: {value}" for key, value in summary.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"windows": windows, "summary": summary}, indent=2) + "\n")
    plot(windows, args.json.with_suffix(".png"))
    return 0 if summary["deadline_misses"] == 0 and summary["steps_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
