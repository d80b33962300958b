"""`CheckpointManager`: save, load, retention and async mode of the trainer's checkpoints.

Layout under the checkpoint directory::

    step-00000120/          torch.distributed.checkpoint files (.metadata, __R_0.distcp)
        trainer.json        progress + sizes of every file, written once the save completed
    latest                  "step-00000120", replaced atomically after trainer.json

A step directory is *committed* once `trainer.json` exists; `latest` is written last, so a crash at
any moment leaves `latest` naming a complete checkpoint. On load, a checkpoint whose files do not
match the sizes recorded at commit (truncated, partial) is skipped in favour of the previous one.
DCP stores each tensor by its fully qualified name, so a checkpoint written by W ranks loads into any
other world size.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._state_dict_utils import _copy_state_dict, _create_cpu_state_dict
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as load_checkpoint
from torch.distributed.checkpoint.state_dict_saver import save as save_checkpoint
from torch.distributed.checkpoint.stateful import Stateful

log = logging.getLogger(__name__)

LATEST = "latest"
MANIFEST = "trainer.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class TrainingProgress:
    """Everything besides tensors that a resumed run needs, kept in the checkpoint's manifest."""

    step: int
    consumed_samples: int
    world_sizes: tuple[int, ...] = ()
    initial_loss: float | None = None
    loss: float | None = None


@dataclass(frozen=True)
class Manifest:
    """Contents of `trainer.json`: the progress and the size of every file at commit time."""

    progress: TrainingProgress
    file_sizes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        progress = dict(raw["progress"])
        progress["world_sizes"] = tuple(progress["world_sizes"])
        return Manifest(TrainingProgress(**progress), {str(k): int(v) for k, v in raw["file_sizes"].items()})


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def step_of(name: str) -> int | None:
    match = _STEP_DIR.match(name)
    return int(match.group(1)) if match else None


def resume_order(step_dir_names: list[str], latest: str | None) -> list[str]:
    """Step directories to try, newest first, never newer than what `latest` names.

    Directories newer than `latest` were never committed (or belong to a future that was
    abandoned); when `latest` is missing or unreadable every step directory is a candidate.
    """
    steps = sorted(((step_of(name), name) for name in step_dir_names if step_of(name) is not None), reverse=True)
    ceiling = step_of(latest) if latest else None
    return [name for step, name in steps if ceiling is None or (step is not None and step <= ceiling)]


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be loaded, or None if it is complete."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return "not committed (no trainer.json)"
    try:
        manifest = Manifest.from_json(manifest_path.read_text())
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable trainer.json: {error}"
    if not manifest.file_sizes:
        return "manifest lists no files"
    for name, size in manifest.file_sizes.items():
        file_path = path / name
        if not file_path.is_file():
            return f"missing {name}"
        actual = file_path.stat().st_size
        if actual != size:
            return f"{name} has {actual} bytes, {size} were committed (truncated or partial)"
    try:
        FileSystemReader(path).read_metadata()
    except Exception as error:  # any unpickling failure means the same thing: unusable
        return f"unreadable .metadata: {error}"
    return None


