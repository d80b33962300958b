"""A stand-in worker that speaks the trainer's contract without torch, for operator tests and benchmarks.

It serves `/metrics` (elasticft_train_step, elasticft_total_steps, elasticft_train_samples_total,
elasticft_checkpoint_step) and `/healthz` on ELASTICFT_METRICS_HOST:PORT, advances one step every
STANDIN_STEP_SECONDS, keeps its step in `ELASTICFT_CHECKPOINT_DIR/standin-step` so a new generation
resumes where the last stopped, stops after the current step on SIGTERM, and writes the trainer's
summary JSON to ELASTICFT_TERMINATION_LOG. Run it as `python -m elasticft_sandbox.standin`.
The end-to-end tests use the real trainer; this exists so that 200 jobs fit on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from elasticft_sandbox.logsetup import configure_logging


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def main() -> int:
    configure_logging()
    job = _env("ELASTICFT_JOB_NAME", "standin")
    total = int(_env("ELASTICFT_TOTAL_STEPS", "100"))
    batch = int(_env("ELASTICFT_GLOBAL_BATCH_SIZE", "8"))
    step_s = float(_env("STANDIN_STEP_SECONDS", "0.05"))
    checkpoint_dir = Path(_env("ELASTICFT_CHECKPOINT_DIR", "."))
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = checkpoint_dir / "standin-step"
    step = int(state.read_text()) if state.exists() else 0

    registry = CollectorRegistry()
    labels = {"job": job, "rank": "0"}
    step_gauge = Gauge("elasticft_train_step", "global step", list(labels), registry=registry).labels(**labels)
    total_gauge = Gauge("elasticft_total_steps", "total steps", list(labels), registry=registry).labels(**labels)
    ckpt_gauge = Gauge("elasticft_checkpoint_step", "last checkpoint", list(labels), registry=registry).labels(
        **labels)
    samples = Counter("elasticft_train_samples", "samples", list(labels), registry=registry).labels(**labels)
    total_gauge.set(total)
    step_gauge.set(step)
    ckpt_gauge.set(step)
    start_http_server(int(_env("ELASTICFT_METRICS_PORT", "9400")), addr=_env("ELASTICFT_METRICS_HOST", "127.0.0.1"),
                      registry=registry)

    stop = threading.Event()

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    while step < total and not stop.is_set():
        time.sleep(step_s)
        step += 1
        step_gauge.set(step)
        samples.inc(batch)
    state.write_text(str(step))
    ckpt_gauge.set(step)
    completed = step >= total
    summary = {"completed": completed, "step": step, "total_steps": total, "samples": step * batch,
               "loss": 1.0, "initial_loss": 2.0, "world_sizes": [], "reason": "completed" if completed else "sigterm"}
    line = json.dumps(summary)
    print(f"ELASTICFT_SUMMARY {line}", flush=True)
    termination_log = os.environ.get("ELASTICFT_TERMINATION_LOG")
    if termination_log:
        Path(termination_log).write_text(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
