"""Reading the trainer's Prometheus metrics (`/metrics` text), pure parsing plus a tiny HTTP GET."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# A worker that cannot answer within a second is reported as unknown rather than stalling the reconcile.
SCRAPE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class WorkerMetrics:
    """One rank's view of the job, as its `/metrics` reports it."""

    step: int | None = None
    total_steps: int | None = None
    samples_total: float | None = None
    loss: float | None = None
    world_size: int | None = None
    checkpoint_step: int | None = None
    checkpoint_rejected_step: int | None = None


_GAUGES = {
    "elasticft_train_step": "step",
    "elasticft_total_steps": "total_steps",
    "elasticft_train_samples_total": "samples_total",
    "elasticft_train_loss": "loss",
    "elasticft_world_size": "world_size",
    "elasticft_checkpoint_step": "checkpoint_step",
    "elasticft_checkpoint_rejected_step": "checkpoint_rejected_step",
}
_INTEGER = {"step", "total_steps", "world_size", "checkpoint_step", "checkpoint_rejected_step"}


def parse_worker_metrics(text: str) -> WorkerMetrics:
    """The trainer's gauges and counters from a Prometheus text exposition."""
    values: dict[str, float | int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = _GAUGES.get(sample.name)
            if name is not None:
                values[name] = int(sample.value) if name in _INTEGER else float(sample.value)
    return WorkerMetrics(**values)  # type: ignore[arg-type]


def scrape_worker(host: str, port: int, timeout_s: float = SCRAPE_TIMEOUT_S) -> WorkerMetrics | None:
    """GET http://host:port/metrics; None when the worker is not serving (yet, or any more)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as response:
            return parse_worker_metrics(response.read().decode("utf-8"))
    except (OSError, urllib.error.URLError, ValueError):
        return None
