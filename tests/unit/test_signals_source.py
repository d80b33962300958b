"""Which measurement of a job the operator trusts: Prometheus's, or a direct scrape of the workers."""

from __future__ import annotations

from elasticft.signals.prometheus import PrometheusReading
from elasticft.signals.source import choose_source

URL = "http://prometheus:9090"
FULL = PrometheusReading(samples_per_second=42.0, step=10, total_steps=100, checkpoint_step=5)
NO_RATE = PrometheusReading(samples_per_second=None, step=10, total_steps=100, checkpoint_step=5)
EMPTY = PrometheusReading(samples_per_second=None, step=None, total_steps=None, checkpoint_step=None)


def test_a_job_without_prometheus_is_scraped_without_saying_so() -> None:
    choice = choose_source(None, None, None, "team/ft")
    assert not choice.trust_prometheus and choice.fallback is None


def test_prometheus_with_the_jobs_step_and_rate_is_trusted() -> None:
    assert choose_source(URL, FULL, "30s", "team/ft").trust_prometheus


def test_a_world_too_young_to_time_trusts_prometheus_step_without_a_rate() -> None:
    assert choose_source(URL, NO_RATE, None, "team/ft").trust_prometheus


def test_prometheus_without_a_rate_for_a_timed_world_falls_back_to_the_scrape_and_says_why() -> None:
    choice = choose_source(URL, NO_RATE, "30s", "team/ft")
    assert not choice.trust_prometheus
    assert choice.fallback == f"Prometheus at {URL} has no rate for team/ft; scraping the workers directly"


def test_prometheus_that_knows_nothing_of_the_job_falls_back_to_the_scrape() -> None:
    choice = choose_source(URL, EMPTY, "30s", "team/ft")
    assert not choice.trust_prometheus and choice.fallback is not None and "has nothing for team/ft" in choice.fallback
