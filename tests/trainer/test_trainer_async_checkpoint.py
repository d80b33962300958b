"""Async checkpoints in one process: what a background save writes while training goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from elasticft_trainer.checkpoint import CheckpointManager, TrainingProgress, TrainState
from elasticft_trainer.config import TrainerConfig
from elasticft_trainer.model import build_model

CONFIG = TrainerConfig(model="builtin:gpt-tiny", seq_len=16)


@pytest.fixture
def world_of_one() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dist.destroy_process_group()


def new_training_state(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, TrainState]:
    torch.manual_seed(seed)
    model = build_model(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, optimizer, TrainState(model, optimizer, frozen_base=False)


def forward_backward(model: nn.Module) -> None:
    tokens = torch.randint(0, 256, (4, CONFIG.seq_len + 1))
    loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
    torch.autograd.backward(loss)


def test_async_save_keeps_the_weights_of_its_step_while_training_continues(
    world_of_one: None, tmp_path: Path
) -> None:
    model, optimizer, state = new_training_state(seed=1)
    forward_backward(model)
    optimizer.step()
    at_step_1 = {name: tensor.clone() for name, tensor in model.state_dict().items()}

    manager = CheckpointManager(str(tmp_path), "test-job", keep=2, async_mode=True)
    manager.save(TrainingProgress(step=1, consumed_samples=4), state, blocking=False)
    for _ in range(3):  # the trainer's next steps, as the background write goes on
        optimizer.zero_grad(set_to_none=True)
        forward_backward(model)
        manager.before_weights_change()
        optimizer.step()
        manager.poll()
    manager.close()
    assert (tmp_path / "latest").read_text().strip() == "step-00000001"

    fresh_model, _, fresh_state = new_training_state(seed=2)
    resumed = CheckpointManager(str(tmp_path), "test-job", keep=2, async_mode=True).load(fresh_state)
    assert resumed is not None and resumed[0].step == 1 and resumed[0].consumed_samples == 4
    loaded = fresh_model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in at_step_1.items())
    assert not all(torch.equal(model.state_dict()[name], tensor) for name, tensor in at_step_1.items())


def test_background_saves_commit_in_order_and_keep_only_the_newest(world_of_one: None, tmp_path: Path) -> None:
    model, optimizer, state = new_training_state(seed=1)
    manager = CheckpointManager(str(tmp_path), "test-job", keep=2, async_mode=True)
    for step in range(1, 6):
        forward_backward(model)
        manager.before_weights_change()
        optimizer.step()
        manager.poll()
        manager.save(TrainingProgress(step=step, consumed_samples=4 * step), state, blocking=False)
    manager.close()
    assert sorted(path.name for path in tmp_path.glob("step-*")) == ["step-00000004", "step-00000005"]
    assert (tmp_path / "latest").read_text().strip() == "step-00000005"
    assert all((tmp_path / name / "trainer.json").is_file() for name in ("step-00000004", "step-00000005"))


def test_the_last_step_and_an_agreed_stop_save_blocking_and_intervals_save_in_the_background(
    world_of_one: None, tmp_path: Path
) -> None:
    manager = CheckpointManager(str(tmp_path), "test-job", keep=2, async_mode=True, interval_steps=4)
    decide = manager.should_save
    assert [decide(step, 10, stopping=False, timer_voted=False) for step in range(1, 11)] == [
        None, None, None, "periodic", None, None, None, "periodic", None, "final"]
    assert decide(3, 10, stopping=True, timer_voted=False) == "emergency"
    assert decide(10, 10, stopping=True, timer_voted=True) == "final"
    assert decide(3, 10, stopping=False, timer_voted=True) == "periodic"
    assert not manager.save_timer_due()  # no interval_seconds: the clock never votes
    manager.close()
