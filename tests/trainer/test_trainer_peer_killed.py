"""A peer vanishing without notice (SIGKILL) must not cost more than the steps since the last save."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from elasticft_trainer.checkpoint import checkpoint_problem
from elasticft_trainer.localrun import LocalJob, RendezvousStore, wait_until


def test_sigkilled_peer_fails_the_world_but_leaves_a_loadable_latest_checkpoint(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    cluster.base_env.update(
        ELASTICFT_DATASET=str(small_corpus),
        ELASTICFT_TOTAL_STEPS="30",
        ELASTICFT_CHECKPOINT_INTERVAL_STEPS="2",
        ELASTICFT_STEP_DELAY_S="0.2",
    )
    first = [cluster.start_agent(f"g1-w{i}", rendezvous_store.endpoint, "kill-g1", "2:2") for i in range(2)]
    wait_until(lambda: (checkpoints / "latest").exists() and (checkpoints / "latest").read_text() >= "step-00000006",
               90, "a few committed checkpoints")
    os.killpg(first[1].process.pid, signal.SIGKILL)  # the node is gone: agent and worker, no notice

    assert first[0].wait(120) != 0, "the survivor cannot finish a step without its peer"
    assert not first[0].termination_log.exists(), "a failed world must not claim a clean stop"
    latest = checkpoints / (checkpoints / "latest").read_text().strip()
    assert checkpoint_problem(latest, "test-job") is None

    resumed = cluster.start_agent("g2-w0", rendezvous_store.endpoint, "kill-g2", "1:1")
    assert resumed.wait(120) == 0, resumed.output()[-4000:]
    summary = resumed.summary()
    assert summary.completed and summary.step == 30 and summary.world_sizes[-1] == 1
