"""The training loop, run once per rank by torchrun (`python -m elasticft_trainer`).

Reads top to bottom: configure, join the world, build data/model/optimizer, resume from the newest
usable checkpoint, train until the job's total steps or until any rank was asked to stop, save,
publish the summary.

Stopping is agreed, not local: a SIGTERM reaches the workers of one pod while the peers keep running,
and a DCP save is collective, so each step ends with one small all-reduce that carries the step's
loss, "someone got SIGTERM" and "someone's checkpoint timer fired". Every rank therefore stops (or
saves) after the same step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import FrameType

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import CheckpointManager, TrainingProgress, TrainState
from .classification import LabelledTexts, build_labelled_texts
from .config import TrainerConfig, load_config
from .data import SampleRef, TokenWindows, build_windows, micro_batches, rank_samples
from .logs import configure_logging
from .metrics import TrainerMetrics
from .model import build_model, load_encoder, trainable_parameter_count
from .runtime import (
    DevicePlan,
    World,
    cpu_thread_count,
    die_with_agent,
    select_device,
    start_process_group,
    world_from_environ,
)
from .simulated_device import SimulatedDevice, pad_step
from .summary import RunSummary, StopReason, publish

log = logging.getLogger("elasticft_trainer")

# Exit code of a worker whose peer was stopped. Measured on torch 2.13: when the workers of a pod
# exit 0, its torchrun agent waits in the exit barrier for the SIGTERM'd agent that never arrives
# (300 s); a non-zero exit skips the barrier, so the agent either ends at once (no restarts left) or,
# with `--max-restarts`, re-forms the world in place. The summary, not the code, says what happened.
EXIT_PEER_STOPPED = 75
PROGRESS_LOG_EVERY_STEPS = 10


class StopRequest:
    """Set by SIGTERM (the preemption notice torchrun forwards); read once per step."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log.warning("SIGTERM received: finishing the current step, then saving")
        self.requested = True


@dataclass(frozen=True)
class StepAgreement:
    """What all ranks learned from the end-of-step all-reduce."""

    loss: float
    stop: bool
    save: bool


def agree(plan: DevicePlan, local_loss_sum: float, tokens: int, stop: bool, save_due: bool) -> StepAgreement:
    """One all-reduce for the global loss and the stop/save votes (the cost of a scalar collective)."""
    votes = torch.tensor([local_loss_sum, float(stop), float(save_due)], dtype=torch.float64, device=plan.device)
    dist.all_reduce(votes)
    loss_sum, stops, saves = votes.tolist()
    return StepAgreement(loss=loss_sum / tokens, stop=stops > 0, save=saves > 0)


@dataclass(frozen=True)
class TrainingContext:
    """What every step of this rank works with; built once per process by `build_context`."""

    config: TrainerConfig
    world: World
    plan: DevicePlan
    #: the DDP wrapper the steps run; `state` holds the bare model the checkpoints save
    model: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    data: TokenWindows | LabelledTexts
    total_steps: int
    state: TrainState
    checkpoints: CheckpointManager
    metrics: TrainerMetrics
    #: the device whose step time each step is padded to (sandbox nodes), None on real hardware
    simulated: SimulatedDevice | None
    #: bytes the gradient all-reduce carries: fp32 gradients, whatever the autocast dtype
    gradient_bytes: int

    @property
    def tokens_per_step(self) -> int:
        """Targets the loss sums over in one global batch."""
        return self.config.global_batch_size * self.data.targets_per_sample

    @property
    def loss_scale(self) -> float:
        """W / (B * targets per sample): DDP's mean over the W ranks then is the mean over the global batch."""
        return self.world.world_size / self.tokens_per_step


