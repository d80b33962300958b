"""The real operator (`elasticft run`, kopf) against the sandbox, with stand-in workers.

The workers here run `elasticft_sandbox.standin` (the trainer's contract without torch) so each test
takes seconds; tests/e2e runs the real trainer. Everything a test asserts is what a user sees:
status, events, pods, through the real kubectl.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ftj_testing import apply_job as apply
from ftj_testing import job_events as events
from ftj_testing import job_status as status
from ftj_testing import worker_pods

from elasticft_sandbox.cluster import LocalCluster, phase

POOLS = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 2,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 2, "labels": {"karpenter.sh/capacity-type": "spot"},
         "gpus_per_node": 1, "price_per_hour": 1.0},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 3,
         "labels": {"karpenter.sh/capacity-type": "on-demand"}, "gpus_per_node": 1, "price_per_hour": 3.0},
    ],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state = tmp_path_factory.mktemp("cluster")
    pools = state / "pools.yaml"
    pools.write_text(yaml.safe_dump(POOLS))
    with LocalCluster(state / "sandbox", pools, interval_s=1.0) as running:
        yield running


def standin_job(name: str, steps: int = 120, step_s: float = 0.1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command": ["python", "-m", "elasticft_sandbox.standin"],
        "env": [{"name": "STANDIN_STEP_SECONDS", "value": str(step_s)}],
        "totalSteps": steps,
        "globalBatchSize": 12,
        "resources": {"requests": {"nvidia.com/gpu": 1}},
        "elastic": {"minWorkers": 1, "maxWorkers": 2, "rescaleCooldown": "5s"},
        "objective": {"maxDuration": "2h"},
        "capacity": {"spot": {"pricePerHour": 1.0}, "onDemand": {"pricePerHour": 3.0}},
        "checkpoint": {"volume": {"size": "1Gi"}, "intervalSteps": 10},
    }
    body.update(spec)
    return {"apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name},
            "spec": body}














def test_job_gets_its_children_and_succeeds(cluster: LocalCluster) -> None:
    apply(cluster, "basic", standin_job("basic"))
    running = cluster.wait_for_job("basic", "basic", lambda j: phase(j) == "Running", 60)
    assert running is not None
    pods = worker_pods(cluster, "basic", "basic")
    assert len(pods) == status(running)["workers"]["desired"] >= 1
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["elasticft.io/generation"] == str(status(running)["generation"])
        assert labels["elasticft.io/capacity-type"] in ("spot", "on-demand")
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
    assert cluster.kubectl("get", "service", "basic-rdzv", "-n", "basic")
    # the workers were created only once the rendezvous store was serving (its readiness probe passed)
    store = cluster.pods("basic", "elasticft.io/job=basic,elasticft.io/role=rendezvous")[0]
    store_ready = next(c for c in store["status"]["conditions"] if c["type"] == "Ready")
    assert store_ready["status"] == "True"
    assert all(p["metadata"]["creationTimestamp"] >= store_ready["lastTransitionTime"] for p in pods)
    assert cluster.kubectl("get", "pvc", "basic-checkpoints", "-n", "basic")
    done = cluster.wait_for_job("basic", "basic", lambda j: phase(j) == "Succeeded", 90)
    assert status(done)["step"] == 120 and status(done)["progress"] == "100%"
    assert status(done)["cost"]["accrued"] > 0
    assert any(e.startswith("Completed") for e in events(cluster, "basic", "basic"))
    table = cluster.kubectl("get", "ftj", "-n", "basic")
    assert "Succeeded" in table and "100%" in table
    assert worker_pods(cluster, "basic", "basic") == []


def test_spot_reclaim_is_a_preemption_not_a_failure(cluster: LocalCluster) -> None:
    apply(cluster, "reclaim", standin_job("reclaim", steps=300, step_s=0.1))
    cluster.wait_for_job("reclaim", "reclaim",
                         lambda j: phase(j) == "Running" and status(j)["workers"]["spot"] > 0, 60)
    spot = [p for p in worker_pods(cluster, "reclaim", "reclaim")
            if p["metadata"]["labels"]["elasticft.io/capacity-type"] == "spot"]
    node = spot[0]["spec"]["nodeName"]
    cluster.sandbox.reclaim(node, notice_s=2)
    preempted = cluster.wait_for_job("reclaim", "reclaim", lambda j: status(j).get("preemptions", 0) >= 1, 30)
    assert status(preempted)["restarts"] == 0
    done = cluster.wait_for_job("reclaim", "reclaim", lambda j: phase(j) == "Succeeded", 120)
    assert status(done)["generation"] >= 2 and status(done)["restarts"] == 0
    said = events(cluster, "reclaim", "reclaim")
    assert any(e.startswith("Preempted") and node in e for e in said), said


def test_operator_restart_mid_job_changes_nothing(cluster: LocalCluster) -> None:
    apply(cluster, "restart", standin_job("restart", steps=250, step_s=0.1))
    before = cluster.wait_for_job("restart", "restart", lambda j: phase(j) == "Running", 60)
    names_before = sorted(p["metadata"]["name"] for p in worker_pods(cluster, "restart", "restart"))
    cluster.operator.restart(hard=True)
    time.sleep(5)
    after = cluster.get_job("restart", "restart")
    assert status(after)["generation"] == status(before)["generation"]
    names_after = sorted(p["metadata"]["name"] for p in worker_pods(cluster, "restart", "restart"))
    assert names_after == names_before  # no duplicates, no replacements
    done = cluster.wait_for_job("restart", "restart", lambda j: phase(j) == "Succeeded", 120)
    assert status(done)["step"] == 250 and status(done)["restarts"] == 0


def test_invalid_spec_is_marked_and_a_fix_recovers(cluster: LocalCluster) -> None:
    bad = standin_job("fixme", steps=40, globalBatchSize=9)  # 9 samples cannot split over 2 workers
    apply(cluster, "invalid", bad)
    marked = cluster.wait_for_job("invalid", "fixme", lambda j: any(
        c["type"] == "Valid" and c["status"] == "False" for c in status(j).get("conditions", [])), 30)
    message = next(c["message"] for c in status(marked)["conditions"] if c["type"] == "Valid")
    assert "spec.globalBatchSize" in message
    assert any(e.startswith("InvalidSpec") for e in events(cluster, "invalid", "fixme"))
    time.sleep(3)
    assert cluster.pods("invalid", "elasticft.io/job=fixme") == []
    assert len([e for e in events(cluster, "invalid", "fixme") if e.startswith("InvalidSpec")]) == 1
    cluster.kubectl("patch", "ftj", "fixme", "-n", "invalid", "--type=merge", "-p", '{"spec":{"globalBatchSize":12}}')
    done = cluster.wait_for_job("invalid", "fixme", lambda j: phase(j) == "Succeeded", 90)
    valid = next(c for c in status(done)["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "True"


def test_suspend_checkpoints_and_resume_continues(cluster: LocalCluster) -> None:
    apply(cluster, "suspend", standin_job("pause", steps=200, step_s=0.1))
    cluster.wait_for_job("suspend", "pause", lambda j: phase(j) == "Running" and status(j)["step"] > 10, 60)
    cluster.kubectl("patch", "ftj", "pause", "-n", "suspend", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    suspended = cluster.wait_for_job("suspend", "pause", lambda j: phase(j) == "Suspended", 30)
    deadline = time.monotonic() + 30
    while worker_pods(cluster, "suspend", "pause") and time.monotonic() < deadline:
        time.sleep(1)
    assert worker_pods(cluster, "suspend", "pause") == []
    step_at_suspend = status(cluster.get_job("suspend", "pause"))["step"]
    assert 0 < step_at_suspend < 200
    cluster.kubectl("patch", "ftj", "pause", "-n", "suspend", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    # the resumed workers report the checkpoint they resumed from: status shows it while they run
    resumed = cluster.wait_for_job("suspend", "pause", lambda j: phase(j) == "Running"
                                   and status(j)["generation"] > status(suspended)["generation"]
                                   and status(j).get("lastCheckpoint", {}).get("step", 0) > 0, 60)
    # (status.step is the last step measured before the stop; the workers may have trained a few more)
    assert step_at_suspend <= status(resumed)["lastCheckpoint"]["step"] < 200
    done = cluster.wait_for_job("suspend", "pause", lambda j: phase(j) == "Succeeded", 90)
    assert status(done)["generation"] > status(suspended)["generation"]


def test_kubectl_shows_the_job_like_a_user_expects(cluster: LocalCluster, tmp_path: Path) -> None:
    apply(cluster, "show", standin_job("show", steps=300, step_s=0.1))
    cluster.wait_for_job("show", "show", lambda j: phase(j) == "Running" and status(j)["throughput"]["current"] > 0,
                         60)
    table = cluster.kubectl("get", "ftj", "-n", "show")
    header = table.splitlines()[0].split()
    assert header[:3] == ["NAME", "PHASE", "WORKERS"] and "SAMPLES/S" in header and "ETA" in header
    described = cluster.kubectl("describe", "ftj", "show", "-n", "show")
    assert "Started" in described and "Throughput" in described
    (tmp_path / "get.txt").write_text(table + "\n" + described)


def test_a_worker_deleted_from_a_spot_node_is_a_preemption_not_a_failure(cluster: LocalCluster) -> None:
    apply(cluster, "deleted", standin_job("deleted", steps=300, step_s=0.1))
    cluster.wait_for_job("deleted", "deleted",
                         lambda j: phase(j) == "Running" and status(j)["workers"]["spot"] > 0, 60)
    victim = next(p for p in worker_pods(cluster, "deleted", "deleted")
                  if p["metadata"]["labels"]["elasticft.io/capacity-type"] == "spot")["metadata"]["name"]
    # A finalizer of the test's own keeps the deleted pod in the API after its process exited (0, with
    # the trainer's "sigterm" summary), so the operator sees it as a spot pod that was deleted, not only
    # as one that vanished.
    cluster.kubectl("patch", "pod", victim, "-n", "deleted", "--type=merge",
                    "-p", '{"metadata":{"finalizers":["test.elasticft.io/hold"]}}')
    cluster.kubectl("delete", "pod", victim, "-n", "deleted", "--wait=false")
    try:
        preempted = cluster.wait_for_job("deleted", "deleted", lambda j: status(j).get("preemptions", 0) >= 1, 30)
        assert status(preempted)["restarts"] == 0
        said = events(cluster, "deleted", "deleted")
        assert any(e.startswith("Preempted") and victim in e and "deleted from its spot node" in e
                   for e in said), said
    finally:
        cluster.kubectl("patch", "pod", victim, "-n", "deleted", "--type=json",
                        "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    done = cluster.wait_for_job("deleted", "deleted", lambda j: phase(j) == "Succeeded", 120)
    assert status(done)["restarts"] == 0 and status(done)["preemptions"] == 1


def test_an_unreachable_prometheus_falls_back_to_scraping_the_workers(cluster: LocalCluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = sock.getsockname()[1]  # closed again: nothing listens there
    apply(cluster, "noprom", standin_job("noprom", steps=300, step_s=0.1,
                                         metrics={"prometheusURL": f"http://127.0.0.1:{nobody}"}))
    measured = cluster.wait_for_job("noprom", "noprom", lambda j: phase(j) == "Running"
                                    and status(j)["throughput"]["current"] > 0 and status(j)["step"] > 0, 60)
    assert status(measured)["throughput"]["curve"]
    logs = cluster.operator.log_path.read_text(errors="replace")
    assert "scraping the workers directly" in logs and "noprom/noprom" in logs
