"""Trainer benchmark: preemption recovery, checkpoint cost, per-step overhead, in-place elasticity.

    python bench/trainer.py --json bench/results/trainer.json [--skip-inplace]

preemption   2 workers (generation 1, `--nnodes=2:2`) train; one agent gets SIGTERM; when both have
             exited, a 1-worker generation 2 starts from the latest checkpoint, as the operator does.
             sigterm_to_resumed_s = SIGTERM -> first step completed at the new world size;
             steps_lost_per_preemption = last step trained before the SIGTERM - step resumed from.
checkpoint   in-process, world of 1, built-in model + AdamW state: median time training is blocked
             by an async save (ckpt_save_blocking_s: all time on the training thread inside the
             checkpoint manager from `save` until the save is committed: `save` itself, the wait at
             the next optimizer step for the background copy, and the per-step `poll`s), the
             checkpoint's size, and the fsync'd sequential write bandwidth of the same directory
             measured in the same run;
             ckpt_blocking_ratio = blocking_s / (bytes / bandwidth).
overhead     the trainer (`--nproc-per-node=2`, async checkpoint every 50 steps, metrics served) against
             a minimal DDP loop on the same model and per-rank batch (this file, `--plain-ddp-worker`);
             ratio of mean step times over the same step window; median of the ratios of 3 rounds
             of back-to-back runs (alternating which goes first).
inplace      docs/worlds.md: torchrun `--nnodes=1:3 --max-restarts=3` with our standalone
             store: scale-down (SIGTERM one of 2 agents) and scale-up (a 2nd agent joins a running 1),
             the latter with torch's default shared TCPStore and with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1.

Prints a table (also written as Markdown beside the JSON), writes the JSON and a PNG of the
preemption timeline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from elasticft_trainer.checkpoint import CheckpointManager, TrainingProgress, TrainState
from elasticft_trainer.config import TrainerConfig
from elasticft_trainer.localrun import LocalJob, job_environment, running_store, wait_until
from elasticft_trainer.model import build_model
from elasticft_trainer.runtime import die_with_agent

MODEL = "builtin:gpt-tiny"
GLOBAL_BATCH = 16
MICRO_BATCH = 8
SEQ_LEN = 64
OVERHEAD_WINDOW = (20, 170)  # steps between which step time is measured
TARGETS = {
    "steps_lost_per_preemption": ("<=", 0),
    "sigterm_to_resumed_s": ("<=", 15.0),
    "ckpt_blocking_ratio": ("<=", 0.10),
    "step_overhead_vs_plain_ddp": ("<=", 1.03),
}


def sample_log_steps(path: Path, world_size: int | None = None) -> list[int]:
    """Steps in the trainer's sample log (`step epoch index rank world_size` lines), optionally only
    those trained at `world_size`."""
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [int(row[0]) for row in rows if len(row) == 5 and (world_size is None or int(row[4]) == world_size)]


def measure_preemption(work_dir: Path) -> dict[str, Any]:
    """SIGTERM one of two workers; restart at world size 1 as the operator would; time the gap."""
    work_dir.mkdir(parents=True, exist_ok=True)
    sample_log = work_dir / "samples.log"
    env = job_environment({
        "job_name": "bench", "model": MODEL, "seq_len": SEQ_LEN, "total_steps": 100000,
        "global_batch_size": GLOBAL_BATCH, "micro_batch_size": MICRO_BATCH, "metrics_port": -1,
        "checkpoint_dir": work_dir / "checkpoints", "checkpoint_interval_steps": 50,
        "sample_log": sample_log,
    })
    job = LocalJob(work_dir, env)
    timeline: list[tuple[float, int]] = []

    def observe() -> int:
        step = max(sample_log_steps(sample_log), default=0)
        timeline.append((time.monotonic(), step))
        return step

    try:
        with running_store(work_dir / "store.log") as store:
            first = [job.start_agent(f"g1-w{i}", store.endpoint, "bench-g1", "2:2") for i in range(2)]
            wait_until(lambda: observe() >= 30, 180, "generation 1 to train 30 steps")
            sigterm_at = time.monotonic()
            first[1].terminate()
            for agent in first:
                while agent.process.poll() is None:
                    observe()
                    time.sleep(0.05)
            stopped = first[1].summary()
            last_trained = max(sample_log_steps(sample_log))
            old_exit_codes = [agent.process.returncode for agent in first]
            second = job.start_agent("g2-w0", store.endpoint, "bench-g2", "1:1")
            wait_until(lambda: observe() > 0 and bool(sample_log_steps(sample_log, world_size=1)), 180,
                       "generation 2 to complete a step")
            resumed_at = time.monotonic()
            second.terminate()
            second.wait(60)
            resumed_from = min(sample_log_steps(sample_log, world_size=1)) - 1
    finally:
        job.stop_all()
    return {
        "sigterm_to_resumed_s": resumed_at - sigterm_at,
        "steps_lost_per_preemption": last_trained - resumed_from,
        "emergency_checkpoint_step": stopped.step,
        "torchrun_exit_codes": {"sigterm_agent": old_exit_codes[1], "peer_agent": old_exit_codes[0]},
        "timeline": [(round(t - sigterm_at, 3), step) for t, step in timeline],
    }


def measure_disk_write_mb_s(directory: Path, megabytes: int = 128) -> float:
    """Sequential write of `megabytes`, fsync'd, in `directory`: what a checkpoint write costs."""
    block = os.urandom(1 << 20)
    path = directory / "bandwidth.probe"
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(megabytes):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return megabytes / elapsed


