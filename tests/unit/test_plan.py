"""`elasticft plan`: the table, the frontier, the JSON and the plot a user gets for a job file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elasticft.sim.plan import main, pareto_frontier

JOB = """\
apiVersion: elasticft.io/v1alpha1
kind: FineTuneJob
metadata:
  name: plan-me
spec:
  totalSteps: 3000
  globalBatchSize: 24
  elastic: {minWorkers: 1, maxWorkers: 2}
  objective: {maxDuration: 2h, mode: MinCost}
  throughputPrior: {samplesPerSecond: 20, serialFraction: 0.1}
  capacity:
    spot: {pricePerHour: 1.0}
    onDemand: {pricePerHour: 3.0}
"""


def test_plan_prints_every_policy_and_writes_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    out_json, out_png = tmp_path / "plan.json", tmp_path / "plan.png"
    assert main([str(job), "--starts", "6", "--json", str(out_json), "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    for name in ("on-demand", "greedy", "uniform-progress", "throughput-only", "elasticft", "omniscient"):
        assert name in printed
    assert "Pareto frontier" in printed
    document = json.loads(out_json.read_text())
    assert document["job"] == "plan-me"
    assert document["policies"]["elasticft"]["deadline_misses"] == 0
    assert document["pareto_frontier"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_says_which_field_it_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB.replace("  throughputPrior: {samplesPerSecond: 20, serialFraction: 0.1}\n", ""))
    assert main([str(job)]) == 2
    assert "throughputPrior.samplesPerSecond" in capsys.readouterr().err


def test_pareto_frontier_keeps_only_undominated_points() -> None:
    points = [{"completion_hours": 1.0, "cost": 9.0}, {"completion_hours": 2.0, "cost": 5.0},
              {"completion_hours": 2.5, "cost": 6.0}, {"completion_hours": 3.0, "cost": 4.0}]
    assert [p["cost"] for p in pareto_frontier(points)] == [9.0, 5.0, 4.0]
