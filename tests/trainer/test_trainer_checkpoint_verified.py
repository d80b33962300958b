"""Checkpoints verified by content: a damaged or foreign newest checkpoint is rejected, the previous one loads."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from elasticft_trainer.checkpoint import (
    MANIFEST,
    CheckpointManager,
    NoUsableCheckpoint,
    TrainingProgress,
    TrainState,
    file_digest,
)

JOB = "llama-ft"


@pytest.fixture
def world_of_one() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dist.destroy_process_group()


def training_state(width: int = 8, seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(width, width), nn.Linear(width, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(3, width)).sum().backward()
    optimizer.step()
    return TrainState(model, optimizer, frozen_base=False)


def save_steps(directory: Path, steps: list[int], async_mode: bool = False, job: str = JOB) -> TrainState:
    state = training_state()
    manager = CheckpointManager(str(directory), job, keep=5, async_mode=async_mode)
    for step in steps:
        manager.save(TrainingProgress(step=step, consumed_samples=4 * step), state, blocking=False)
    manager.close()
    return state


def load_into(directory: Path, state: TrainState, job: str = JOB) -> tuple[int | None, CheckpointManager]:
    manager = CheckpointManager(str(directory), job, keep=5, async_mode=False)
    resumed = manager.load(state)
    return (resumed[0].step if resumed else None), manager


def distcp_file(step_dir: Path) -> Path:
    return next(step_dir.glob("*.distcp"))


def test_commit_record_lists_every_file_with_the_checksum_of_its_bytes(world_of_one: None, tmp_path: Path) -> None:
    save_steps(tmp_path, [3], async_mode=True)  # the digest is taken in the writer thread
    record = json.loads((tmp_path / "step-00000003" / MANIFEST).read_text())
    on_disk = {p.name for p in (tmp_path / "step-00000003").iterdir() if p.name != MANIFEST}
    assert record["job"] == JOB
    assert set(record["files"]) == on_disk and ".metadata" in on_disk
    for name, entry in record["files"].items():
        path = tmp_path / "step-00000003" / name
        assert entry == {"size": path.stat().st_size, "digest": file_digest(path)}


def test_garbled_newest_checkpoint_of_the_same_size_falls_back_and_is_never_tried_again(
    world_of_one: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_steps(tmp_path, [50, 141])
    damaged = distcp_file(tmp_path / "step-00000141")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot: same size, one byte changed
    damaged.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING):
        step, manager = load_into(tmp_path, training_state(seed=1))
    assert step == 50
    assert manager.last_rejected_step == 141
    assert "does not match its committed checksum" in caplog.text
    assert not (tmp_path / "step-00000141").exists()
    assert "checksum" in (tmp_path / "rejected-step-00000141" / "rejected.txt").read_text()
    assert (tmp_path / "latest").read_text().strip() == "step-00000050"

    again, manager = load_into(tmp_path, training_state(seed=2))
    assert again == 50 and manager.last_rejected_step is None


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(world_of_one: None, tmp_path: Path) -> None:
    save_steps(tmp_path, [5, 10])
    damaged = distcp_file(tmp_path / "step-00000010")
    damaged.write_bytes(damaged.read_bytes()[:100])
    step, manager = load_into(tmp_path, training_state(seed=1))
    assert step == 5 and manager.last_rejected_step == 10
    assert "truncated" in (tmp_path / "rejected-step-00000010" / "rejected.txt").read_text()


def test_checkpoint_without_its_dcp_metadata_falls_back_to_the_previous_one(world_of_one: None, tmp_path: Path) -> None:
    save_steps(tmp_path, [5, 10])
    (tmp_path / "step-00000010" / ".metadata").unlink()
    step, _ = load_into(tmp_path, training_state(seed=1))
    assert step == 5
    assert "missing .metadata" in (tmp_path / "rejected-step-00000010" / "rejected.txt").read_text()


def test_checkpoint_of_a_different_shape_is_rejected_at_load_and_the_previous_one_loaded(
    world_of_one: None, tmp_path: Path
) -> None:
    # A checkpoint whose record is intact but whose tensors do not fit this model (a wider model
    # wrote it under the same name): DCP refuses it during the load itself, after verification.
    save_steps(tmp_path, [5])
    wide = training_state(width=16)
    manager = CheckpointManager(str(tmp_path), JOB, keep=5, async_mode=False)
    manager.save(TrainingProgress(step=10, consumed_samples=40), wide, blocking=True)
    manager.close()

    state = training_state(seed=1)
    step, loader = load_into(tmp_path, state)
    assert step == 5 and loader.last_rejected_step == 10
    assert "load failed" in (tmp_path / "rejected-step-00000010" / "rejected.txt").read_text()
    saved = training_state()  # seed 0: the weights save_steps wrote at step 5
    assert all(torch.equal(a, b) for a, b in zip(state.model.state_dict().values(),
                                                 saved.model.state_dict().values(), strict=True))


def test_another_jobs_checkpoint_is_not_loaded(world_of_one: None, tmp_path: Path) -> None:
    save_steps(tmp_path, [7], job="someone-else")
    step, manager = load_into(tmp_path, training_state(seed=1))
    assert step is None and manager.last_rejected_step == 7
    assert "written by job 'someone-else'" in (tmp_path / "rejected-step-00000007" / "rejected.txt").read_text()


def test_a_failed_load_with_nothing_older_asks_for_a_restart_that_then_starts_fresh(
    world_of_one: None, tmp_path: Path
) -> None:
    wide = training_state(width=16)
    manager = CheckpointManager(str(tmp_path), JOB, keep=5, async_mode=False)
    manager.save(TrainingProgress(step=10, consumed_samples=40), wide, blocking=True)
    manager.close()
    with pytest.raises(NoUsableCheckpoint):
        load_into(tmp_path, training_state(seed=1))
    step, _ = load_into(tmp_path, training_state(seed=1))
    assert step is None
