"""`elasticft sandbox run JOB.yaml`: a real fine-tune through a spot reclaim and a scale-up, on one machine.

It starts the sandbox (API, scheduler, process kubelet, node pools), installs the CRD and runs the
operator (`elasticft run`), applies the job with the real kubectl, and shows a live status line.
On the way it does what a spot market does: reclaims the node of a spot worker once the job is a
third done, and brings spot capacity back at two thirds so the policy may scale up. At the end it
prints what happened and leaves the checkpoints in the state directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from elasticft_sandbox.cluster import Job, LocalCluster, phase

DEMO_POOLS: dict[str, Any] = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 5,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 2, "gpus_per_node": 1, "price_per_hour": 0.918,
         "labels": {"karpenter.sh/capacity-type": "spot", "eks.amazonaws.com/capacityType": "SPOT"},
         "taints": [{"key": "elasticft.io/spot", "value": "true", "effect": "NoSchedule"}]},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 2, "gpus_per_node": 1, "price_per_hour": 3.06,
         "labels": {"karpenter.sh/capacity-type": "on-demand", "eks.amazonaws.com/capacityType": "ON_DEMAND"}},
    ],
}
RECLAIM_AT = 1 / 3
SPOT_BACK_AT = 2 / 3
SPOT_BACK_NODES = 2
_STOPPING = re.compile(r"stopping after step (\d+)")
_RESUMED = re.compile(r"resumed at step (\d+)")
_SUMMARY = re.compile(r"ELASTICFT_SUMMARY (\{.*\})")


@dataclass
class DemoReport:
    """What the demo measured; `bench/e2e.py` writes it as JSON."""

    job: str
    phase: str = ""
    wall_s: float = 0.0
    steps_total: int = 0
    steps_lost: int = 0
    preemptions: int = 0
    rescales: int = 0
    generations: int = 0
    sigterm_to_resumed_s: list[float] = field(default_factory=list)
    cost: float = 0.0
    initial_loss: float | None = None
    final_loss: float | None = None
    checkpoint_dir: str = ""

    @property
    def median_resume_s(self) -> float | None:
        return statistics.median(self.sigterm_to_resumed_s) if self.sigterm_to_resumed_s else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sigterm_to_resumed_s"] = self.median_resume_s
        data["sigterm_to_resumed_s_each"] = self.sigterm_to_resumed_s
        return data


def status_line(job: Job | None, elapsed_s: float) -> str:
    """One `kubectl get ftj`-like line: phase, workers, step/total, samples/s, cost, ETA."""
    status = (job or {}).get("status") or {}
    workers = (status.get("workers") or {}).get("summary", "-")
    total = status.get("totalSteps") or 0
    return (f"[{elapsed_s:5.0f}s] {status.get('phase', 'Pending'):<10} gen {status.get('generation', 0):<2} "
            f"workers {workers:<28} step {status.get('step', 0)}/{total} ({status.get('progress', '0%')}) "
            f"{(status.get('throughput') or {}).get('current', 0):7.1f} samples/s  "
            f"${(status.get('cost') or {}).get('accrued', 0):.4f}  ETA {status.get('eta') or '-'}")


def _log_facts(logs_dir: Path, namespace: str, job: str) -> tuple[int, float | None]:
    """Steps lost over all restarts (last step a generation finished − step the next resumed at) and
    the first run's initial loss, read from the workers' logs that the sandbox keeps."""
    generations: dict[int, dict[str, int]] = {}
    initial_loss = None
    for log in sorted((logs_dir / namespace).glob(f"{job}-g*-w*/*.log")):
        gen = int(log.parent.name.split("-g")[-1].split("-w")[0])
        facts = generations.setdefault(gen, {})
        text = log.read_text(errors="replace")
        for match in _STOPPING.finditer(text):
            facts["stopped"] = max(facts.get("stopped", 0), int(match.group(1)))
        for match in _RESUMED.finditer(text):
            facts["resumed"] = int(match.group(1))
        for match in _SUMMARY.finditer(text):
            summary = json.loads(match.group(1))
            facts["stopped"] = max(facts.get("stopped", 0), int(summary.get("step", 0)))
            if gen == 1 and initial_loss is None:
                initial_loss = summary.get("initial_loss")
    lost = 0
    ordered = sorted(generations)
    for before, after in itertools.pairwise(ordered):
        if "stopped" in generations[before]:
            lost += max(generations[before]["stopped"] - generations[after].get("resumed", 0), 0)
    return lost, initial_loss


def run_demo(job_file: Path, state_dir: Path, out: TextIO = sys.stdout, timeout_s: float = 900,
             scripted_events: bool = True) -> DemoReport:
    """Run the job end to end in a fresh sandbox and report; raises TimeoutError past timeout_s."""
    document = yaml.safe_load(job_file.read_text())
    name = document["metadata"]["name"]
    namespace = document["metadata"].get("namespace", "default")
    report = DemoReport(job=name)
    state_dir.mkdir(parents=True, exist_ok=True)
    pools = state_dir / "pools.yaml"
    pools.write_text(yaml.safe_dump(DEMO_POOLS))
    started = time.monotonic()
    with LocalCluster(state_dir, pools) as cluster:
        print(f"sandbox up: export KUBECONFIG={cluster.kubeconfig}", file=out)
        print(cluster.kubectl("apply", "-f", str(job_file)).strip(), file=out)
        reclaimed_at: float | None = None
        reclaimed_generation = 0
        spot_back = False
        last_line = ""
        job: Job | None = None
        while time.monotonic() - started < timeout_s:
            job = cluster.get_job(namespace, name)
            status = (job or {}).get("status") or {}
            elapsed = time.monotonic() - started
            line = status_line(job, elapsed)
            # Print on every change of phase, size or step, but not for the cost ticking alone.
            if line.split("$")[0][9:] != last_line.split("$")[0][9:]:
                print(line, file=out, flush=True)
                last_line = line
            if phase(job) in ("Succeeded", "Failed"):
                break
            total = status.get("totalSteps") or 0
            done = status.get("step", 0) / total if total else 0.0
            if scripted_events and reclaimed_at is None and done >= RECLAIM_AT and phase(job) == "Running":
                node = _spot_worker_node(cluster, namespace, name)
                if node:
                    print(f"*** spot reclaim of {node} (notice {DEMO_POOLS['reclaim_notice_s']} s)", file=out)
                    cluster.sandbox.reclaim(node)
                    reclaimed_at, reclaimed_generation = time.monotonic(), int(status.get("generation", 0))
            if reclaimed_at is not None and not report.sigterm_to_resumed_s and phase(job) == "Running" \
                    and int(status.get("generation", 0)) > reclaimed_generation:
                report.sigterm_to_resumed_s.append(round(time.monotonic() - reclaimed_at, 1))
            if scripted_events and not spot_back and done >= SPOT_BACK_AT and reclaimed_at is not None:
                nodes = cluster.sandbox.add_nodes("spot", SPOT_BACK_NODES)
                print(f"*** spot capacity back: {', '.join(nodes)}", file=out)
                spot_back = True
            time.sleep(1)
        else:
            raise TimeoutError(f"{name} did not finish within {timeout_s:.0f} s")
        status = (job or {}).get("status") or {}
        report.phase = phase(job)
        report.wall_s = round(time.monotonic() - started, 1)
        report.steps_total = int(status.get("step", 0))
        report.preemptions = int(status.get("preemptions", 0))
        report.rescales = int(status.get("rescales", 0))
        report.generations = int(status.get("generation", 0))
        report.cost = round(float((status.get("cost") or {}).get("accrued", 0.0)), 4)
        report.final_loss = status.get("loss")
        report.steps_lost, report.initial_loss = _log_facts(cluster.sandbox.logs_dir, namespace, name)
        report.checkpoint_dir = str(state_dir / "volumes")
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 f"involvedObject.name={name}", "-o", "json")
        print("\nevents:", file=out)
        for event in json.loads(events)["items"]:
            print(f"  {event['reason']:<10} {event['message']}", file=out)
    print_summary(report, out)
    return report


def _spot_worker_node(cluster: LocalCluster, namespace: str, name: str) -> str | None:
    for pod in cluster.pods(namespace, f"elasticft.io/job={name},elasticft.io/role=worker"):
        labels = pod["metadata"]["labels"]
        if labels.get("elasticft.io/capacity-type") == "spot" and pod["spec"].get("nodeName"):
            return str(pod["spec"]["nodeName"])
    return None


def print_summary(report: DemoReport, out: TextIO) -> None:
    loss = (f"{report.initial_loss:.3f} -> {report.final_loss:.3f}"
            if report.initial_loss is not None and report.final_loss is not None else "unknown")
    resume = f"{report.median_resume_s:.1f} s" if report.median_resume_s is not None else "-"
    print(f"""
summary of {report.job}: {report.phase} in {report.wall_s:.0f} s
  steps            {report.steps_total} ({report.generations} generations, {report.rescales} rescales)
  preemptions      {report.preemptions}, steps lost {report.steps_lost}, reclaim -> training again {resume}
  loss             {loss}
  cost             ${report.cost:.4f} (simulated p3.2xlarge prices)
  checkpoints      {report.checkpoint_dir}""", file=out)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="a FineTuneJob YAML file, e.g. examples/finetunejob.yaml")
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox/run"), help="where state and checkpoints go")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--no-events", action="store_true", help="no scripted reclaim or scale-up")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")


def run(args: argparse.Namespace) -> int:
    """`elasticft sandbox run`: exit 0 when the job Succeeded."""
    report = run_demo(args.job, args.state_dir, timeout_s=args.timeout, scripted_events=not args.no_events)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0 if report.phase == "Succeeded" else 1