def measure_checkpoint(work_dir: Path, model_spec: str) -> dict[str, Any]:
    """Training time blocked by periodic async saves (median of 6) and one checkpoint's size.

    Each round does on the training thread what the trainer does around a periodic save: `save`,
    a forward/backward pass, `before_weights_change` and the optimizer step, then one step (forward/
    backward, optimizer step, `poll`) at a time until the save has been committed. The time spent
    inside the manager's calls is the blocking time; the forward/backward passes are timed too, to
    show how much the background work slows them (not counted as blocking: it is in the step time
    that step_overhead_vs_plain_ddp compares).
    """
    config = TrainerConfig(model=model_spec, seq_len=SEQ_LEN)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randint(0, 256, (MICRO_BATCH, SEQ_LEN))

    def forward_backward() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs).flatten(0, 1), inputs.flatten()).backward()
        return time.perf_counter() - started

    forward_backward()
    optimizer.step()
    state = TrainState(model, optimizer, frozen_base=False)
    directory = work_dir / f"checkpoint-{model_spec.split(':')[-1]}"
    manager = CheckpointManager(str(directory), "bench", keep=2, async_mode=True)
    blocking, overlapped, quiet = [], [], []
    for step in range(1, 8):
        started = time.perf_counter()
        manager.save(TrainingProgress(step=step, consumed_samples=step * GLOBAL_BATCH), state, blocking=False)
        blocked = time.perf_counter() - started
        overlapped.append(forward_backward())
        started = time.perf_counter()
        manager.before_weights_change()
        blocked += time.perf_counter() - started
        optimizer.step()
        while True:
            started = time.perf_counter()
            manager.poll()
            blocked += time.perf_counter() - started
            if not manager.saving:
                break
            forward_backward()
            optimizer.step()
        blocking.append(blocked)
        quiet.append(forward_backward())  # a step with no save in flight
        optimizer.step()
    manager.close()
    latest = directory / (directory / "latest").read_text().strip()
    ckpt_bytes = sum(f.stat().st_size for f in latest.iterdir() if f.is_file())
    bandwidth = statistics.median(measure_disk_write_mb_s(work_dir) for _ in range(3))
    blocking_s = statistics.median(blocking[1:])  # the first save allocates the staging buffers
    return {
        "model": model_spec,
        "ckpt_bytes": ckpt_bytes,
        "ckpt_save_blocking_s": blocking_s,
        "ckpt_save_blocking_s_runs": blocking,
        "ckpt_first_save_blocking_s": blocking[0],
        "ckpt_overlapped_fwd_bwd_s": statistics.median(overlapped[1:]),
        "ckpt_quiet_fwd_bwd_s": statistics.median(quiet[1:]),
        "disk_write_mb_s": bandwidth,
        "ckpt_blocking_ratio": blocking_s / (ckpt_bytes / (bandwidth * 1e6)),
    }


