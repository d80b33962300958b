"""Fault bench: faults injected in random order into a training job in the sandbox, and what survived.

    python bench/chaos.py --seeds 5 --json bench/results/chaos.json

Each seed starts a fresh sandbox (3 spot + 3 on-demand nodes, the real operator, real torchrun
workers training the built-in model on a 96-sample corpus, so an epoch is 12 steps) and, while the job
trains, injects every fault once, in an order drawn from the seed, waiting for the job to train past
the step it had reached before the next one:

    worker-reclaim         a worker's node is reclaimed (notice, SIGTERM, node deleted)
    rendezvous-reclaim     the node of the rendezvous pod is reclaimed
    double-reclaim         two nodes of the job reclaimed within a second
    kill-trainer           kill -9 of one trainer process (no emergency checkpoint)
    kill-operator          kill -9 of the operator, restarted 2 s later
    delete-pod             `kubectl delete pod` of a worker
    damaged-checkpoint     the newest checkpoint garbled (one byte) or truncated, then kill -9 of a trainer,
                           so that the next world must fall back from it
    patch-during-recovery  a worker's node reclaimed, and elastic.maxWorkers patched while it recovers

Invariants, checked per seed: the job ends Succeeded with status.step == totalSteps; never two live
workers (Pending or Running) of one index; preemptions are not restarts (status.restarts equals the
number of trainers killed); every sample once per epoch (from the trainers' sample log: every step trained
the same samples each time it was trained, no sample in two steps, each whole epoch complete); no
Traceback in the operator's log. The JSON holds, per seed and in total: faults injected and survived,
steps trained twice, restarts used, preemptions, seconds to recover by fault kind, invariants broken.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes import client, config

from elasticft_sandbox.cluster import Job, LocalCluster, phase

NAMESPACE = "chaos"
JOB = "chaos"
TOTAL_STEPS = 700
GLOBAL_BATCH = 8
SEQ_LEN = 64
EPOCH_SAMPLES = 96
STEPS_BETWEEN_FAULTS = 30
RECOVERY_TIMEOUT_S = 240.0
FINISH_TIMEOUT_S = 600.0
FAULTS = ["worker-reclaim", "rendezvous-reclaim", "double-reclaim", "kill-trainer", "kill-operator", "delete-pod",
          "damaged-checkpoint", "patch-during-recovery"]
KILLS_A_TRAINER = {"kill-trainer", "damaged-checkpoint"}
POOLS = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 2,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 3, "gpus_per_node": 1, "price_per_hour": 0.918,
         "labels": {"karpenter.sh/capacity-type": "spot"}},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 3, "gpus_per_node": 1,
         "price_per_hour": 3.06, "labels": {"karpenter.sh/capacity-type": "on-demand"}},
    ],
}


def job_manifest(corpus: Path) -> dict[str, Any]:
    return {"apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": JOB}, "spec": {
        "model": "builtin:gpt-tiny", "dataset": str(corpus), "seqLen": SEQ_LEN, "totalSteps": TOTAL_STEPS,
        "globalBatchSize": GLOBAL_BATCH, "learningRate": 0.002, "seed": 3,
        "args": ["--sample-log", "/checkpoints/samples.log", "--step-delay-s", "0.05"],
        "resources": {"requests": {"nvidia.com/gpu": 1}},
        "elastic": {"minWorkers": 1, "maxWorkers": 2, "maxRestarts": 10, "rescaleCooldown": "10s"},
        "objective": {"maxDuration": "2h"},
        "throughputPrior": {"samplesPerSecond": 60, "serialFraction": 0.3},
        "capacity": {"spot": {"pricePerHour": 0.918}, "onDemand": {"pricePerHour": 3.06}},
        "checkpoint": {"volume": {"size": "1Gi"}, "intervalSteps": 20, "keep": 3},
    }}


def write_corpus(path: Path, seed: int) -> None:
    words = ["spot", "node", "resume", "gradient", "token", "epoch", "preempt", "shard", "world", "rank"]
    rng = random.Random(seed)
    text = " ".join(rng.choice(words) for _ in range(4000))
    path.write_text(text[: EPOCH_SAMPLES * (SEQ_LEN + 1)])


@dataclass
class Fault:
    kind: str
    step_before: int
    detail: str = ""
    recovery_s: float | None = None

    @property
    def survived(self) -> bool:
        return self.recovery_s is not None


@dataclass
class SeedResult:
    seed: int
    order: list[str]
    faults: list[Fault] = field(default_factory=list)
    phase: str = ""
    step: int = 0
    restarts: int = 0
    preemptions: int = 0
    steps_trained_twice: int = 0
    broken: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # the job's Events by reason
    wall_s: float = 0.0


class Sandbox:
    """The sandbox cluster of one seed, through the official client (cheaper than kubectl per poll)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        api = config.new_client_from_config(str(cluster.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def job(self) -> Job:
        return dict(self.custom.get_namespaced_custom_object("elasticft.io", "v1alpha1", NAMESPACE, "finetunejobs",
                                                             JOB))

    def status(self) -> dict[str, Any]:
        return dict(self.job().get("status") or {})

    def pods(self, role: str) -> list[Any]:
        selector = f"elasticft.io/job={JOB},elasticft.io/role={role}"
        return list(self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)

    def live_workers(self) -> list[Any]:
        return [p for p in self.pods("worker") if p.status.phase in ("Pending", "Running")]

    def restore_pools(self) -> None:
        """Give each pool back its size after reclaims, as a cloud's autoscaler would."""
        for pool in POOLS["pools"]:
            selector = "karpenter.sh/capacity-type=" + pool["labels"]["karpenter.sh/capacity-type"]
            nodes = self.core.list_node(label_selector=selector).items
            ready = [n for n in nodes if not n.spec.taints and n.metadata.deletion_timestamp is None]
            if len(ready) < pool["nodes"]:
                self.cluster.sandbox.add_nodes(pool["name"], pool["nodes"] - len(ready))


class Watcher(threading.Thread):
    """Every 0.3 s: are two live workers of one index alive at once?"""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.stopped = threading.Event()
        self.violations: list[str] = []

    def run(self) -> None:
        while not self.stopped.wait(0.3):
            with contextlib.suppress(Exception):  # the API may be briefly busy; the next look counts
                by_index = Counter(p.metadata.labels.get("elasticft.io/index") for p in self.sandbox.live_workers())
                doubled = sorted(str(i) for i, n in by_index.items() if n > 1)
                if doubled and len(self.violations) < 20:
                    self.violations.append(f"two live workers of index {', '.join(doubled)} at {time.time():.1f}")


def node_of(pod: Any) -> str:
    return str(pod.spec.node_name)


def running_workers(sandbox: Sandbox) -> list[Any]:
    return [p for p in sandbox.pods("worker") if p.status.phase == "Running" and p.spec.node_name
            and p.metadata.deletion_timestamp is None]


def kill_a_trainer(sandbox: Sandbox, rng: random.Random) -> str:
    """SIGKILL one trainer process (a torchrun worker's child) of a running worker pod."""
    pods = running_workers(sandbox)
    pod = rng.choice(pods)
    record = sandbox.cluster.state_dir / "pods" / pod.metadata.uid / "processes.json"
    for pid in json.loads(record.read_text()):
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(pid))
            command = " ".join(process.cmdline())
            if "elasticft_trainer" in command and "torchrun" not in command:
                os.kill(process.pid, signal.SIGKILL)
                return f"{pod.metadata.name} pid {process.pid}"
    raise RuntimeError(f"no trainer process found in {pod.metadata.name}")


def damage_newest_checkpoint(sandbox: Sandbox, rng: random.Random) -> str:
    root = (sandbox.cluster.state_dir / "volumes" / NAMESPACE / f"{JOB}-checkpoints" / NAMESPACE / JOB)
    newest = root / (root / "latest").read_text().strip()
    shard = max(newest.glob("*.distcp"), key=lambda p: p.stat().st_size)
    data = bytearray(shard.read_bytes())
    if rng.random() < 0.5:
        data[len(data) // 2] ^= 0xFF
        how = "garbled one byte of"
    else:
        data = data[: len(data) // 2]
        how = "truncated"
    shard.write_bytes(bytes(data))
    return f"{how} {newest.name}/{shard.name}; then {kill_a_trainer(sandbox, rng)}"


def inject(kind: str, sandbox: Sandbox, rng: random.Random) -> str:
    """Inject one fault; returns what was done."""
    cluster = sandbox.cluster
    workers = running_workers(sandbox)
    if kind == "worker-reclaim":
        node = node_of(rng.choice(workers))
        cluster.sandbox.reclaim(node, notice_s=2)
        return f"reclaimed {node}"
    if kind == "rendezvous-reclaim":
        node = node_of(sandbox.pods("rendezvous")[0])
        cluster.sandbox.reclaim(node, notice_s=2)
        return f"reclaimed {node} (rendezvous)"
    if kind == "double-reclaim":
        nodes = [node_of(p) for p in workers] + [node_of(p) for p in sandbox.pods("rendezvous")]
        first, second = (nodes + nodes)[:2] if len(set(nodes)) < 2 else rng.sample(sorted(set(nodes)), 2)
        cluster.sandbox.reclaim(first, notice_s=2)
        time.sleep(rng.uniform(0.1, 0.9))
        cluster.sandbox.reclaim(second, notice_s=2)
        return f"reclaimed {first} and {second}"
    if kind == "kill-trainer":
        return kill_a_trainer(sandbox, rng)
    if kind == "kill-operator":
        cluster.operator.stop(hard=True)
        time.sleep(2)
        cluster.operator.start()
        return "operator SIGKILLed and restarted"
    if kind == "delete-pod":
        name = rng.choice(workers).metadata.name
        cluster.kubectl("delete", "pod", name, "-n", NAMESPACE, "--wait=false")
        return f"deleted {name}"
    if kind == "damaged-checkpoint":
        return damage_newest_checkpoint(sandbox, rng)
    if kind == "patch-during-recovery":
        node = node_of(rng.choice(workers))
        cluster.sandbox.reclaim(node, notice_s=2)
        time.sleep(rng.uniform(0.5, 3.0))
        workers_now = sandbox.job()["spec"]["elastic"]["maxWorkers"]
        patch = {"spec": {"elastic": {"maxWorkers": 4 if workers_now == 2 else 2}}}  # both divide the batch
        cluster.kubectl("patch", "ftj", JOB, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
        return f"reclaimed {node}, then maxWorkers {workers_now} -> {patch['spec']['elastic']['maxWorkers']}"
    raise ValueError(kind)


def wait_for(sandbox: Sandbox, done: Any, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            status = sandbox.status()
            if done(status):
                return status
        time.sleep(0.5)
    return None


def trained_past(step: int) -> Any:
    return lambda s: s.get("phase") in ("Running", "Succeeded") and (s.get("step", 0) > step
                                                                     or s.get("phase") == "Succeeded")


def check_samples(sample_log: Path) -> tuple[int, list[str]]:
    """Steps trained twice, and what breaks 'every sample once per epoch' (see the module docstring)."""
    per_step: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for line in sample_log.read_text().splitlines():
        step, epoch, index, _rank, _world = (int(x) for x in line.split())
        per_step[step].append((epoch, index))
    broken = []
    twice = sum(1 for samples in per_step.values() if len(samples) > GLOBAL_BATCH)
    chosen: dict[int, set[tuple[int, int]]] = {}
    for step, samples in sorted(per_step.items()):
        distinct = set(samples)
        if len(distinct) != GLOBAL_BATCH:
            broken.append(f"step {step} trained {len(distinct)} distinct samples over its runs, not {GLOBAL_BATCH}")
        chosen[step] = distinct
    missing = sorted(set(range(1, TOTAL_STEPS + 1)) - set(chosen))
    if missing:
        broken.append(f"{len(missing)} steps never logged (first {missing[:5]})")
    seen = Counter(sample for samples in chosen.values() for sample in samples)
    if any(n > 1 for n in seen.values()):
        broken.append(f"{sum(n > 1 for n in seen.values())} samples consumed by two different steps")
    epochs = Counter(epoch for epoch, _ in seen)
    last = max(epochs) if epochs else 0
    incomplete = [e for e, n in epochs.items() if e < last and n != EPOCH_SAMPLES]
    if incomplete:
        broken.append(f"epochs {incomplete[:5]} not complete")
    return twice, broken


def run_seed(seed: int, work_dir: Path) -> SeedResult:
    rng = random.Random(seed)
    order = FAULTS[:]
    rng.shuffle(order)
    result = SeedResult(seed, order)
    begun = time.monotonic()
    state = work_dir / f"seed-{seed}"
    state.mkdir(parents=True)
    (state / "pools.yaml").write_text(yaml.safe_dump(POOLS))
    corpus = state / "corpus.txt"
    write_corpus(corpus, seed)
    with LocalCluster(state / "sandbox", state / "pools.yaml", interval_s=1.0) as cluster:
        sandbox = Sandbox(cluster)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(namespace))
        cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(job_manifest(corpus)))
        watcher = Watcher(sandbox)
        watcher.start()
        reached = wait_for(sandbox, lambda s: s.get("phase") == "Running" and s.get("step", 0) >= 40, 240)
        step = int((reached or {}).get("step", 0))
        for kind in order:
            if reached is None:
                break
            ready = wait_for(sandbox, lambda s, at=step: s.get("phase") == "Running"
                             and s.get("step", 0) >= at + STEPS_BETWEEN_FAULTS
                             and s.get("workers", {}).get("ready", 0) == s.get("workers", {}).get("desired", -1), 180)
            if ready is None or ready.get("step", 0) >= TOTAL_STEPS - STEPS_BETWEEN_FAULTS:
                break  # the job finished (or stalled) before every fault was injected
            fault = Fault(kind, int(ready["step"]))
            injected = time.monotonic()
            try:
                fault.detail = inject(kind, sandbox, rng)
            except Exception as error:  # a fault that could not be injected is reported, not survived
                fault.detail = f"not injected: {error!r}"
                result.faults.append(fault)
                continue
            recovered = wait_for(sandbox, trained_past(fault.step_before), RECOVERY_TIMEOUT_S)
            if recovered is not None:
                fault.recovery_s = round(time.monotonic() - injected, 1)
                step = int(recovered.get("step", 0))
            result.faults.append(fault)
            reached = recovered
            with contextlib.suppress(Exception):
                sandbox.restore_pools()
        final = wait_for(sandbox, lambda s: s.get("phase") in ("Succeeded", "Failed"), FINISH_TIMEOUT_S) or {}
        watcher.stopped.set()
        watcher.join(5)
        result.phase, result.step = str(final.get("phase", phase(None))), int(final.get("step", 0))
        result.restarts, result.preemptions = int(final.get("restarts", 0)), int(final.get("preemptions", 0))
        result.broken += watcher.violations
        with contextlib.suppress(Exception):
            said = sandbox.core.list_namespaced_event(NAMESPACE).items
            result.events = dict(Counter(str(e.reason) for e in said if e.involved_object.name == JOB))
        operator_log = (state / "sandbox" / "operator.log").read_text(errors="replace")
        sample_log = state / "sandbox" / "volumes" / NAMESPACE / f"{JOB}-checkpoints" / "samples.log"
        twice, sample_problems = check_samples(sample_log) if sample_log.exists() else (0, ["no sample log"])
    result.steps_trained_twice = twice
    result.broken += sample_problems
    if result.phase != "Succeeded" or result.step != TOTAL_STEPS:
        result.broken.append(f"ended {result.phase} at step {result.step}, not Succeeded at {TOTAL_STEPS}")
    killed = sum(1 for f in result.faults if f.kind in KILLS_A_TRAINER and not f.detail.startswith("not injected"))
    if result.restarts != killed:
        result.broken.append(f"restarts {result.restarts} != {killed} trainers killed (preemptions counted as "
                             "restarts, or a fault cost more than one)")
    if "Traceback" in operator_log:
        result.broken.append(f"{operator_log.count('Traceback')} tracebacks in the operator log")
    result.wall_s = round(time.monotonic() - begun, 1)
    return result


def summary(results: list[SeedResult]) -> dict[str, Any]:
    faults = [f for r in results for f in r.faults]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for f in faults:
        if f.recovery_s is not None:
            by_kind[f.kind].append(f.recovery_s)
    return {
        "seeds": len(results),
        "faults_injected": sum(1 for f in faults if not f.detail.startswith("not injected")),
        "faults_survived": sum(1 for f in faults if f.survived),
        "faults_planned": len(FAULTS) * len(results),
        "invariants_broken": sum(len(r.broken) for r in results),
        "steps_trained_twice": sum(r.steps_trained_twice for r in results),
        "restarts_used": sum(r.restarts for r in results),
        "preemptions": sum(r.preemptions for r in results),
        "recovery_s_by_kind": {kind: {"median": statistics.median(v), "max": max(v), "n": len(v)}
                               for kind, v in sorted(by_kind.items())},
    }


def table(total: dict[str, Any], results: list[SeedResult]) -> str:
    lines = ["| seed | faults survived | steps trained twice | restarts | preemptions | phase / step | broken |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.seed} | {sum(f.survived for f in r.faults)}/{len(r.faults)} | {r.steps_trained_twice} | "
                     f"{r.restarts} | {r.preemptions} | {r.phase} / {r.step} | {'; '.join(r.broken) or 0} |")
    lines += ["", "| fault | recovery s (median) | max | n |", "|---|---|---|---|"]
    for kind, v in total["recovery_s_by_kind"].items():
        lines.append(f"| {kind} | {v['median']:.1f} | {v['max']:.1f} | {v['n']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, one sandbox each (default 5)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, help="keep each seed's sandbox (logs, checkpoints) here")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="elasticft-chaos-") as scratch:
        work = args.work_dir or Path(scratch)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            results.append(run_seed(seed, work))
            print(f"seed {seed}: {results[-1].phase} in {results[-1].wall_s:.0f} s, "
                  f"broken: {results[-1].broken or 'none'}", file=sys.stderr)
    total = summary(results)
    document = {"total": total, "seeds": [asdict(r) | {"faults": [asdict(f) | {"survived": f.survived}
                                                                  for f in r.faults]} for r in results],
                "parameters": {"total_steps": TOTAL_STEPS, "global_batch": GLOBAL_BATCH,
                               "epoch_samples": EPOCH_SAMPLES, "pools": POOLS, "faults": FAULTS}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    rendered = table(total, results)
    args.json.with_suffix(".md").write_text(rendered + "\n")
    print(rendered)
    print(f"\n{total['faults_survived']}/{total['faults_injected']} faults survived, "
          f"{total['invariants_broken']} invariants broken; wrote {args.json}")
    return 0 if total["invariants_broken"] == 0 and total["faults_survived"] == total["faults_injected"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
