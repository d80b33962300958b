"""Throughput signals: a real Prometheus (Debian's package) scraping a process that exports the
trainer's metrics, read through prometheus-api-client; and the direct /metrics scrape fallback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ftj_testing import eventually

from elasticft.signals.prometheus import read_job
from elasticft.signals.throughput import StepRate
from elasticft.signals.worker_metrics import scrape_worker
from elasticft_trainer.metrics import TrainerMetrics

WORKER_HOST = "127.0.0.77"
STEP_SECONDS = 0.05
BATCH = 8


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])




@pytest.fixture
def worker(tmp_path: Path) -> Iterator[int]:
    """A stand-in worker exporting the trainer's metrics (job `promjob`) on WORKER_HOST."""
    port = free_port(WORKER_HOST)
    env = {**os.environ, "ELASTICFT_JOB_NAME": "promjob", "ELASTICFT_TOTAL_STEPS": "100000",
           "ELASTICFT_GLOBAL_BATCH_SIZE": str(BATCH), "STANDIN_STEP_SECONDS": str(STEP_SECONDS),
           "ELASTICFT_METRICS_HOST": WORKER_HOST, "ELASTICFT_METRICS_PORT": str(port),
           "ELASTICFT_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    process = subprocess.Popen([sys.executable, "-m", "elasticft_sandbox.standin"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: scrape_worker(WORKER_HOST, port), 20, 0.5, "the worker's /metrics")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def trainer_metrics() -> Iterator[int]:
    """The trainer's own metric families (job `trainerjob`) as a worker that saved a checkpoint shows them."""
    metrics = TrainerMetrics("trainerjob", rank=0)
    port = metrics.serve(WORKER_HOST, free_port(WORKER_HOST))
    metrics.step.set(47)
    metrics.total_steps.set(300)
    metrics.loss.set(2.375)
    metrics.checkpoint_step.set(40)
    try:
        yield port
    finally:
        metrics.close()


@pytest.fixture
def prometheus(tmp_path: Path, worker: int, trainer_metrics: int) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: `apt-get install prometheus` (scripts/install.sh does it)"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "elasticft-workers",
            "honor_labels": True,  # keep the trainer's own `job` label (the FineTuneJob's name)
            "static_configs": [{"targets": [f"{WORKER_HOST}:{worker}", f"{WORKER_HOST}:{trainer_metrics}"],
                                "labels": {"namespace": "team"}}],
        }],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def direct_rate(port: int, seconds: float) -> float:
    """samples/s of the worker measured by scraping it directly over `seconds`."""
    first = scrape_worker(WORKER_HOST, port)
    started = time.monotonic()
    time.sleep(seconds)
    last = scrape_worker(WORKER_HOST, port)
    assert first and last and first.step is not None and last.step is not None
    return (last.step - first.step) * BATCH / (time.monotonic() - started)


def test_throughput_is_read_from_a_real_prometheus(prometheus: str, worker: int) -> None:
    eventually(lambda: read_job(prometheus, "promjob", "team", rate_window="10s").samples_per_second,
               60, 0.5, "a samples/s rate in Prometheus")
    time.sleep(10)  # let the rate window cover steady training only
    measured_directly = direct_rate(worker, 5)
    reading = read_job(prometheus, "promjob", "team", rate_window="10s")
    assert reading.samples_per_second is not None
    # Same process, two ways of measuring: they agree (to scrape timing), whatever the machine's load.
    assert 0.5 * measured_directly < reading.samples_per_second < 2.0 * measured_directly
    assert reading.step and reading.step > 0
    assert reading.total_steps == 100000
    other = read_job(prometheus, "promjob", "another-namespace")
    assert other.samples_per_second is None  # namespaces never cross


def test_loss_and_checkpoint_step_are_read_from_a_real_prometheus(prometheus: str) -> None:
    reading = eventually(lambda: (r := read_job(prometheus, "trainerjob", "team", rate_window=None)).step and r,
                         60, 0.5, "the trainer's metrics in Prometheus")
    assert (reading.step, reading.total_steps, reading.checkpoint_step) == (47, 300, 40)
    assert reading.loss == 2.375
    assert reading.samples_per_second is None  # no window, no rate


def test_unreachable_prometheus_means_unknown_not_a_crash() -> None:
    reading = read_job(f"http://127.0.0.1:{free_port()}", "promjob", "team")
    assert reading.samples_per_second is None and reading.step is None


def test_direct_scrape_measures_throughput_without_prometheus(worker: int) -> None:
    rate = StepRate(global_batch_size=BATCH)
    measured = None
    deadline = time.monotonic() + 20
    while measured is None and time.monotonic() < deadline:
        metrics = scrape_worker(WORKER_HOST, worker)
        assert metrics is not None and metrics.step is not None
        measured = rate.add(world=1, time_s=time.monotonic(), step=metrics.step)
        time.sleep(0.5)
    assert measured is not None and 0 < measured <= 1.2 * BATCH / STEP_SECONDS
    assert scrape_worker(WORKER_HOST, free_port(WORKER_HOST)) is None
