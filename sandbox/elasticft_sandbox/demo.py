"""`elasticft sandbox run JOB.yaml`: a real fine-tune that rescales on a real spot trace, on one machine.

It starts the sandbox (API, scheduler, process kubelet, node pools), installs the CRD and runs the
operator (`elasticft run`), applies the job with the real kubectl, and shows a live status line.
The spot pool replays a real availability trace, time-compressed (`pools/demo.yaml`): capacity comes
and goes, spot nodes are reclaimed under running workers, and the operator sizes the job from what
it measures. Every node carries a simulated accelerator (`elasticft_trainer.simulated_device`): the
samples/s are *simulated device time*, never a GPU figure. At the end it prints what happened (the
world-size timeline with its reasons, the fitted throughput curve beside the device's true one, the
cost against all on-demand and against a fixed gang under uniform progress on the same window, from
the simulator), writes a PNG beside the checkpoints and leaves the checkpoints in the state directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
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

from elasticft.api.models import FineTuneJobSpec
from elasticft.controller.sizing import prior_params
from elasticft.controller.status import deadline_of
from elasticft.policy.decision import Decision
from elasticft.policy.throughput import fit_throughput, predict_throughput
from elasticft.types import Prices
from elasticft_sandbox.cluster import Job, LocalCluster, phase
from elasticft_sandbox.logsetup import configure_logging
from elasticft_sandbox.nodepools import POOLS_DIR, PoolsConfig, load_pools
from elasticft_sandbox.plot import plot_run
from elasticft_sandbox.prediction import device_curve, predict

DEMO_POOLS_FILE = POOLS_DIR / "demo.yaml"
_STOPPING = re.compile(r"stopping after step (\d+)")
_RESUMED = re.compile(r"resumed at step (\d+)")
_PROGRESS = re.compile(r"INFO elasticft_trainer: step (\d+)/\d+ loss")
_SUMMARY = re.compile(r"ELASTICFT_SUMMARY (\{.*\})")
_TRAINABLE = re.compile(r"model \S+: (\d+) trainable of")
# Timestamps of the trainer's own lines (logging's asctime, local time) and of torchrun's (glog style).
_TRAINER_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) rank=\d+ ", re.MULTILINE)
_SIGTERM = re.compile(r"^(?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*SIGTERM received"
                      r"|[WI](\d{4}) (\d\d:\d\d:\d\d\.\d+) .*Received 15 death signal)", re.MULTILINE)


@dataclass(frozen=True)
class WorldSize:
    """One generation of the run: when it was decided, and its size by capacity type with the reason."""

    t_s: float
    generation: int
    size: Decision


@dataclass(frozen=True)
class Sample:
    """What the demo saw of the job at one moment (for the plot)."""

    t_s: float
    spot: int
    on_demand: int
    step: int
    cost: float


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
    deadline_met: bool = False
    job_seconds: float = 0.0
    deadline_seconds: float | None = None
    world_sizes: list[WorldSize] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    restart_overhead_s: float = 0.0
    device: str = ""
    #: samples/s by world size: what the operator fitted to its measurements, and the device's truth
    fitted_curve: dict[int, float] = field(default_factory=dict)
    true_curve: dict[int, float] = field(default_factory=dict)
    measured_sizes: list[int] = field(default_factory=list)
    #: the simulator on the same window: the operator's sizing, all on-demand, a gang under uniform progress
    predicted_cost: float | None = None
    predicted_seconds: float | None = None
    on_demand_cost: float | None = None
    gang_up_cost: float | None = None
    gang_size: int = 0
    plot: str = ""

    @property
    def median_resume_s(self) -> float | None:
        return statistics.median(self.sigterm_to_resumed_s) if self.sigterm_to_resumed_s else None

    @property
    def max_world_size(self) -> int:
        return max((w.size.workers for w in self.world_sizes), default=0)

    @property
    def grows(self) -> int:
        return sum(1 for a, b in itertools.pairwise(self.world_sizes) if b.size.workers > a.size.workers > 0)

    @property
    def shrinks(self) -> int:
        return sum(1 for a, b in itertools.pairwise(self.world_sizes) if 0 < b.size.workers < a.size.workers)

    @property
    def fit_error(self) -> float | None:
        """The largest |fitted - true| / true at the sizes measured."""
        errors = [abs(self.fitted_curve[n] - self.true_curve[n]) / self.true_curve[n]
                  for n in self.measured_sizes if n in self.fitted_curve and n in self.true_curve]
        return round(max(errors), 4) if errors else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["samples"]
        data["sigterm_to_resumed_s"] = self.median_resume_s
        data["sigterm_to_resumed_s_each"] = self.sigterm_to_resumed_s
        data.update(max_world_size=self.max_world_size, grows=self.grows, shrinks=self.shrinks,
                    fit_error=self.fit_error)
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
             pools_file: Path = DEMO_POOLS_FILE) -> DemoReport:
    """Run the job end to end in a fresh sandbox on `pools_file` and report; raises TimeoutError past
    timeout_s."""
    document = yaml.safe_load(job_file.read_text())
    name = document["metadata"]["name"]
    namespace = document["metadata"].get("namespace", "default")
    report = DemoReport(job=name)
    _set_aside_previous_run(state_dir, out)
    state_dir.mkdir(parents=True, exist_ok=True)
    pools = state_dir / "pools.yaml"
    shutil.copyfile(pools_file, pools)
    started = time.monotonic()
    with LocalCluster(state_dir, pools) as cluster:
        print(f"sandbox up: export KUBECONFIG={cluster.kubeconfig}", file=out)
        print(cluster.kubectl("apply", "-f", str(job_file)).strip(), file=out)
        job = _follow(cluster, namespace, name, report, started, timeout_s, out)
        status = (job or {}).get("status") or {}
        report.phase = phase(job)
        report.wall_s = round(time.monotonic() - started, 1)
        report.steps_total = int(status.get("step", 0))
        report.preemptions = int(status.get("preemptions", 0))
        report.rescales = int(status.get("rescales", 0))
        report.generations = int(status.get("generation", 0))
        report.cost = round(float((status.get("cost") or {}).get("accrued", 0.0)), 4)
        report.final_loss = status.get("loss")
        report.restart_overhead_s = float(status.get("restartOverheadSeconds") or 0.0)
        report.steps_lost, report.initial_loss = _log_facts(cluster.sandbox.logs_dir, namespace, name)
        report.checkpoint_dir = str(state_dir / "volumes")
        _judge_deadline(report, job)
        _compare_with_simulator(report, job, load_pools(pools), cluster.sandbox.logs_dir / namespace)
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 f"involvedObject.name={name}", "-o", "json")
        print("\nevents:", file=out)
        items = json.loads(events)["items"]
        items.sort(key=lambda e: e.get("eventTime") or e.get("firstTimestamp") or e.get("lastTimestamp") or "")
        for event in items:
            print(f"  {event['reason']:<10} {event['message']}", file=out)
    report.plot = str(plot_run(report, state_dir / "volumes" / f"{name}-run.png"))
    print_summary(report, out)
    return report


def _follow(cluster: LocalCluster, namespace: str, name: str, report: DemoReport, started: float,
            timeout_s: float, out: TextIO) -> Job | None:
    """Poll the job once a second until it ends: the live line, the world sizes and the first reclaim's
    notice -> training-again interval."""
    last_line = ""
    notice: tuple[int, float] | None = None  # (generation reclaimed, wall time of the notice)
    selector = f"elasticft.io/job={name},elasticft.io/role=worker"
    while time.monotonic() - started < timeout_s:
        job = cluster.get_job(namespace, name)
        status = (job or {}).get("status") or {}
        elapsed = time.monotonic() - started
        line = status_line(job, elapsed)
        # Print on every change of phase, size or step, but not for the cost ticking alone.
        if line.split("$")[0][9:] != last_line.split("$")[0][9:]:
            print(line, file=out, flush=True)
            last_line = line
        _record(report, status, elapsed)
        if phase(job) in ("Succeeded", "Failed"):
            return job
        generation = int(status.get("generation", 0))
        if notice is None:
            notice = _reclaim_notice(cluster.pods(namespace, selector), out)
        elif not report.sigterm_to_resumed_s and phase(job) == "Running" and generation > notice[0]:
            report.sigterm_to_resumed_s.append(round(time.time() - notice[1], 1))
            next_pods = cluster.pods(namespace, f"{selector},elasticft.io/generation={generation}")
            report.resume_timeline = _resume_timeline(
                cluster.sandbox.logs_dir, namespace, name, notice[0], notice[1], next_pods)
            report.resume_timeline["running_seen"] = round(time.time() - notice[1], 2)
        time.sleep(1)
    raise TimeoutError(f"{name} did not finish within {timeout_s:.0f} s")


def _record(report: DemoReport, status: dict[str, Any], elapsed: float) -> None:
    """A sample for the plot, and a world-size entry whenever a new generation was decided."""
    workers = status.get("workers") or {}
    report.samples.append(Sample(round(elapsed, 1), int(workers.get("spot", 0)), int(workers.get("onDemand", 0)),
                                 int(status.get("step", 0)), float((status.get("cost") or {}).get("accrued", 0.0))))
    generation = int(status.get("generation", 0))
    if generation and (not report.world_sizes or report.world_sizes[-1].generation != generation):
        size = Decision(int(workers.get("spot", 0)), int(workers.get("onDemand", 0)),
                        str(status.get("lastDecision", "")))
        report.world_sizes.append(WorldSize(round(elapsed, 1), generation, size))


def _reclaim_notice(pods: list[Job], out: TextIO) -> tuple[int, float] | None:
    """The first reclaim notice (DisruptionTarget) on a worker: its generation and when it came."""
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
                print(f"*** spot reclaim of {pod['spec'].get('nodeName')} under {pod['metadata']['name']} "
                      f"(the trace's availability dropped)", file=out)
                generation = int(pod["metadata"]["labels"].get("elasticft.io/generation", 0))
                return generation, _api_time(condition.get("lastTransitionTime")) or time.time()
    return None


def _judge_deadline(report: DemoReport, job: Job | None) -> None:
    """Seconds from creation to completion, against the deadline's."""
    meta, status = (job or {}).get("metadata") or {}, (job or {}).get("status") or {}
    created, completed = _api_time(meta.get("creationTimestamp")), _api_time(status.get("completionTime"))
    spec = FineTuneJobSpec.model_validate((job or {}).get("spec") or {})
    if created is None:
        return
    deadline = deadline_of(spec, datetime.fromtimestamp(created, UTC))
    report.deadline_seconds = None if deadline is None else round(deadline.timestamp() - created, 1)
    if completed is not None:
        report.job_seconds = round(completed - created, 1)
        report.deadline_met = report.phase == "Succeeded" and (
            report.deadline_seconds is None or report.job_seconds <= report.deadline_seconds)


