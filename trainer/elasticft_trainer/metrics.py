"""Prometheus metrics and the `/healthz` probe of one training process.

Counters are per process and labelled with `job` and `rank`: `elasticft_train_samples_total` counts
the samples this rank trained on, so the job's throughput is the sum over ranks of its rate (or,
equivalently, global batch x the rate of `elasticft_train_steps_total` of any single rank).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the training log."""


class TrainerMetrics:
    """The trainer's metric families, bound to this process's `job` and `rank` labels."""

    def __init__(self, job: str, rank: int) -> None:
        self.registry = CollectorRegistry()
        labels = ["job", "rank"]
        values = {"job": job, "rank": str(rank)}
        self.samples = Counter(
            "elasticft_train_samples", "Samples this rank trained on", labels, registry=self.registry
        ).labels(**values)
        self.steps = Counter(
            "elasticft_train_steps", "Optimizer steps this process completed", labels, registry=self.registry
        ).labels(**values)
        self.step = Gauge(
            "elasticft_train_step", "Current global step of the job", labels, registry=self.registry
        ).labels(**values)
        self.total_steps = Gauge(
            "elasticft_total_steps", "Steps the job runs in total", labels, registry=self.registry
        ).labels(**values)
        self.loss = Gauge(
            "elasticft_train_loss", "Global mean loss of the last step", labels, registry=self.registry
        ).labels(**values)
        self.checkpoint_step = Gauge(
            "elasticft_checkpoint_step", "Step of the last committed checkpoint this process knows of (0: none)",
            labels, registry=self.registry,
        ).labels(**values)
        self.checkpoint_rejected_step = Gauge(
            "elasticft_checkpoint_rejected_step",
            "Step of the newest checkpoint this process refused to load (garbled, another job's, ...; 0: none)",
            labels, registry=self.registry,
        ).labels(**values)
        self.world_size = Gauge(
            "elasticft_world_size", "Ranks in the current world", labels, registry=self.registry
        ).labels(**values)
        self.checkpoint_save_seconds = Histogram(
            "elasticft_checkpoint_save_seconds",
            "Time training was blocked by a checkpoint save",
            labels,
            buckets=CHECKPOINT_SECONDS_BUCKETS,
            registry=self.registry,
        ).labels(**values)
        self.checkpoint_load_seconds = Histogram(
            "elasticft_checkpoint_load_seconds",
            "Time to load the checkpoint training resumed from",
            labels,
            buckets=CHECKPOINT_SECONDS_BUCKETS,
            registry=self.registry,
        ).labels(**values)
        self._training_started = threading.Event()
        self._server: WSGIServer | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` and `/healthz` from a daemon thread; returns the bound port."""
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ready = self._training_started.is_set()
                start_response("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ok\n" if ready else b"starting\n"]
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result

        self._server = make_server(host, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        bound_port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, bound_port)
        return bound_port

    def record_resume(self, step: int, rejected_step: int | None, load_seconds: float | None) -> None:
        """Where training starts: the resume `step` (0: fresh), the newest checkpoint a load refused
        (None: none) and the seconds the resume took (None: nothing was loaded)."""
        self.checkpoint_rejected_step.set(rejected_step or 0)
        if load_seconds is not None:
            self.checkpoint_load_seconds.observe(load_seconds)
        self.step.set(step)

    def record_step(self, step: int, samples: int, loss: float, committed_step: int | None) -> None:
        """One optimizer step done: `samples` this rank trained on, the global `loss`, and the newest
        committed checkpoint (None: none yet)."""
        self.steps.inc()
        self.samples.inc(samples)
        self.step.set(step)
        self.loss.set(loss)
        if committed_step is not None:
            # What the operator shows as status.lastCheckpoint.step (also the resume point, at first).
            self.checkpoint_step.set(committed_step)

    def mark_training_started(self) -> None:
        """From now on `/healthz` answers 200."""
        self._training_started.set()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
