"""The demo's picture: workers by capacity type, progress against the deadline's pace line, cost accrued."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on a sandbox machine
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from elasticft_sandbox.demo import DemoReport


def plot_run(report: DemoReport, path: Path) -> Path:
    """Three panels over the run's seconds; returns the PNG's path."""
    times = [s.t_s for s in report.samples]
    figure, (workers, progress, cost) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    workers.stackplot(times, [s.spot for s in report.samples], [s.on_demand for s in report.samples],
                      labels=["spot", "on-demand"], step="post", colors=["tab:green", "tab:orange"])
    workers.set_ylabel("workers")
    workers.legend(loc="upper right")
    workers.set_title(f"{report.job}: {report.phase}; {report.device or 'no'} nodes (simulated device time)")
    total = max(report.steps_total, 1)
    progress.plot(times, [100 * s.step / total for s in report.samples], label="progress")
    if report.deadline_seconds:
        # uniform progress: the share of the work a job on pace has done by each moment
        progress.plot([0, report.deadline_seconds], [0, 100], "--", color="grey", label="pace line")
        progress.axvline(report.deadline_seconds, color="red", linewidth=1, label="deadline")
    progress.set_ylabel("% of steps")
    progress.legend(loc="upper left")
    cost.plot(times, [s.cost for s in report.samples], color="tab:purple", label="accrued")
    cost.set_ylabel("USD (simulated prices)")
    cost.set_xlabel("seconds since the sandbox started")
    cost.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
