"""Throughput, step and prices from a Prometheus server (prometheus-api-client).

Workers are scraped with `honor_labels: true` (the chart's PodMonitor sets `honorLabels`), so the
trainer's own `job` label (the FineTuneJob name) is kept rather than renamed `exported_job`.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_api_client import PrometheusConnect


@dataclass(frozen=True)
class PrometheusReading:
    samples_per_second: float | None
    step: int | None
    total_steps: int | None
    checkpoint_step: int | None


def _scalar(client: PrometheusConnect, query: str) -> float | None:
    try:
        result = client.custom_query(query=query)
    except Exception:
        return None
    if not result:
        return None
    value = result[0].get("value")
    return float(value[1]) if value else None


def read_job(url: str, job: str, namespace: str, rate_window: str = "30s") -> PrometheusReading:
    """The job's samples/s (sum over ranks of the per-rank counter rate) and its step."""
    client = PrometheusConnect(url=url, disable_ssl=True)
    selector = f'job="{job}",namespace="{namespace}"'
    rate = _scalar(client, f"sum(rate(elasticft_train_samples_total{{{selector}}}[{rate_window}]))")
    step = _scalar(client, f"max(elasticft_train_step{{{selector}}})")
    total = _scalar(client, f"max(elasticft_total_steps{{{selector}}})")
    checkpoint = _scalar(client, f"max(elasticft_checkpoint_step{{{selector}}})")
    return PrometheusReading(
        samples_per_second=rate,
        step=int(step) if step is not None else None,
        total_steps=int(total) if total is not None else None,
        checkpoint_step=int(checkpoint) if checkpoint is not None else None,
    )


def read_prices(url: str, spot_query: str, on_demand_query: str) -> tuple[float | None, float | None]:
    client = PrometheusConnect(url=url, disable_ssl=True)
    return _scalar(client, spot_query), _scalar(client, on_demand_query)