def train_step(context: TrainingContext, samples: list[SampleRef]) -> float:
    """Forward/backward over this rank's `samples` in micro-batches, then one optimizer step.

    The summed token loss is multiplied by `context.loss_scale`, so the gradient is the mean over the
    global batch whatever W, shares and accumulation. The checkpoint manager's `before_weights_change`
    runs just before the optimizer step (a background checkpoint copy may still be reading the
    weights). Returns this rank's summed token loss.
    """
    plan = context.plan
    context.optimizer.zero_grad(set_to_none=True)
    chunks = micro_batches(samples, context.config.micro_batch_size)
    loss_sum = torch.zeros((), dtype=torch.float64, device=plan.device)
    for index, chunk in enumerate(chunks):
        inputs, targets = (tensor.to(plan.device) for tensor in context.data.batch(chunk))
        # Only the last micro-batch all-reduces gradients; the others accumulate locally.
        sync = contextlib.nullcontext() if index == len(chunks) - 1 else context.model.no_sync()
        autocast = (
            torch.autocast(plan.device_type, dtype=plan.autocast_dtype)
            if plan.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with sync:
            with autocast:
                logits = context.model(inputs)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
            torch.autograd.backward(loss * context.loss_scale)
        loss_sum += loss.detach()
    context.checkpoints.before_weights_change()
    context.optimizer.step()
    return float(loss_sum.item())


def append_sample_log(path: str, step: int, world: World, samples: list[SampleRef]) -> None:
    """One `step epoch index rank world_size` line per sample, one append per step."""
    lines = "".join(f"{step} {s.epoch} {s.index} {world.rank} {world.world_size}\n" for s in samples)
    with open(path, "a") as handle:
        handle.write(lines)


def start_metrics(config: TrainerConfig, world: World) -> TrainerMetrics:
    """This rank's metrics, served on the configured port plus the local rank (0: any free port; < 0: none)."""
    metrics = TrainerMetrics(config.job_name, world.rank)
    if config.metrics_port >= 0:
        metrics.serve(config.metrics_host, config.metrics_port + world.local_rank if config.metrics_port else 0)
    metrics.world_size.set(world.world_size)
    return metrics


def build_data(config: TrainerConfig) -> TokenWindows | LabelledTexts:
    """The training samples of the job's task: labelled rows (classification) or token windows (causal LM)."""
    if config.task == "classification":
        return build_labelled_texts(config, "train")
    return build_windows(config.dataset, config.max_corpus_bytes, config.seq_len, load_encoder(config))


def log_simulated_device(simulated: SimulatedDevice, config: TrainerConfig, world: World, gradient_bytes: int) -> None:
    """Say, once, that steps are padded to a simulated device's time and to how long."""
    simulated_step_s = simulated.step_seconds(
        -(-config.global_batch_size // world.world_size), world.world_size, gradient_bytes
    )
    log.info(
        "simulated device time: %s, %.4f s a sample, %.3f s a step at world %d (not a GPU measurement)",
        simulated.name, simulated.sample_seconds, simulated_step_s, world.world_size,
    )


def resume(
    checkpoints: CheckpointManager, state: TrainState, metrics: TrainerMetrics, world: World
) -> TrainingProgress:
    """Load the newest usable checkpoint into `state`; the progress to go on from (step 0 when there is
    none), with this world's size appended to the sizes it ran at."""
    resumed = checkpoints.load(state)
    progress = TrainingProgress(step=0, consumed_samples=0)
    load_seconds: float | None = None
    if resumed is not None:
        progress, load_seconds = resumed
        log.info("resumed at step %d (%d samples consumed) in %.2f s", progress.step, progress.consumed_samples,
                 load_seconds)
    metrics.record_resume(progress.step, checkpoints.last_rejected_step, load_seconds)
    return replace(progress, world_sizes=(*progress.world_sizes, world.world_size))


def build_context(config: TrainerConfig, world: World, plan: DevicePlan) -> tuple[TrainingContext, TrainingProgress]:
    """Metrics, data, model, optimizer and checkpoints of this rank, resumed from the newest usable
    checkpoint; returns them with the progress to go on from."""
    metrics = start_metrics(config, world)
    data = build_data(config)
    total_steps = config.steps_for(data.num_samples)
    metrics.total_steps.set(total_steps)
    model = build_model(config).to(plan.device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    trainable, total = trainable_parameter_count(model)
    log.info(
        "model %s: %d trainable of %d parameters; corpus %d samples of %d tokens; world %d, device %s",
        config.model, trainable, total, data.num_samples, config.seq_len, world.world_size, plan.device,
    )
    simulated = config.device_profile
    gradient_bytes = trainable * 4  # fp32 gradients, whatever the autocast dtype
    if simulated is not None:
        log_simulated_device(simulated, config, world, gradient_bytes)
    state = TrainState(model, optimizer, frozen_base=config.lora_rank > 0)
    checkpoints = CheckpointManager(
        config.checkpoint_dir,
        config.job_name,
        config.checkpoint_keep,
        config.checkpoint_async,
        interval_steps=config.checkpoint_interval_steps,
        interval_seconds=config.checkpoint_interval_seconds,
        on_blocked=metrics.checkpoint_save_seconds.observe,
    )
    progress = resume(checkpoints, state, metrics, world)
    # Wrapped after the resume: DDP broadcasts rank 0's weights as it wraps.
    ddp_model = DistributedDataParallel(model, device_ids=[plan.device] if plan.device_type == "cuda" else None)
    context = TrainingContext(
        config=config, world=world, plan=plan, model=ddp_model, optimizer=optimizer, data=data,
        total_steps=total_steps, state=state, checkpoints=checkpoints, metrics=metrics, simulated=simulated,
        gradient_bytes=gradient_bytes,
    )
    return context, progress


def run_step(
    context: TrainingContext, progress: TrainingProgress, stop: StopRequest
) -> tuple[TrainingProgress, StepAgreement]:
    """One step of the job on this rank: train on its share, agree with the other ranks, pad to the
    simulated device, record; returns the progress after it and what the ranks agreed."""
    config, world = context.config, context.world
    step_started = time.monotonic()
    samples = rank_samples(
        config.seed, progress.consumed_samples, config.global_batch_size, world.world_size, world.rank,
        context.data.num_samples,
    )
    local_loss = train_step(context, samples)
    if config.step_delay_s > 0:
        time.sleep(config.step_delay_s)
    agreed = agree(context.plan, local_loss, context.tokens_per_step, stop.requested,
                   context.checkpoints.save_timer_due())
    if context.simulated is not None:  # after the real step and its all-reduces: pad to the simulated device's time
        pad_step(context.simulated, step_started, len(samples), world.world_size, context.gradient_bytes)
    progress = progress.after_step(config.global_batch_size, agreed.loss)
    if config.sample_log:
        append_sample_log(config.sample_log, progress.step, world, samples)
    if world.rank == 0 and (progress.step % PROGRESS_LOG_EVERY_STEPS == 0 or progress.step == 1):
        log.info("step %d/%d loss %.4f", progress.step, context.total_steps, agreed.loss)
    context.checkpoints.poll()
    context.metrics.record_step(progress.step, len(samples), agreed.loss, context.checkpoints.last_committed_step)
    return progress, agreed


def run_summary(progress: TrainingProgress, total_steps: int, reason: StopReason) -> RunSummary:
    return RunSummary(
        completed=progress.step >= total_steps,
        step=progress.step,
        total_steps=total_steps,
        samples=progress.consumed_samples,
        loss=progress.loss if progress.loss is not None else float("nan"),
        initial_loss=progress.initial_loss if progress.initial_loss is not None else float("nan"),
        world_sizes=list(progress.world_sizes),
        reason=reason,
    )


def train(config: TrainerConfig, world: World, plan: DevicePlan, stop: StopRequest) -> tuple[RunSummary, int]:
    """Run until the job's last step or an agreed stop; returns the summary and the exit code.

    After every step the checkpoint manager decides whether that step is saved: the last step and an
    agreed stop blocking, the periodic ones in the background (`CheckpointManager.should_save`).
    """
    context, progress = build_context(config, world, plan)
    context.metrics.mark_training_started()
    reason: StopReason = "completed"
    while progress.step < context.total_steps and reason == "completed":
        progress, agreed = run_step(context, progress, stop)
        if agreed.stop and progress.step < context.total_steps:
            reason = "sigterm" if stop.requested else "peer-stopped"
            log.warning("stopping after step %d (%s); saving an emergency checkpoint", progress.step, reason)
        context.checkpoints.maybe_save(
            progress, context.state, context.total_steps, stopping=agreed.stop, timer_voted=agreed.save
        )
    context.checkpoints.close()
    context.metrics.close()
    return run_summary(progress, context.total_steps, reason), EXIT_PEER_STOPPED if reason == "peer-stopped" else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m elasticft_trainer`; returns the process exit code."""
    die_with_agent()
    stop = StopRequest()
    stop.install()
    config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
    world = world_from_environ(os.environ)
    configure_logging(world.rank)
    plan = select_device(torch.cuda.is_available(), world.local_rank, config.precision)
    if plan.device_type == "cpu":
        torch.set_num_threads(cpu_thread_count(config.cpu_threads, os.environ))
    start_process_group(plan, world)
    try:
        summary, exit_code = train(config, world, plan, stop)
    except Exception:
        # A lost peer surfaces as a failed collective. A background checkpoint thread may be blocked
        # in its own collective with that peer, and interpreter shutdown would join it; exit now.
        # The checkpoint is safe: `latest` only ever names committed step directories.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    if world.local_rank == 0:
        publish(summary, config.termination_log)
    dist.destroy_process_group()
    return exit_code