def _compare_with_simulator(report: DemoReport, job: Job | None, pools: PoolsConfig, logs: Path) -> None:
    """The fitted curve beside the device's true one, and the simulator's costs on the same window."""
    spec = FineTuneJobSpec.model_validate((job or {}).get("spec") or {})
    status = (job or {}).get("status") or {}
    device = next((p.device for p in pools.pools if p.device is not None), None)
    trainable = _trainable_parameters(logs, report.job)
    if device is None or trainable is None:
        return
    report.device = device.name
    report.true_curve = {n: round(x, 2) for n, x in device_curve(device, spec, trainable * 4).items()}
    curve = (status.get("throughput") or {}).get("curve", [])
    points = [(int(p["workers"]), float(p["samplesPerSecond"])) for p in curve]
    report.measured_sizes = sorted(n for n, _ in points)
    fitted = fit_throughput(points, prior_params(spec))
    report.fitted_curve = {n: round(predict_throughput(fitted, n), 2) for n in report.true_curve}
    if spec.total_steps and deadline_of(spec, datetime.now(UTC)) is not None and any(
            p.trace is not None for p in pools.pools):
        prices = Prices(spec.capacity.spot.price_per_hour or 0.0, spec.capacity.on_demand.price_per_hour or 0.0)
        prediction = predict(spec, pools, device, trainable * 4, report.restart_overhead_s or 10.0, prices)
        report.predicted_cost = round(prediction.operator.cost, 4)
        report.predicted_seconds = round(prediction.operator.completion_hours * 3600, 1)
        report.on_demand_cost = round(prediction.on_demand.cost, 4)
        report.gang_up_cost = round(prediction.gang_up.cost, 4)
        report.gang_size = prediction.gang_size


