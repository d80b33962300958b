"""Checkpoint commit, retention and recovery from a damaged latest checkpoint."""

from __future__ import annotations

from pathlib import Path

from elasticft_trainer.checkpoint import MANIFEST, resume_order
from elasticft_trainer.localrun import LocalJob, RendezvousStore


def first_logged_step(sample_log: Path) -> int:
    return min(int(line.split()[0]) for line in sample_log.read_text().splitlines())


def test_truncated_latest_checkpoint_is_skipped_and_the_previous_one_loaded(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    cluster.base_env.update(
        ELASTICFT_DATASET=str(small_corpus),
        ELASTICFT_CHECKPOINT_INTERVAL_STEPS="3",
        ELASTICFT_CHECKPOINT_KEEP="2",
    )
    first = cluster.start_agent(
        "run1", rendezvous_store.endpoint, "job-run1", "1:1", env={"ELASTICFT_TOTAL_STEPS": "10"}
    )
    assert first.wait(90) == 0, first.output()[-4000:]
    assert first.summary().completed
    # keep=2: the final step and the newest periodic one survive retention.
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000009", "step-00000010"]
    assert (checkpoints / "latest").read_text().strip() == "step-00000010"

    damaged = next((checkpoints / "step-00000010").glob("*.distcp"))
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])

    sample_log = tmp_path / "samples-run2.log"
    second = cluster.start_agent(
        "run2",
        rendezvous_store.endpoint,
        "job-run2",
        "1:1",
        env={"ELASTICFT_TOTAL_STEPS": "12", "ELASTICFT_SAMPLE_LOG": str(sample_log)},
    )
    assert second.wait(90) == 0, second.output()[-4000:]
    assert "step-00000010 is unusable" in second.output()
    assert "truncated" in second.output()
    assert first_logged_step(sample_log) == 10, "training did not restart right after step 9"
    summary = second.summary()
    assert summary.completed and summary.step == 12 and summary.world_sizes == [1, 1]
    assert (checkpoints / "latest").read_text().strip() == "step-00000012"
    assert (checkpoints / "step-00000012" / MANIFEST).is_file()


def test_resume_order_never_trusts_directories_newer_than_latest() -> None:
    names = ["step-00000003", "step-00000009", "step-00000012", "unrelated", "step-00000006"]
    assert resume_order(names, "step-00000009") == ["step-00000009", "step-00000006", "step-00000003"]
    assert resume_order(names, None) == ["step-00000012", "step-00000009", "step-00000006", "step-00000003"]
