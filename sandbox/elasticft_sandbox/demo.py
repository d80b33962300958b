"""`elasticft sandbox run JOB.yaml`: a real fine-tune through a spot reclaim and a scale-up, on one machine.

It starts the sandbox (API, scheduler, process kubelet, node pools), installs the CRD and runs the
operator (`elasticft run`), applies the job with the real kubectl, and shows a live status line.
On the way it does what a spot market does: reclaims the node of a spot worker once the job is a
third done, and brings spot capacity back at two thirds so the policy may scale up. At the end it
prints what happened and leaves the checkpoints in the state directory.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
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
_PROGRESS = re.compile(r"INFO elasticft_trainer: step (\d+)/\d+ loss")
_SUMMARY = re.compile(r"ELASTICFT_SUMMARY (\{.*\})")
# Timestamps of the trainer's own lines (logging's asctime, local time) and of torchrun's (glog style).
_TRAINER_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) rank=\d+ ", re.MULTILINE)
_SIGTERM = re.compile(r"^(?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*SIGTERM received"
                      r"|[WI](\d{4}) (\d\d:\d\d:\d\d\.\d+) .*Received 15 death signal)", re.MULTILINE)


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
    # Where the first reclaim's notice -> training-again interval went (seconds since the notice).
    resume_timeline: dict[str, float] = field(default_factory=dict)
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
    """Steps lost over all restarts and the job's initial loss, read from the workers' logs that the
    sandbox keeps.

    A step is lost when a generation trained it and a later one had to train it again: walking the
    generations in order, each one that started training (it logged "resumed at step N", or trained
    from step 0) loses `furthest step trained so far - N`. A generation that never began training
    (drained before it loaded its checkpoint) starts nothing and loses nothing. The furthest step of
    a generation is the most its logs show: its summary, "stopping after step N" or a progress line.
    """
    generations: dict[int, dict[str, int]] = {}
    initial_loss = None
    for log in sorted((logs_dir / namespace).glob(f"{job}-g*-w*/*.log")):
        gen = int(log.parent.name.split("-g")[-1].split("-w")[0])
        facts = generations.setdefault(gen, {})
        text = log.read_text(errors="replace")
        reached = [int(m.group(1)) for pattern in (_STOPPING, _PROGRESS) for m in pattern.finditer(text)]
        for match in _RESUMED.finditer(text):
            facts["start"] = int(match.group(1))
        for match in _SUMMARY.finditer(text):
            summary = json.loads(match.group(1))
            reached.append(int(summary.get("step", 0)))
            loss = summary.get("initial_loss")
            # The initial loss travels in the checkpoint: any generation's summary carries the first one's.
            if isinstance(loss, int | float) and loss == loss and (initial_loss is None or gen < initial_loss[0]):
                initial_loss = (gen, float(loss))
        if reached:
            facts["furthest"] = max(facts.get("furthest", 0), *reached)
            facts.setdefault("start", 0)  # trained without resuming: from step 0
    lost = furthest = 0
    for gen in sorted(generations):
        facts = generations[gen]
        if "start" in facts:
            lost += max(furthest - facts["start"], 0)
        furthest = max(furthest, facts.get("furthest", 0))
    return lost, initial_loss[1] if initial_loss else None


def _log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, like time.time()


def _resume_timeline(logs_dir: Path, namespace: str, job: str, reclaimed_gen: int, notice_at: float,
                     next_pods: list[Job]) -> dict[str, float]:
    """Seconds from the reclaim notice to each step on the way back to training, from the logs of the
    reclaimed generation and of the first one after it, and the new pods' API timestamps (1 s)."""
    def since(moment: float | None) -> float | None:
        return round(moment - notice_at, 2) if moment is not None else None

    marks: dict[str, float | None] = {}
    old = "".join(p.read_text(errors="replace")
                  for p in (logs_dir / namespace).glob(f"{job}-g{reclaimed_gen}-w*/*.log"))
    sigterms = []
    for match in _SIGTERM.finditer(old):
        if match.group(1):
            sigterms.append(_log_time(match.group(1)))
        else:  # torchrun's glog line: MMDD HH:MM:SS.ffffff, this year
            year = datetime.fromtimestamp(notice_at).year
            moment = datetime.strptime(f"{year}{match.group(2)} {match.group(3)}", "%Y%m%d %H:%M:%S.%f")
            sigterms.append(moment.timestamp())
    marks["sigterm"] = since(min(sigterms)) if sigterms else None
    saved = [_log_time(m.group(1)) for m in re.finditer(
        r"^(\S+ \S+) rank=\d+ INFO elasticft_trainer.checkpoint: checkpoint committed", old, re.MULTILINE)]
    marks["emergency_checkpoint_saved"] = since(max(saved)) if saved and sigterms else None
    created = [_api_time(p["metadata"].get("creationTimestamp")) for p in next_pods]
    started = [_api_time((p.get("status") or {}).get("startTime")) for p in next_pods]
    marks["next_pods_created"] = since(max(filter(None, created), default=None))
    marks["next_pods_started"] = since(max(filter(None, started), default=None))
    new = [p.read_text(errors="replace") for pod in next_pods
           for p in (logs_dir / namespace / pod["metadata"]["name"]).glob("*.log")]
    first_lines = [_TRAINER_TIME.search(text) for text in new]
    marks["trainers_up"] = since(max((_log_time(m.group(1)) for m in first_lines if m), default=None))
    resumed = [re.search(r"^(\S+ \S+) rank=\d+ INFO elasticft_trainer: resumed at step", text, re.MULTILINE)
               for text in new]
    marks["checkpoint_loaded"] = since(max((_log_time(m.group(1)) for m in resumed if m), default=None))
    return {key: value for key, value in marks.items() if value is not None}


