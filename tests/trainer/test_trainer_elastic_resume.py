"""A job carried across a preemption and two world-size changes by generation restarts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from trainer_harness import EPOCH_SAMPLES

from elasticft_trainer.localrun import LocalJob, RendezvousStore, wait_until

TOTAL_STEPS = 24  # two epochs of 96 samples at global batch 8


def sample_log_lines(path: Path) -> list[tuple[int, int, int, int, int]]:
    """(step, epoch, sample index, rank, world size) per consumed sample."""
    if not path.exists():
        return []
    return [tuple(int(x) for x in line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


def last_step(path: Path) -> int:
    return max((line[0] for line in sample_log_lines(path)), default=0)


def test_preempted_job_resumes_at_new_world_sizes_and_consumes_every_sample_once(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    sample_log = tmp_path / "samples.log"
    checkpoints = tmp_path / "checkpoints"
    cluster.base_env.update(
        ELASTICFT_DATASET=str(small_corpus),
        ELASTICFT_TOTAL_STEPS=str(TOTAL_STEPS),
        ELASTICFT_CHECKPOINT_INTERVAL_STEPS="5",
        ELASTICFT_SAMPLE_LOG=str(sample_log),
        ELASTICFT_STEP_DELAY_S="0.25",
    )
    endpoint = rendezvous_store.endpoint

    # Generation 1: two workers; one pod is reclaimed mid-run.
    first = [cluster.start_agent(f"g1-w{i}", endpoint, "job-g1", "2:2") for i in range(2)]
    wait_until(lambda: last_step(sample_log) >= 3, 90, "generation 1 to train 3 steps")
    first[1].terminate()
    for agent in first:
        agent.wait(60)
    preempted, peer = first[1].summary(), first[0].summary()
    assert (preempted.reason, peer.reason) == ("sigterm", "peer-stopped")
    assert not preempted.completed and preempted.step == peer.step
    stop_step = preempted.step
    assert 3 <= stop_step < TOTAL_STEPS
    # Zero steps lost: the emergency checkpoint is the step every rank finished.
    assert (checkpoints / "latest").read_text().strip() == f"step-{stop_step:08d}"
    assert last_step(sample_log) == stop_step

    # Generation 2: one worker resumes from that step, and is itself stopped a few steps later.
    single = cluster.start_agent("g2-w0", endpoint, "job-g2", "1:1")
    wait_until(lambda: last_step(sample_log) >= stop_step + 3, 90, "generation 2 to train 3 steps")
    single.terminate()
    single.wait(60)
    second_stop = single.summary()
    assert second_stop.reason == "sigterm" and second_stop.world_sizes == [2, 1]
    assert second_stop.step > stop_step

    # Generation 3: two workers again, to the end.
    last = [cluster.start_agent(f"g3-w{i}", endpoint, "job-g3", "2:2") for i in range(2)]
    for agent in last:
        assert agent.wait(120) == 0, agent.output()[-4000:]
    final = last[0].summary()
    assert final.completed and final.reason == "completed"
    assert final.step == TOTAL_STEPS and final.samples == TOTAL_STEPS * 8
    assert final.world_sizes == [2, 1, 2]
    assert final.loss < final.initial_loss

    lines = sample_log_lines(sample_log)
    steps = Counter(step for step, *_ in lines)
    assert sorted(steps) == list(range(1, TOTAL_STEPS + 1)), "a step was skipped or trained twice"
    assert set(steps.values()) == {8}
    world_of_step = {step: world for step, _, _, _, world in lines}
    assert [world_of_step[s] for s in (1, stop_step, stop_step + 1, second_stop.step, TOTAL_STEPS)] == [2, 2, 1, 1, 2]
    for epoch in (0, 1):
        consumed = sorted(index for _, e, index, _, _ in lines if e == epoch)
        assert consumed == list(range(EPOCH_SAMPLES)), f"epoch {epoch} did not see every sample exactly once"
