"""Fixtures: a real rendezvous store and real torchrun agents (see elasticft_trainer.localrun)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from elasticft_trainer.localrun import LocalJob, RendezvousStore, job_environment, running_store

EPOCH_SAMPLES = 96
SEQ_LEN = 64


@pytest.fixture
def rendezvous_store(tmp_path: Path) -> Iterator[RendezvousStore]:
    with running_store(tmp_path / "store.log") as store:
        yield store


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalJob]:
    """A small, fast job; tests add ELASTICFT_* settings to `base_env` or per agent."""
    job = LocalJob(
        tmp_path,
        job_environment(
            {
                "job_name": "test-job",
                "seq_len": SEQ_LEN,
                "global_batch_size": 8,
                "micro_batch_size": 4,
                "metrics_port": -1,
                "checkpoint_dir": tmp_path / "checkpoints",
            }
        ),
    )
    try:
        yield job
    finally:
        job.stop_all()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A text file of exactly EPOCH_SAMPLES windows, so an epoch is a handful of steps."""
    words = ["spot", "node", "resume", "gradient", "token", "epoch", "preempt", "shard"]
    rng = random.Random(7)
    text = " ".join(rng.choice(words) for _ in range(4000))
    path = tmp_path / "corpus.txt"
    path.write_text(text[: EPOCH_SAMPLES * (SEQ_LEN + 1)])
    return path