def log_line_time(line: str) -> float:
    """The time stamp of a trainer log line (`configure_logging`'s asctime)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def trainer_step_time(work_dir: Path, name: str) -> float:
    """Mean step time of our trainer at world size 2 (one agent, two ranks), from its progress log."""
    first, last = OVERHEAD_WINDOW
    env = job_environment({
        "job_name": "bench", "model": MODEL, "seq_len": SEQ_LEN, "total_steps": last + 10,
        "global_batch_size": GLOBAL_BATCH, "micro_batch_size": MICRO_BATCH, "metrics_port": 0,
        "metrics_host": "127.0.0.1", "checkpoint_dir": work_dir / name, "checkpoint_interval_steps": 50,
    })
    job = LocalJob(work_dir, env)
    try:
        with running_store(work_dir / f"{name}-store.log") as store:
            agent = job.start_agent(name, store.endpoint, name, "1:1", nproc=2)
            if agent.wait(300) != 0:
                raise RuntimeError(agent.output()[-3000:])
    finally:
        job.stop_all()
    times = {}
    for line in agent.output().splitlines():
        for step in (first, last):
            if f"rank=0 INFO elasticft_trainer: step {step}/" in line:
                times[step] = log_line_time(line)
    return (times[last] - times[first]) / (last - first)


def plain_step_time(work_dir: Path, name: str) -> float:
    """Mean step time of the minimal DDP loop (this file as a torchrun worker) at world size 2."""
    log_path = work_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        # Own session, so that a timeout ends torchrun and its helpers; workers die with it.
        process = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
             __file__, "--plain-ddp-worker"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if returncode != 0:
        raise RuntimeError(f"plain DDP run exited {returncode}: " + log_path.read_text()[-3000:])
    for line in log_path.read_text().splitlines():
        if line.startswith("PLAIN_DDP_STEP_S "):
            return float(line.split()[1])
    raise RuntimeError(log_path.read_text()[-3000:])


def plain_ddp_worker() -> int:
    """The baseline: same model, AdamW, per-rank batch, DDP over gloo; nothing else."""
    die_with_agent()  # torchrun starts workers in their own sessions: a timeout kills only torchrun
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    config = TrainerConfig(model=MODEL, seq_len=SEQ_LEN)
    model = DistributedDataParallel(build_model(config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    per_rank = GLOBAL_BATCH // dist.get_world_size()
    generator = torch.Generator().manual_seed(dist.get_rank())
    first, last = OVERHEAD_WINDOW
    started = 0.0
    for step in range(1, last + 1):
        tokens = torch.randint(0, 256, (per_rank, SEQ_LEN + 1), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        if step == first:
            started = time.perf_counter()
    if dist.get_rank() == 0:
        print(f"PLAIN_DDP_STEP_S {(time.perf_counter() - started) / (last - first)}", flush=True)
    # DDP's reducer must go while the group is still registered: freeing it after
    # destroy_process_group makes it drop the group's last reference, and the gloo group's
    # destructor then joins its threads holding the GIL they wait for (seen hanging for 300 s).
    del model, optimizer
    dist.destroy_process_group()
    return 0


def measure_overhead(work_dir: Path, rounds: int = 3) -> dict[str, Any]:
    """Rounds of one run each, back to back, in alternating order; the median of the per-round ratios.

    Other processes on a shared machine change its speed from minute to minute; a round's two runs
    see about the same load, so their ratio is far steadier than a ratio of bests taken minutes apart.
    """
    ours, plain = [], []
    for index in range(rounds):
        if index % 2 == 0:
            plain.append(plain_step_time(work_dir, f"plain-{index}"))
            ours.append(trainer_step_time(work_dir, f"trainer-{index}"))
        else:
            ours.append(trainer_step_time(work_dir, f"trainer-{index}"))
            plain.append(plain_step_time(work_dir, f"plain-{index}"))
    ratios = [a / b for a, b in zip(ours, plain, strict=True)]
    return {
        "trainer_step_s": statistics.median(ours),
        "plain_ddp_step_s": statistics.median(plain),
        "step_overhead_vs_plain_ddp": statistics.median(ratios),
        "step_overhead_runs": ratios,
        "trainer_step_s_runs": ours,
        "plain_ddp_step_s_runs": plain,
    }


def _inplace_env(work_dir: Path, name: str, share_store: bool) -> dict[str, str]:
    env = job_environment({
        "job_name": "bench", "model": MODEL, "seq_len": SEQ_LEN, "total_steps": 100000,
        "global_batch_size": GLOBAL_BATCH, "micro_batch_size": MICRO_BATCH, "metrics_port": -1,
        "checkpoint_dir": work_dir / name, "checkpoint_interval_steps": 50, "step_delay_s": 0.05,
        "sample_log": work_dir / f"{name}.samples",
    })
    if not share_store:
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    return env


def inplace_trial(work_dir: Path, name: str, change: str, share_store: bool, timeout: float = 30.0) -> dict[str, Any]:
    """One in-place membership change under `--nnodes=1:3`; outcome and time to the new world's step."""
    job = LocalJob(work_dir, _inplace_env(work_dir, name, share_store))
    elastic = ("--max-restarts=3", "--rdzv-conf=last_call_timeout=2")
    sample_log = work_dir / f"{name}.samples"
    result: dict[str, Any] = {"change": change, "shared_tcp_store": share_store}
    try:
        with running_store(work_dir / f"{name}-store.log") as store:
            initial = 2 if change == "scale-down" else 1
            agents = [job.start_agent(f"{name}-w{i}", store.endpoint, name, "1:3", extra_args=elastic)
                      for i in range(initial)]
            wait_until(lambda: len(sample_log_steps(sample_log, world_size=initial)) > 40, 120,
                       f"{name}: the initial world to train")
            changed_at = time.monotonic()
            if change == "scale-down":
                agents[1].terminate()
                target = 1
            else:
                job.start_agent(f"{name}-w1", store.endpoint, name, "1:3", extra_args=elastic)
                target = 2
            try:
                result["seconds_to_new_world_step"] = wait_until(
                    lambda: bool(sample_log_steps(sample_log, world_size=target)), timeout,
                    f"{name}: a step at world size {target}")
                result["worked"] = True
                # Steps of the old world the new one trains again (0: it resumed from the last step).
                result["steps_lost"] = (max(sample_log_steps(sample_log, world_size=initial))
                                        - (min(sample_log_steps(sample_log, world_size=target)) - 1))
            except TimeoutError:
                result["worked"] = False
                result["seconds_to_new_world_step"] = None
                stuck = [line for agent in job.agents for line in agent.output().splitlines()
                         if "wait timeout" in line or "DistStoreError" in line]
                result["symptom"] = stuck[-1][:300] if stuck else f"no step at world {target} in {timeout} s"
            result["elapsed_s"] = time.monotonic() - changed_at
    finally:
        job.stop_all()
    return result


