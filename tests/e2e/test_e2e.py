"""End to end in the sandbox: the real kubectl, the real operator process, real torchrun workers.

Every test here trains the built-in model for real; the jobs are small so the file fits in a few
minutes on two cores. What is asserted is what a user sees: status, events, files, loss.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ftj_testing import apply_job as apply
from ftj_testing import job_events as events
from ftj_testing import job_status as status
from ftj_testing import worker_pods

from elasticft_sandbox.cluster import Job, LocalCluster, phase
from elasticft_sandbox.demo import _log_facts, run_demo

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
POOLS = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 3,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 3, "gpus_per_node": 1, "price_per_hour": 0.918,
         "labels": {"karpenter.sh/capacity-type": "spot"}},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 3, "gpus_per_node": 1,
         "price_per_hour": 3.06, "labels": {"karpenter.sh/capacity-type": "on-demand"}},
    ],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state = tmp_path_factory.mktemp("e2e")
    (state / "pools.yaml").write_text(yaml.safe_dump(POOLS))
    with LocalCluster(state / "sandbox", state / "pools.yaml", interval_s=1.0) as running:
        yield running


@pytest.fixture
def spot_restored(cluster: LocalCluster) -> Iterator[None]:
    """Tests that reclaim spot nodes give the pool back its size afterwards."""
    yield
    ready = json.loads(cluster.kubectl("get", "nodes", "-l", "karpenter.sh/capacity-type=spot", "-o", "json"))
    missing = POOLS["pools"][0]["nodes"] - len(ready["items"])
    if missing > 0:
        cluster.sandbox.add_nodes("spot", missing)


def trainer_job(name: str, steps: int = 160, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "builtin:gpt-tiny",
        "totalSteps": steps,
        "globalBatchSize": 8,
        "learningRate": 0.002,
        "resources": {"requests": {"nvidia.com/gpu": 1}},
        "elastic": {"minWorkers": 1, "maxWorkers": 2, "rescaleCooldown": "10s"},
        "objective": {"maxDuration": "30m"},
        "throughputPrior": {"samplesPerSecond": 60, "serialFraction": 0.3},
        "capacity": {"spot": {"pricePerHour": 0.918}, "onDemand": {"pricePerHour": 3.06}},
        "checkpoint": {"volume": {"size": "1Gi"}, "intervalSteps": 20},
    }
    body.update(spec)
    return {"apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name},
            "spec": body}


def checkpoint_root(cluster: LocalCluster, namespace: str, name: str) -> Path:
    """Where the sandbox keeps the job's claim, as the trainer sees /checkpoints/NS/NAME."""
    return cluster.state_dir / "volumes" / namespace / f"{name}-checkpoints" / namespace / name


def latest_step(root: Path) -> int:
    latest = (root / "latest").read_text().strip()
    return int(latest.rsplit("-", 1)[-1])


def assert_trained(done: Job | None, steps: int) -> None:
    assert phase(done) == "Succeeded", status(done)
    assert status(done)["step"] == steps and status(done)["restarts"] == 0


def test_newcomer_demo_rescales_on_the_trace_and_every_sample_is_trained_once(tmp_path: Path) -> None:
    # The demo's own job and pools, with the trainer told to log every sample it consumes.
    job = yaml.safe_load((REPO / "examples" / "finetunejob.yaml").read_text())
    job["spec"]["args"] = ["--sample-log", "/checkpoints/samples.log"]
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        report = run_demo(job_file, tmp_path / "state", out=out, timeout_s=600)
    text = log.read_text()
    steps, batch = job["spec"]["totalSteps"], job["spec"]["globalBatchSize"]
    assert report.phase == "Succeeded" and report.deadline_met, text
    assert " Running " in text, "the live line never showed the job Running"
    assert report.steps_total == steps and report.preemptions >= 1 and report.steps_lost == 0, text
    assert report.final_loss is not None and report.initial_loss is not None
    assert report.final_loss < report.initial_loss
    # elastic: more than one worker, chosen from measurement; it grew at least once
    assert report.max_world_size >= 3 and report.grows >= 1, text
    assert report.measured_sizes and report.fit_error is not None and report.fit_error < 0.15, text
    root = tmp_path / "state" / "volumes" / "default" / "gpt-tiny-lora-checkpoints"
    assert latest_step(root / "default" / "gpt-tiny-lora") == steps
    # What the trainer recorded: every step once, each with a whole global batch of distinct samples,
    # trained by worlds of exactly the sizes the operator launched.
    lines = [tuple(int(x) for x in line.split()) for line in (root / "samples.log").read_text().splitlines()]
    by_step = Counter(line[0] for line in lines)
    assert sorted(by_step) == list(range(1, steps + 1)) and set(by_step.values()) == {batch}
    assert len({(epoch, index) for _, epoch, index, _, _ in lines}) == steps * batch, "a sample was trained twice"
    trained_by = {world for *_, world in lines}
    assert trained_by <= {w.workers for w in report.world_sizes} and max(trained_by) >= 3, (trained_by, text)
    for key in ("steps", "preemptions", "loss", "cost", "same work", "world sizes", "throughput"):
        assert f"\n  {key} " in text, f"the summary has no {key} line"
    assert "simulated device time" in text and Path(report.plot).is_file()