def _trainable_parameters(logs: Path, job: str) -> int | None:
    for log in sorted(logs.glob(f"{job}-g*-w*/*.log")):
        match = _TRAINABLE.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
    return None


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


def print_summary(report: DemoReport, out: TextIO) -> None:
    loss = (f"{report.initial_loss:.3f} -> {report.final_loss:.3f}"
            if report.initial_loss is not None and report.final_loss is not None else "unknown")
    resume = f"{report.median_resume_s:.1f} s" if report.median_resume_s is not None else "-"
    if report.resume_timeline:
        resume += " (" + ", ".join(f"{k.replace('_', ' ')} +{v:.1f}" for k, v in report.resume_timeline.items()) + ")"
    deadline = (f"{report.job_seconds:.0f} s of {report.deadline_seconds:.0f} s: "
                f"{'met' if report.deadline_met else 'MISSED'}" if report.deadline_seconds else "none")
    print(f"""
summary of {report.job}: {report.phase} in {report.wall_s:.0f} s
  steps            {report.steps_total} ({report.generations} generations, {report.rescales} rescales, \
{report.grows} grows, {report.shrinks} shrinks, largest world {report.max_world_size})
  preemptions      {report.preemptions}, steps lost {report.steps_lost}, reclaim -> training again {resume}
  deadline         {deadline}
  loss             {loss}
  cost             ${report.cost:.4f} (simulated p3.2xlarge prices over sandbox seconds)""", file=out)
    if report.on_demand_cost is not None:
        print(f"  same work        all on-demand ${report.on_demand_cost:.4f}, a gang of {report.gang_size} under "
              f"uniform progress ${report.gang_up_cost:.4f}, the simulator's prediction for this run "
              f"${report.predicted_cost:.4f} (same window, same policy code)", file=out)
    print("  world sizes      (generation: spot + on-demand, why)", file=out)
    for world in report.world_sizes:
        size = world.size
        print(f"    {world.t_s:5.0f} s  g{world.generation:<2} {size.spot} + {size.on_demand}  {size.reason}", file=out)
    if report.true_curve:
        print(f"  throughput       samples/s by workers, {report.device}: simulated device time, not a GPU figure",
              file=out)
        for n, true in report.true_curve.items():
            seen = " (measured)" if n in report.measured_sizes else ""
            print(f"    {n} workers: fitted {report.fitted_curve.get(n, 0):7.1f}, device {true:7.1f}{seen}", file=out)
    print(f"  checkpoints      {report.checkpoint_dir}", file=out)
    if report.plot:
        print(f"  plot             {report.plot}", file=out)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="a FineTuneJob YAML file, e.g. examples/finetunejob.yaml")
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox/run"), help="where state and checkpoints go")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--pools", type=Path, default=DEMO_POOLS_FILE,
                        help="the node pools file (default: the demo's trace-driven pools)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")


def _stop_on_sigterm(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through LocalCluster, which stops every process it started


def run(args: argparse.Namespace) -> int:
    """`elasticft sandbox run`: exit 0 when the job Succeeded. The run reports on stdout itself, so of
    the sandbox's own logs only warnings reach stderr."""
    configure_logging(level=logging.WARNING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    report = run_demo(args.job, args.state_dir, timeout_s=args.timeout, pools_file=args.pools)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0 if report.phase == "Succeeded" else 1
