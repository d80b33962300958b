"""Throughput, step, loss and prices from a Prometheus server (prometheus-api-client).

Workers are scraped with `honor_labels: true` (the chart's PodMonitor sets `honorLabels`), so the
trainer's own `job` label (the FineTuneJob name) is kept rather than renamed `exported_job`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from elasticft.signals.throughput import WINDOW_S

# One reconcile asks a handful of queries; an unreachable or hung Prometheus must cost it about this,
# once, not the client's default of three retries with back-off per query (~30 s a look, measured).
QUERY_TIMEOUT_S = 2


class _Unreachable(Exception):
    """No answer from the server at all (refused, timed out): the other queries would not get one either."""


@dataclass(frozen=True)
class PrometheusReading:
    samples_per_second: float | None
    step: int | None
    total_steps: int | None
    checkpoint_step: int | None
    loss: float | None = None

    @property
    def empty(self) -> bool:
        """Prometheus knows nothing of the job (unreachable, not scraping it, or not yet)."""
        return self.step is None and self.samples_per_second is None


def world_rate_window(ready_since: Iterable[datetime | None], now: datetime,
                           longest_s: float = WINDOW_S) -> str | None:
    """The rate window for the current world: back to when its last worker became ready, at most
    `longest_s`. Before that the world was not training at this size (the previous world's
    samples, or this one's start-up at zero), so a longer window would blend another world's rate into
    this size's throughput point. None while some worker is not ready (nothing to time yet)."""
    times = list(ready_since)
    if not times or any(t is None for t in times):
        return None
    since = max(t for t in times if t is not None)
    seconds = math.floor(min((now - since).total_seconds(), longest_s))
    return f"{seconds}s" if seconds >= 1 else None


def _client(url: str) -> PrometheusConnect:
    return PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0), timeout=QUERY_TIMEOUT_S)


def _scalar(client: PrometheusConnect, query: str) -> float | None:
    try:
        result = client.custom_query(query=query)
    except requests.exceptions.RequestException as error:
        raise _Unreachable(str(error)) from error
    except Exception:
        return None  # an error answer (a bad query, say): this value is unknown
    if not result:
        return None
    value = result[0].get("value")
    return float(value[1]) if value else None


def read_job(url: str, job: str, namespace: str, rate_window: str | None = f"{WINDOW_S:.0f}s") -> PrometheusReading:
    """The job's samples/s (sum over ranks of the per-rank counter rate over `rate_window`; None without
    a window), its step, loss (every rank reports the same global loss) and last checkpoint step."""
    client = _client(url)
    selector = f'job="{job}",namespace="{namespace}"'
    try:
        step = _scalar(client, f"max(elasticft_train_step{{{selector}}})")
        rate = _scalar(client, f"sum(rate(elasticft_train_samples_total{{{selector}}}[{rate_window}]))") \
            if rate_window else None
        total = _scalar(client, f"max(elasticft_total_steps{{{selector}}})")
        checkpoint = _scalar(client, f"max(elasticft_checkpoint_step{{{selector}}})")
        loss = _scalar(client, f"avg(elasticft_train_loss{{{selector}}})")
    except _Unreachable:
        return PrometheusReading(samples_per_second=None, step=None, total_steps=None, checkpoint_step=None)
    return PrometheusReading(
        samples_per_second=rate,
        step=int(step) if step is not None else None,
        total_steps=int(total) if total is not None else None,
        checkpoint_step=int(checkpoint) if checkpoint is not None else None,
        loss=loss if loss is not None and math.isfinite(loss) else None,
    )


def read_prices(url: str, spot_query: str, on_demand_query: str) -> tuple[float | None, float | None]:
    client = _client(url)
    try:
        return _scalar(client, spot_query), _scalar(client, on_demand_query)
    except _Unreachable:
        return None, None