def _api_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp() if value else None


def run_demo(job_file: Path, state_dir: Path, out: TextIO = sys.stdout, timeout_s: float = 900,
             scripted_events: bool = True) -> DemoReport:
    """Run the job end to end in a fresh sandbox and report; raises TimeoutError past timeout_s."""
    document = yaml.safe_load(job_file.read_text())
    name = document["metadata"]["name"]
    namespace = document["metadata"].get("namespace", "default")
    report = DemoReport(job=name)
    _set_aside_previous_run(state_dir, out)
    state_dir.mkdir(parents=True, exist_ok=True)
    pools = state_dir / "pools.yaml"
    pools.write_text(yaml.safe_dump(DEMO_POOLS))
    started = time.monotonic()
    with LocalCluster(state_dir, pools) as cluster:
        print(f"sandbox up: export KUBECONFIG={cluster.kubeconfig}", file=out)
        print(cluster.kubectl("apply", "-f", str(job_file)).strip(), file=out)
        reclaimed_at: float | None = None
        notice_wall = 0.0
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
                    reclaimed_at, notice_wall = time.monotonic(), time.time()
                    reclaimed_generation = int(status.get("generation", 0))
            if reclaimed_at is not None and not report.sigterm_to_resumed_s and phase(job) == "Running" \
                    and int(status.get("generation", 0)) > reclaimed_generation:
                report.sigterm_to_resumed_s.append(round(time.monotonic() - reclaimed_at, 1))
                next_pods = cluster.pods(namespace, f"elasticft.io/job={name},elasticft.io/role=worker,"
                                         f"elasticft.io/generation={status.get('generation')}")
                report.resume_timeline = _resume_timeline(
                    cluster.sandbox.logs_dir, namespace, name, reclaimed_generation, notice_wall, next_pods)
                report.resume_timeline["running_seen"] = round(time.time() - notice_wall, 2)
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
        items = json.loads(events)["items"]
        items.sort(key=lambda e: e.get("eventTime") or e.get("firstTimestamp") or e.get("lastTimestamp") or "")
        for event in items:
            print(f"  {event['reason']:<10} {event['message']}", file=out)
    print_summary(report, out)
    return report


def _set_aside_previous_run(state_dir: Path, out: TextIO) -> None:
    """Every demo trains from scratch: a previous run's checkpoints in the same directory would make
    this one resume at the last step and report a training that never happened. The previous run is
    kept beside it (one deep) rather than deleted."""
    if not state_dir.is_dir() or not any(state_dir.iterdir()):
        return
    previous = state_dir.with_name(state_dir.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    state_dir.rename(previous)
    print(f"previous run's state (checkpoints, logs) moved to {previous}", file=out)


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
    if report.resume_timeline:
        resume += " (" + ", ".join(f"{k.replace('_', ' ')} +{v:.1f}" for k, v in report.resume_timeline.items()) + ")"
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


def _stop_on_sigterm(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through LocalCluster, which stops every process it started


def run(args: argparse.Namespace) -> int:
    """`elasticft sandbox run`: exit 0 when the job Succeeded."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    report = run_demo(args.job, args.state_dir, timeout_s=args.timeout, scripted_events=not args.no_events)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0 if report.phase == "Succeeded" else 1