def measure_inplace(work_dir: Path) -> dict[str, Any]:
    return {
        "scale_down": inplace_trial(work_dir, "down", "scale-down", share_store=True),
        "scale_up_shared_store": inplace_trial(work_dir, "up-shared", "scale-up", share_store=True),
        "scale_up_unshared_store": inplace_trial(work_dir, "up-unshared", "scale-up", share_store=False),
    }


def plot_timeline(timeline: list[tuple[float, int]], resumed_s: float, path: Path) -> None:
    times, steps = zip(*timeline, strict=True)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.step(times, steps, where="post", label="last completed global step")
    axis.axvline(0, color="red", linestyle="--", label="SIGTERM to one of 2 workers")
    axis.axvline(resumed_s, color="green", linestyle="--", label="first step at world size 1")
    axis.set_xlabel("seconds relative to SIGTERM")
    axis.set_ylabel("global step")
    axis.set_title("Preemption: emergency checkpoint, then a new generation resumes")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def format_table(results: dict[str, Any]) -> str:
    rows = ["| metric | value | target |", "|---|---|---|"]
    for key in ("sigterm_to_resumed_s", "steps_lost_per_preemption", "ckpt_bytes", "ckpt_save_blocking_s",
                "disk_write_mb_s", "ckpt_blocking_ratio", "step_overhead_vs_plain_ddp"):
        value = results[key]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        op, bound = TARGETS.get(key, ("", ""))
        rows.append(f"| {key} | {shown} | {op} {bound} |")
    for name, trial in results.get("inplace", {}).items():
        seconds = trial["seconds_to_new_world_step"]
        outcome = (f"worked, {seconds:.1f} s, {trial['steps_lost']} steps lost" if trial["worked"]
                   else f"FAILED: {trial['symptom']}")
        rows.append(f"| inplace {name} | {outcome} | |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/trainer.json"))
    parser.add_argument("--skip-inplace", action="store_true", help="leave out the in-place elasticity trials")
    parser.add_argument("--plain-ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_ddp_worker:
        return plain_ddp_worker()

    started = time.monotonic()
    phase_seconds: dict[str, float] = {}

    def timed(phase: str, measure: Any, *measure_args: Any) -> Any:
        print(f"[bench] {phase} ...", file=sys.stderr, flush=True)
        phase_started = time.monotonic()
        result = measure(*measure_args)
        phase_seconds[phase] = round(time.monotonic() - phase_started, 1)
        return result

    with tempfile.TemporaryDirectory(prefix="elasticft-bench-") as tmp:
        work_dir = Path(tmp)
        preemption = timed("preemption", measure_preemption, work_dir / "preemption")
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        # The headline checkpoint figures use gpt-small (88 MB with AdamW state): gpt-tiny's 6 MB
        # are written in ~4 ms, about the fixed cost of collecting a state dict, so its ratio says
        # nothing about hiding writes. Both are in the JSON.
        checkpoint = timed("checkpoint", measure_checkpoint, work_dir, "builtin:gpt-small")
        checkpoint_tiny = timed("checkpoint-tiny", measure_checkpoint, work_dir, MODEL)
        dist.destroy_process_group()
        overhead = timed("overhead", measure_overhead, work_dir)
        inplace = {} if args.skip_inplace else timed("inplace", measure_inplace, work_dir)
    timeline = preemption.pop("timeline")
    results: dict[str, Any] = {
        **preemption,
        **{k: v for k, v in checkpoint.items() if k != "model"},
        "checkpoint_model": checkpoint["model"],
        **overhead,
        "checkpoint_gpt_tiny": checkpoint_tiny,
        "model": MODEL,
        "global_batch_size": GLOBAL_BATCH,
        "seq_len": SEQ_LEN,
        "inplace": inplace,
        "bench_wall_s": time.monotonic() - started,
        "phase_seconds": phase_seconds,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    table = format_table(results)
    args.json.with_suffix(".md").write_text(table + "\n")
    plot_timeline(timeline, results["sigterm_to_resumed_s"], args.json.with_suffix(".png"))
    print(table)
    print(f"wrote {args.json} (+ .md, .png) in {results['bench_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
