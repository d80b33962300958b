"""Which measurement of a job to trust: Prometheus's, or a direct scrape of the workers (pure).

The handler does the I/O (the Prometheus queries, the scrape); this module only decides, from what
Prometheus answered, whether that answer describes the job's current world.
"""

from __future__ import annotations

from dataclasses import dataclass

from elasticft.signals.prometheus import PrometheusReading


@dataclass(frozen=True)
class SourceChoice:
    """Trust Prometheus, or scrape the workers; `fallback` says why Prometheus was set aside."""

    trust_prometheus: bool
    fallback: str | None = None


def prometheus_gap(reading: PrometheusReading, rate_window: str | None) -> str | None:
    """What Prometheus lacks for the job: "nothing" when it has no series of it (unreachable, not
    scraping it, or not yet), "no rate" when the world has been training long enough to be timed (a
    rate window exists) but no rate came back; None when the reading can be used as it is."""
    if reading.empty:
        return "nothing"
    if rate_window and reading.samples_per_second is None:
        return "no rate"
    return None


def choose_source(prometheus_url: str | None, reading: PrometheusReading | None, rate_window: str | None,
                  job: str) -> SourceChoice:
    """Prometheus when the job names one and it has the job's step and (once measurable) rate; the
    direct scrape otherwise. `job` is namespace/name, for the fallback's message."""
    if not prometheus_url or reading is None:
        return SourceChoice(trust_prometheus=False)
    gap = prometheus_gap(reading, rate_window)
    if gap is None:
        return SourceChoice(trust_prometheus=True)
    return SourceChoice(trust_prometheus=False,
                        fallback=f"Prometheus at {prometheus_url} has {gap} for {job}; scraping the workers directly")
