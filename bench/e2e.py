"""The newcomer's demo as a benchmark: `elasticft sandbox run examples/finetunejob.yaml`, measured.

    python bench/e2e.py --json bench/results/e2e.json

Writes wall_s, steps_total, steps_lost, preemptions, rescales, sigterm_to_resumed_s (median over
preemptions: reclaim notice -> the next generation training), cost, final_loss, initial_loss, and
resume_timeline: seconds from the first reclaim notice to each step back to training (SIGTERM at the
trainer, emergency checkpoint saved, next pods created and started, trainers up, checkpoint loaded,
Running seen), read from the worker logs and pod timestamps, to show where that interval goes.
Elasticity: max_world_size, world_sizes (the timeline: generation, spot + on-demand, reason), grows and
shrinks, fit_error (the largest relative error of the fitted throughput curve against the simulated
device's true curve at the sizes measured), and the simulator's costs on the same trace window
(predicted_cost for the operator's own sizing, on_demand_cost, gang_up_cost for a fixed gang under
uniform progress). Throughput is simulated device time (V100 profile), not a GPU measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from elasticft_sandbox.demo import run_demo

REPO = Path(__file__).resolve().parents[1]
KEYS = ["wall_s", "steps_total", "steps_lost", "preemptions", "rescales", "sigterm_to_resumed_s", "cost",
        "final_loss", "initial_loss", "max_world_size", "grows", "shrinks", "fit_error", "deadline_met",
        "predicted_cost", "on_demand_cost", "gang_up_cost", "restart_overhead_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", type=Path, default=REPO / "examples" / "finetunejob.yaml")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="elasticft-e2e-") as state, open(Path(state) / "demo.log", "w") as log:
        report = run_demo(args.job, Path(state) / "sandbox", out=log).as_json()
    print("| measure | value |\n|---|---|")
    for key in KEYS:
        print(f"| {key} | {report[key]} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    print(f"| resume_timeline | {report['resume_timeline']} |")
    extra = {key: report[key] for key in ("phase", "resume_timeline", "world_sizes", "device", "fitted_curve",
                                          "true_curve", "measured_sizes", "gang_size")}
    args.json.write_text(json.dumps({key: report[key] for key in KEYS} | extra, indent=2) + "\n")
    return 0 if report["phase"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