class TrainState(Stateful):
    """Model and optimizer as one DCP item, keyed by parameter names (independent of world size).

    With LoRA only the trainable adapter weights are saved: the frozen base comes from the model
    directory on every start.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, frozen_base: bool) -> None:
        self.model = model
        self.optimizer = optimizer
        # Non-strict loading is required once frozen weights are left out; load_state_dict checks
        # that nothing but those is missing.
        self.options = StateDictOptions(ignore_frozen_params=frozen_base, strict=not frozen_base)
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.frozen_names = set(model.state_dict()) - trainable if frozen_base else set()

    def state_dict(self) -> dict[str, Any]:
        model_state, optimizer_state = get_state_dict(self.model, self.optimizer, options=self.options)
        # ignore_frozen_params misses aliases of frozen weights, e.g. an output head tied to the
        # frozen embedding (GPT-2), which would otherwise be saved in every checkpoint.
        model_state = {k: v for k, v in model_state.items() if k not in self.frozen_names}
        return {"model": model_state, "optimizer": optimizer_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        incompatible = set_state_dict(
            self.model,
            self.optimizer,
            model_state_dict=state_dict["model"],
            optim_state_dict=state_dict["optimizer"],
            options=self.options,
        )
        missing = set(incompatible.missing_keys) - self.frozen_names
        if missing or incompatible.unexpected_keys:
            raise RuntimeError(
                f"checkpoint does not match the model: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(incompatible.unexpected_keys)[:5]}"
            )


@dataclass
class _PendingSave:
    finished: Future[None]
    progress: TrainingProgress
    started: float


class CheckpointManager:
    """Owns the checkpoint directory: collective save/load, commit on rank 0, retention.

    All ranks call `load`, `save` and `wait` at the same steps (they are collective); only rank 0
    touches `latest`, manifests and retention. Saves run on their own gloo group so that background
    collectives never interleave with training collectives.

    An async save hands the whole job to one long-lived writer thread: collect the state dict,
    copy it into CPU buffers allocated once, write it with DCP, commit. Forward and backward passes
    change neither weights nor optimizer state, so all of that may overlap them; training waits only
    if the copy is not done by the next optimizer step (`before_weights_change`). The commit of the
    previous save happens in the writer thread too, so nothing of a periodic save but handing it over
    runs on the training thread. (The models trained here have no buffers that forward updates, such
    as BatchNorm statistics, which a copy overlapping forward could catch mid-update.)
    """

    def __init__(
        self, directory: str, keep: int, async_mode: bool, on_blocked: Callable[[float], None] | None = None
    ) -> None:
        """`on_blocked` receives, per save, the seconds training waited for it."""
        self.directory = Path(directory) if directory else None
        self.on_blocked = on_blocked
        self.keep = keep
        self.async_mode = async_mode
        self.is_coordinator = dist.get_rank() == 0
        self.group = dist.new_group(backend="gloo")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._buffers: dict[str, Any] | None = None
        self._pending: _PendingSave | None = None
        self._staging: Future[None] | None = None
        self._blocked_s = 0.0
        self.last_committed_step: int | None = None
        self.last_save_blocking_s = 0.0
        if self.directory is not None and self.is_coordinator:
            self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    @property
    def saving(self) -> bool:
        """True while a background save has not been seen committed by `poll` or `wait`."""
        return self._pending is not None

    def load(self, state: TrainState) -> tuple[TrainingProgress, float] | None:
        """Load the newest usable checkpoint into `state`; (progress, seconds) or None to start fresh.

        Rank 0 chooses and every rank loads the same one, even if their views of the volume differ.
        """
        if self.directory is None:
            return None
        choice = [self._choose_resume_point() if self.is_coordinator else None]
        dist.broadcast_object_list(choice, src=0)
        name = choice[0]
        if name is None:
            return None
        started = time.perf_counter()
        path = self.directory / name
        load_checkpoint({"train": state}, checkpoint_id=path)
        progress = Manifest.from_json((path / MANIFEST).read_text()).progress
        self.last_committed_step = progress.step
        return progress, time.perf_counter() - started

    def _choose_resume_point(self) -> str | None:
        assert self.directory is not None
        names = [entry.name for entry in self.directory.iterdir() if entry.is_dir()]
        chosen: str | None = None
        for name in resume_order(names, self._read_latest()):
            problem = checkpoint_problem(self.directory / name)
            if problem is None:
                chosen = name
                break
            log.warning("checkpoint %s is unusable (%s); falling back to the previous one", name, problem)
        # Anything newer than the resume point is from a future this run will overwrite.
        for name in names:
            step = step_of(name)
            if step is not None and (chosen is None or step > (step_of(chosen) or 0)):
                log.warning("removing checkpoint %s, newer than the resume point", name)
                shutil.rmtree(self.directory / name, ignore_errors=True)
        if chosen is not None:
            log.info("resuming from checkpoint %s", self.directory / chosen)
            self._point_latest_to(chosen)
        return chosen

    def _read_latest(self) -> str | None:
        assert self.directory is not None
        try:
            return (self.directory / LATEST).read_text().strip() or None
        except OSError:
            return None

    def save(self, progress: TrainingProgress, state: TrainState, blocking: bool) -> None:
        """Checkpoint `progress.step`; returns once training may continue.

        Async mode hands the save to the writer thread (see the class docstring); `blocking` (the
        emergency and final saves) writes straight from the live tensors, without a copy, and
        returns once the checkpoint is committed.
        """
        if self.directory is None:
            return
        started = time.perf_counter()
        self.wait()
        if progress.step == self.last_committed_step:
            return
        # Before the first optimizer step DCP initialises the optimizer state by stepping it, which
        # must not happen beside training; such a save is written in the caller.
        if blocking or not self.async_mode or not state.optimizer.state:
            self._write(progress, state, staged=None)
            self._report_blocked(time.perf_counter() - started)
            return
        staged: Future[None] = Future()
        finished = self._writer.submit(self._write, progress, state, staged)
        self._pending = _PendingSave(finished, progress, started)
        self._staging = staged
        self._blocked_s = time.perf_counter() - started

    def _write(self, progress: TrainingProgress, state: TrainState, staged: Future[None] | None) -> None:
        """Collect, copy (when `staged` is given, then resolved), write and commit one checkpoint."""
        assert self.directory is not None
        try:
            state_dict: dict[str, Any] = {"train": state.state_dict()}
            if staged is not None:
                if self._buffers is None:
                    self._buffers = _create_cpu_state_dict(state_dict, pin_memory=torch.cuda.is_available())
                state_dict = _copy_state_dict(state_dict, self._buffers)
        except BaseException as error:
            if staged is not None:
                staged.set_exception(error)
            raise
        if staged is not None:
            staged.set_result(None)
        save_checkpoint(state_dict, checkpoint_id=self.directory / step_dir_name(progress.step),
                        process_group=self.group)
        self._commit(progress)

    def before_weights_change(self) -> None:
        """Call before every optimizer step: waits (rarely) until a background save has its copy."""
        if self._staging is None:
            return
        started = time.perf_counter()
        staging, self._staging = self._staging, None
        staging.result()
        self._report_blocked(self._blocked_s + time.perf_counter() - started)

    def _report_blocked(self, seconds: float) -> None:
        self.last_save_blocking_s = seconds
        if self.on_blocked is not None:
            self.on_blocked(seconds)

    def poll(self) -> None:
        """Note a finished background save (raising its error, if any); cheap enough for every step."""
        if self._pending is not None and self._pending.finished.done():
            self.wait()

    def wait(self) -> None:
        """Block until the background save (if any) is written and committed."""
        self.before_weights_change()
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        pending.finished.result()
        log.info(
            "checkpoint step %d written in the background in %.3f s",
            pending.progress.step,
            time.perf_counter() - pending.started,
        )

    def _commit(self, progress: TrainingProgress) -> None:
        self.last_committed_step = progress.step
        if not self.is_coordinator:
            return
        assert self.directory is not None
        name = step_dir_name(progress.step)
        path = self.directory / name
        sizes = {entry.name: entry.stat().st_size for entry in path.iterdir() if entry.is_file()}
        _write_durably(path / MANIFEST, Manifest(progress, sizes).to_json())
        self._point_latest_to(name)
        self._apply_retention()
        log.info("checkpoint committed: %s", path)

    def _point_latest_to(self, name: str) -> None:
        assert self.directory is not None
        _write_durably(self.directory / LATEST, name + "\n")

    def _apply_retention(self) -> None:
        assert self.directory is not None
        committed = sorted(
            (step, entry.name)
            for entry in self.directory.iterdir()
            if (step := step_of(entry.name)) is not None and (entry / MANIFEST).is_file()
        )
        kept = {name for _, name in committed[-self.keep :]}
        for entry in self.directory.iterdir():
            if step_of(entry.name) is not None and entry.name not in kept:
                shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        """Finish any background save, stop the writer thread and release the staging buffers."""
        self.wait()
        self._writer.shutdown(wait=True)
        self._buffers = None


def _write_durably(path: Path, text: str) -> None:
    """Write-then-rename, with fsyncs, so readers see the old or the new file, never a torn one."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
