"""A rescale must not change the optimisation: same global batch, same trajectory."""

from __future__ import annotations

import math
from pathlib import Path

from elasticft_trainer.localrun import LocalJob, RendezvousStore


def test_loss_trajectory_is_the_same_at_world_size_one_and_three(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    # Global batch 8 at world 3 splits 3/3/2 with micro-batches of 2 (accumulation on every rank);
    # at world 1 it is four micro-batches of 2 on one rank.
    agents = {
        world: cluster.start_agent(
            f"world{world}",
            rendezvous_store.endpoint,
            f"batch-{world}",
            "1:1",
            nproc=world,
            env={
                "ELASTICFT_DATASET": str(small_corpus),
                "ELASTICFT_TOTAL_STEPS": "6",
                "ELASTICFT_MICRO_BATCH_SIZE": "2",
                "ELASTICFT_CHECKPOINT_DIR": str(tmp_path / f"checkpoints-{world}"),
            },
        )
        for world in (1, 3)
    }
    for agent in agents.values():
        assert agent.wait(120) == 0, agent.output()[-4000:]
    results = {world: agent.summary() for world, agent in agents.items()}

    assert results[3].world_sizes == [3]
    assert math.isclose(results[1].initial_loss, results[3].initial_loss, rel_tol=1e-5)
    assert math.isclose(results[1].loss, results[3].loss, rel_tol=1e-4)
