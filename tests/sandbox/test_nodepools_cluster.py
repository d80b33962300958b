"""Node pools, scheduling and spot reclaims in a running sandbox, observed through the Kubernetes API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from ftj_testing import eventually
from kubernetes import client
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.sandbox import Sandbox

T = TypeVar("T")

GPU_POOLS = {
    "reclaim_notice_s": 1,
    "pools": [
        {
            "name": "spot",
            "capacity_type": "spot",
            "nodes": 2,
            "labels": {"karpenter.sh/capacity-type": "spot"},
            "gpus_per_node": 1,
            "price_per_hour": 0.92,
        },
        {
            "name": "reserved",
            "capacity_type": "on-demand",
            "nodes": 1,
            "labels": {"karpenter.sh/capacity-type": "on-demand"},
            "taints": [{"key": "dedicated", "value": "training", "effect": "NoSchedule"}],
            "gpus_per_node": 1,
            "price_per_hour": 3.06,
        },
    ],
}


def start_sandbox(tmp_path: Path, pools: dict[str, Any]) -> Sandbox:
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(yaml.safe_dump(pools))
    return Sandbox(tmp_path / "state", pools_file, restart_backoff_s=0.2, shutdown_grace_s=2).start()


@pytest.fixture
def gpu_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path, GPU_POOLS)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def core_api(sandbox: Sandbox) -> CoreV1Api:
    return CoreV1Api(client.ApiClient(client.Configuration(host=sandbox.url)))




SLEEP = "import time; time.sleep(600)"


def worker(name: str, script: str = SLEEP, gpus: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "elasticft-trainer",
                    "command": ["python", "-c", script],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            **spec,
        },
    }


def scheduled_condition(core: CoreV1Api, name: str) -> Any:
    conditions = core.read_namespaced_pod(name, "default").status.conditions or []
    return next((c for c in conditions if c.type == "PodScheduled"), None)


def test_scheduler_honours_node_selectors_taints_and_gpu_capacity(gpu_sandbox: Sandbox) -> None:
    core = core_api(gpu_sandbox)
    spot = {"karpenter.sh/capacity-type": "spot"}
    on_demand = {"karpenter.sh/capacity-type": "on-demand"}
    toleration = [{"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}]
    for pod in (
        worker("spot-a", nodeSelector=spot),
        worker("spot-b", nodeSelector=spot),
        worker("spot-c", nodeSelector=spot),
        worker("untolerated", nodeSelector=on_demand),
        worker("tolerated", nodeSelector=on_demand, tolerations=toleration),
    ):
        core.create_namespaced_pod("default", pod)

    def node_of(name: str) -> str | None:
        node: str | None = core.read_namespaced_pod(name, "default").spec.node_name
        return node

    placed = {name: eventually(lambda name=name: node_of(name)) for name in ("spot-a", "spot-b", "tolerated")}
    assert sorted([placed["spot-a"], placed["spot-b"]]) == ["spot-0", "spot-1"]
    assert placed["tolerated"] == "reserved-0"

    no_gpu = eventually(lambda: scheduled_condition(core, "spot-c"))
    assert (no_gpu.status, no_gpu.reason) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in no_gpu.message
    tainted = eventually(lambda: scheduled_condition(core, "untolerated"))
    assert tainted.reason == "Unschedulable"
    assert "untolerated taint {dedicated: training}" in tainted.message

    assert gpu_sandbox.add_nodes("spot", 1) == ["spot-2"]
    assert eventually(lambda: node_of("spot-c")) == "spot-2"
    assert node_of("untolerated") is None


SIGTERM_AWARE = """
import signal, sys, time
def on_sigterm(signum, frame):
    print(f'SIGTERM at {time.time():.3f}', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_sigterm)
print('training', flush=True)
time.sleep(600)
"""


def test_reclaimed_spot_node_marks_pods_then_sigterms_them_and_disappears(gpu_sandbox: Sandbox) -> None:
    core = core_api(gpu_sandbox)
    spot = {"karpenter.sh/capacity-type": "spot"}
    core.create_namespaced_pod(
        "default", worker("w0", SIGTERM_AWARE, nodeSelector=spot, terminationGracePeriodSeconds=5)
    )
    log_file = gpu_sandbox.logs_dir / "default" / "w0" / "trainer.log"
    eventually(lambda: log_file.exists() and "training" in log_file.read_text())
    node = core.read_namespaced_pod("w0", "default").spec.node_name

    noticed_at = time.time()
    gpu_sandbox.reclaim(node, notice_s=1.0)

    taints = core.read_node(node).spec.taints
    assert any(t.key == "aws-node-termination-handler/spot-itn" and t.effect == "NoSchedule" for t in taints)
    conditions = {c.type: c for c in core.read_namespaced_pod("w0", "default").status.conditions}
    disruption = conditions["DisruptionTarget"]
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    assert core.read_namespaced_pod("w0", "default").status.phase == "Running", "the notice comes first"

    def gone(read: Callable[[], Any]) -> bool:
        try:
            read()
        except ApiException as error:
            return error.status == 404
        return False

    eventually(lambda: gone(lambda: core.read_namespaced_pod("w0", "default")), timeout_s=15)
    eventually(lambda: gone(lambda: core.read_node(node)), timeout_s=15)
    sigterm_line = next(line for line in log_file.read_text().splitlines() if line.startswith("SIGTERM at"))
    assert float(sigterm_line.split()[-1]) - noticed_at >= 0.9, "SIGTERM only after the notice period"
    events = core.list_namespaced_event("default").items
    assert any(e.reason == "SpotInterruption" and e.involved_object.name == node for e in events)


def test_trace_and_script_change_the_pools_over_time(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"metadata": {"gap_seconds": 300}, "data": [2, 1, 3]}))
    pools = {
        "seconds_per_tick": 1.0,
        "reclaim_notice_s": 0,
        "pools": [
            {"name": "spot", "capacity_type": "spot", "trace": {"file": str(trace)}, "price_per_hour": 1},
            {"name": "od", "capacity_type": "on-demand", "nodes": 1, "price_per_hour": 3},
        ],
        "script": [{"at_s": 0.5, "pool": "od", "action": "add", "nodes": 2}],
    }
    sandbox = start_sandbox(tmp_path, pools)
    try:
        core = core_api(sandbox)

        def pool_nodes(pool: str) -> list[str]:
            nodes = core.list_node(label_selector=f"elasticft.io/pool={pool}").items
            return sorted(n.metadata.name for n in nodes)

        assert pool_nodes("spot") == ["spot-0", "spot-1"]
        assert pool_nodes("od") == ["od-0"]
        assert eventually(lambda: pool_nodes("spot") == ["spot-1"], timeout_s=5)
        assert eventually(lambda: pool_nodes("od") == ["od-0", "od-1", "od-2"], timeout_s=5)
        assert eventually(lambda: pool_nodes("spot") == ["spot-1", "spot-2", "spot-3"], timeout_s=5)
    finally:
        sandbox.stop()