def test_losing_worker_zero_and_the_rendezvous_node_completes(cluster: LocalCluster, spot_restored: None) -> None:
    # Spot only: the rendezvous pod lands on spot too, so one reclaim can take worker 0 and the store.
    apply(cluster, "rdzv", trainer_job("spotonly", steps=200, capacity={
        "spot": {"pricePerHour": 0.918}, "onDemand": {"enabled": False}}))
    cluster.wait_for_job("rdzv", "spotonly", lambda j: phase(j) == "Running" and status(j)["step"] >= 40, 180)
    pods = {p["metadata"]["name"]: p for p in cluster.pods("rdzv", "elasticft.io/job=spotonly")}
    worker0 = next(p for name, p in pods.items() if name.endswith("-w0"))
    rdzv = pods["spotonly-rdzv"]
    for node in {worker0["spec"]["nodeName"], rdzv["spec"]["nodeName"]}:
        cluster.sandbox.reclaim(node, notice_s=2)
    done = cluster.wait_for_job("rdzv", "spotonly", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    assert_trained(done, 200)
    assert status(done)["preemptions"] >= 1
    assert latest_step(checkpoint_root(cluster, "rdzv", "spotonly")) == 200


def test_all_spot_gone_with_a_tight_deadline_moves_work_to_on_demand(cluster: LocalCluster,
                                                                     spot_restored: None) -> None:
    # 5 minutes for ~40 s of work: enough slack to start on spot (slack >= 3d + g with d = 60 s), not
    # enough to wait out a long outage: uniform progress idles while ahead of its line, then on-demand.
    apply(cluster, "tight", trainer_job("tight", steps=300, objective={"maxDuration": "5m"}))
    cluster.wait_for_job("tight", "tight", lambda j: phase(j) == "Running" and status(j)["step"] >= 20
                         and status(j)["workers"]["spot"] > 0, 180)
    spot_nodes = json.loads(cluster.kubectl("get", "nodes", "-l", "karpenter.sh/capacity-type=spot", "-o", "json"))
    for node in spot_nodes["items"]:
        cluster.sandbox.reclaim(node["metadata"]["name"], notice_s=2)
    on_demand = cluster.wait_for_job("tight", "tight", lambda j: status(j)["workers"]["onDemand"] > 0
                                     and phase(j) == "Running", 280)
    assert status(on_demand)["workers"]["spot"] == 0
    done = cluster.wait_for_job("tight", "tight", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    assert_trained(done, 300)
    assert any(e.startswith("Preempted") for e in events(cluster, "tight", "tight"))


def test_operator_killed_mid_job_completes_without_duplicate_workers(cluster: LocalCluster) -> None:
    # ~33 steps/s on this machine: 800 steps keep the job training through the 10 s of the restart
    apply(cluster, "opkill", trainer_job("opkill", steps=800))
    before = cluster.wait_for_job("opkill", "opkill", lambda j: phase(j) == "Running" and status(j)["step"] >= 30
                                  and status(j).get("lastCheckpoint", {}).get("step", 0) > 0, 180)
    # while it trains, status names the last checkpoint the trainer committed (intervalSteps 20)
    checkpoint = status(before)["lastCheckpoint"]["step"]
    assert checkpoint % 20 == 0 and checkpoint <= status(before)["step"]
    assert (checkpoint_root(cluster, "opkill", "opkill") / f"step-{checkpoint:08d}" / "trainer.json").exists()
    generation = status(before)["generation"]
    uids_before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in worker_pods(cluster, "opkill", "opkill")}
    cluster.operator.stop(hard=True)
    time.sleep(2)
    cluster.operator.start()
    time.sleep(8)
    pods = worker_pods(cluster, "opkill", "opkill")
    assert {p["metadata"]["labels"]["elasticft.io/generation"] for p in pods} == {str(generation)}
    assert len(pods) == status(before)["workers"]["desired"]
    # the very same pods: none replaced, none added beside them
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods} == uids_before
    after = cluster.get_job("opkill", "opkill")
    assert status(after)["generation"] == generation and status(after)["step"] >= status(before)["step"]
    done = cluster.wait_for_job("opkill", "opkill", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    assert_trained(done, 800)
    assert status(done)["generation"] == generation  # the restart caused no new generation


def test_truncated_latest_checkpoint_falls_back_to_the_previous(cluster: LocalCluster) -> None:
    apply(cluster, "trunc", trainer_job("trunc", steps=240))
    cluster.wait_for_job("trunc", "trunc", lambda j: phase(j) == "Running" and status(j)["step"] >= 60, 180)
    cluster.kubectl("patch", "ftj", "trunc", "-n", "trunc", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    cluster.wait_for_job("trunc", "trunc", lambda j: phase(j) == "Suspended", 60)
    deadline = time.monotonic() + 60
    while worker_pods(cluster, "trunc", "trunc") and time.monotonic() < deadline:
        time.sleep(1)
    root = checkpoint_root(cluster, "trunc", "trunc")
    latest = root / (root / "latest").read_text().strip()
    step_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    assert len(step_dirs) >= 2, "need a previous checkpoint to fall back to"
    for shard in latest.iterdir():
        if shard.is_file() and shard.stat().st_size > 0:
            shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # a torn write
    cluster.kubectl("patch", "ftj", "trunc", "-n", "trunc", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    done = cluster.wait_for_job("trunc", "trunc", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    assert_trained(done, 240)
    logs = "".join(p.read_text(errors="replace") for p in (cluster.sandbox.logs_dir / "trunc").glob("*/*.log"))
    assert "unusable" in logs and latest.name in logs
    previous = step_dirs[-2].name if step_dirs[-1] == latest else None
    if previous is not None:
        assert f"resuming from checkpoint {root / previous}" in logs


def test_invalid_job_is_rejected_and_the_operator_keeps_serving(cluster: LocalCluster) -> None:
    bad = trainer_job("bad", steps=20)
    bad["spec"]["globalBatchSize"] = "eight"
    with pytest.raises(RuntimeError, match="globalBatchSize"):
        apply(cluster, "mixed", bad)
    semantic = trainer_job("semantic", steps=20, elastic={"minWorkers": 1, "maxWorkers": 3})
    semantic["spec"]["globalBatchSize"] = 8  # cannot split over 3 workers: the operator says so
    apply(cluster, "mixed", semantic)
    apply(cluster, "mixed", trainer_job("good", steps=40))
    marked = cluster.wait_for_job("mixed", "semantic", lambda j: any(
        c["type"] == "Valid" and c["status"] == "False" for c in status(j).get("conditions", [])), 60)
    assert "spec.globalBatchSize" in json.dumps(status(marked)["conditions"])
    done = cluster.wait_for_job("mixed", "good", lambda j: phase(j) in ("Succeeded", "Failed"), 240)
    assert_trained(done, 40)
    assert cluster.pods("mixed", "elasticft.io/job=semantic") == []


def test_two_jobs_in_two_namespaces_do_not_cross(cluster: LocalCluster) -> None:
    apply(cluster, "team-a", trainer_job("shared-name", steps=60, seed=1))
    apply(cluster, "team-b", trainer_job("shared-name", steps=80, seed=2))
    done_a = cluster.wait_for_job("team-a", "shared-name", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    done_b = cluster.wait_for_job("team-b", "shared-name", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
    assert_trained(done_a, 60)
    assert_trained(done_b, 80)
    assert latest_step(checkpoint_root(cluster, "team-a", "shared-name")) == 60
    assert latest_step(checkpoint_root(cluster, "team-b", "shared-name")) == 80
    for namespace, steps in (("team-a", 60), ("team-b", 80)):
        completed = [e for e in events(cluster, namespace, "shared-name") if e.startswith("Completed")]
        assert len(completed) == 1 and f"trained {steps} steps" in completed[0], completed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_operator_reads_throughput_from_a_real_prometheus(cluster: LocalCluster, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: `apt-get install prometheus` (scripts/install.sh does it)"
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{
        "job_name": "elasticft-workers", "honor_labels": True,
        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    prometheus = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()

    def discover() -> None:
        # What a PodMonitor does on a real cluster: every worker pod's IP:9400, with its namespace.
        while not stop.is_set():
            found = [{"targets": [f"{p['status']['podIP']}:9400"], "labels": {"namespace": "prom"}}
                     for p in worker_pods(cluster, "prom", "watched") if (p.get("status") or {}).get("podIP")]
            tmp = targets.with_suffix(".tmp")
            tmp.write_text(json.dumps(found))
            os.replace(tmp, targets)
            stop.wait(1)

    discovery = threading.Thread(target=discover, daemon=True)
    discovery.start()
    try:
        apply(cluster, "prom", trainer_job("watched", steps=400, metrics={"prometheusURL": f"http://127.0.0.1:{port}"}))
        measured = cluster.wait_for_job("prom", "watched", lambda j: phase(j) == "Running"
                                        and status(j)["throughput"]["current"] > 0 and status(j).get("loss")
                                        and status(j).get("lastCheckpoint", {}).get("step", 0) > 0, 240)
        assert status(measured)["throughput"]["curve"], status(measured)
        assert 0 < status(measured)["loss"] < 20
        done = cluster.wait_for_job("prom", "watched", lambda j: phase(j) in ("Succeeded", "Failed"), 300)
        assert_trained(done, 400)
    finally:
        stop.set()
        discovery.join(5)
        prometheus.terminate()
        prometheus.wait(20)


def test_steps_lost_counts_only_steps_trained_twice(tmp_path: Path) -> None:
    """The demo's `steps lost`, on logs written the way the trainer writes them."""
    def write(gen: int, text: str) -> None:
        path = tmp_path / "ns" / f"job-g{gen}-w0" / "trainer.log"
        path.parent.mkdir(parents=True)
        path.write_text(text)

    line = "2026-01-01 10:00:00,000 rank=0 INFO elasticft_trainer: "
    summary = 'ELASTICFT_SUMMARY {"completed": false, "step": %d, "initial_loss": 5.5, "reason": "sigterm"}\n'
    write(1, f"{line}step 1/300 loss 5.5000\n{line}step 100/300 loss 4.0\n")  # killed after 100 without saving
    write(2, "")  # drained before it loaded anything
    write(3, f"{line}resumed at step 80 (640 samples consumed) in 0.1 s\n{line}step 150/300 loss 3.0\n"
             + summary % 150)
    write(4, f"{line}resumed at step 150 (1200 samples consumed) in 0.1 s\n" + summary % 300)
    lost, initial = _log_facts(tmp_path, "ns", "job")
    assert lost == 20 and initial == 5.5


def test_a_new_demo_run_never_resumes_the_previous_runs_checkpoints(tmp_path: Path) -> None:
    from elasticft_sandbox.demo import _set_aside_previous_run

    state = tmp_path / "run"
    checkpoint = state / "volumes" / "default" / "gpt-tiny-lora-checkpoints" / "latest"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("step-00000600")
    said = tmp_path / "out.txt"
    with said.open("w") as out:
        _set_aside_previous_run(state, out)
    assert not state.exists()
    assert (tmp_path / "run.previous" / "volumes" / "default" / "gpt-tiny-lora-checkpoints" / "latest").exists()
    assert "run.previous" in said.read_text()
