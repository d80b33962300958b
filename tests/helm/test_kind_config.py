"""kind-config.yaml gives the examples the node pools they select and one checkpoint mount on every worker."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import REPO_ROOT

from elasticft.api import load_finetunejobs

KIND_CONFIG = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
WORKERS: list[dict[str, Any]] = [node for node in KIND_CONFIG["nodes"] if node["role"] == "worker"]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


def test_kind_cluster_has_a_control_plane_and_spot_and_on_demand_worker_pools() -> None:
    roles = [node["role"] for node in KIND_CONFIG["nodes"]]
    assert roles.count("control-plane") == 1
    assert len(WORKERS) >= 3
    capacity_types = [node["labels"]["karpenter.sh/capacity-type"] for node in WORKERS]
    assert capacity_types.count("on-demand") >= 1
    assert capacity_types.count("spot") >= 2, "draining one spot node must leave spot capacity"


def test_every_worker_mounts_the_same_host_directory_for_checkpoints() -> None:
    mounts = [{(m["hostPath"], m["containerPath"]) for m in node.get("extraMounts", [])} for node in WORKERS]
    shared = set.intersection(*mounts)
    assert len(shared) == 1, f"workers do not share exactly one mount: {mounts}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_enabled_capacity_pool_of_the_examples_selects_kind_workers(example: Path) -> None:
    for job in load_finetunejobs(example):
        for pool_name, pool in (("spot", job.spec.capacity.spot), ("onDemand", job.spec.capacity.on_demand)):
            if not pool.enabled:
                continue
            matching = [node for node in WORKERS if pool.node_selector.items() <= node["labels"].items()]
            assert matching, f"{example.name}: no kind worker matches {pool_name} {pool.node_selector}"


def test_e2e_kind_job_checkpoints_to_the_shared_mount() -> None:
    (_, container_path), *_ = ((m["hostPath"], m["containerPath"]) for m in WORKERS[0]["extraMounts"])
    plan = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(REPO_ROOT), "e2e-kind"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert f'"hostPath": "{container_path}"' in plan
    assert "kind create cluster --name elasticft --config kind-config.yaml" in plan
