"""The worker's Prometheus endpoint and readiness probe, scraped while it trains."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from elasticft_trainer.localrun import LocalJob, RendezvousStore, free_loopback_address, wait_until


def scrape(url: str) -> dict[str, float]:
    """Sample name -> value for the samples labelled with the test job."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("job") == "test-job" and sample.labels.get("rank") == "0"
    }


def healthz_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def test_metrics_endpoint_exposes_training_counters_that_increase(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path
) -> None:
    host, port = free_loopback_address()
    agent = cluster.start_agent(
        "w0",
        rendezvous_store.endpoint,
        "job-metrics",
        "1:1",
        env={
            "ELASTICFT_DATASET": str(small_corpus),
            "ELASTICFT_TOTAL_STEPS": "200",
            "ELASTICFT_STEP_DELAY_S": "0.1",
            "ELASTICFT_METRICS_HOST": host,
            "ELASTICFT_METRICS_PORT": str(port),
            "ELASTICFT_CHECKPOINT_INTERVAL_STEPS": "4",
        },
    )
    base = f"http://{host}:{port}"
    wait_until(lambda: healthz_status(base + "/healthz") == 200, 60, "/healthz to report training")
    wait_until(lambda: scrape(base + "/metrics")["elasticft_train_steps_total"] >= 2, 30, "two steps")
    before = scrape(base + "/metrics")
    wait_until(
        lambda: scrape(base + "/metrics")["elasticft_train_steps_total"] >= before["elasticft_train_steps_total"] + 3,
        30,
        "three more steps",
    )
    after = scrape(base + "/metrics")

    assert after["elasticft_train_samples_total"] > before["elasticft_train_samples_total"] > 0
    assert after["elasticft_train_step"] > before["elasticft_train_step"]
    assert after["elasticft_world_size"] == 1
    assert after["elasticft_total_steps"] == 200
    assert 0 < after["elasticft_train_loss"] < 10
    assert "elasticft_checkpoint_save_seconds_count" in after
    # the step of the last committed checkpoint (what the operator shows as status.lastCheckpoint.step)
    wait_until(lambda: scrape(base + "/metrics")["elasticft_checkpoint_step"] >= 4, 30, "a committed checkpoint")
    committed = scrape(base + "/metrics")
    checkpoint_step = int(committed["elasticft_checkpoint_step"])
    assert checkpoint_step % 4 == 0 and checkpoint_step <= committed["elasticft_train_step"]
    assert (cluster.work_dir / "checkpoints" / f"step-{checkpoint_step:08d}" / "trainer.json").exists()
    assert "elasticft_checkpoint_load_seconds_count" in after

    agent.terminate()
    agent.wait(60)
    assert agent.summary().reason == "sigterm"
