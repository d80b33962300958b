"""`CheckpointManager`: save, load, retention and async mode of the trainer's checkpoints.

Layout under the checkpoint directory::

    step-00000120/          torch.distributed.checkpoint files (.metadata, __R_0.distcp)
        trainer.json        job, progress, size and xxh3-128 digest of every file, written last
    rejected-step-00000150/ a checkpoint a load refused, kept for inspection, never tried again
    latest                  "step-00000120", replaced atomically after trainer.json

A step directory is *committed* once `trainer.json` exists; `latest` is written last, so a crash at
any moment leaves `latest` naming a complete checkpoint. Each rank digests its files while DCP writes
them (`DigestingFileSystem`, in the writer thread of an async save), and rank 0 records every digest
at commit. On load, a checkpoint whose files differ from the record (garbled, truncated, partial), that
another job wrote, or that DCP cannot load into this model (unpicklable, wrong shape, missing key) is
renamed `rejected-...` and the previous one is tried. DCP stores each tensor by its fully qualified
name, so a checkpoint written by W ranks loads into any other world size.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

import torch
import torch.distributed as dist
import xxhash
from torch import nn
from torch.distributed._state_dict_utils import _copy_state_dict, _create_cpu_state_dict
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystem, FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as load_checkpoint
from torch.distributed.checkpoint.state_dict_saver import save as save_checkpoint
from torch.distributed.checkpoint.stateful import Stateful

log = logging.getLogger(__name__)

LATEST = "latest"
MANIFEST = "trainer.json"
REJECTED_PREFIX = "rejected-"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_DIGEST_CHUNK = 1 << 20
#: How a step's checkpoint is written: "periodic" in the background, "emergency" and "final" blocking.
SaveKind = Literal["periodic", "emergency", "final"]


@dataclass(frozen=True)
class TrainingProgress:
    """Everything besides tensors that a resumed run needs, kept in the checkpoint's manifest."""

    step: int
    consumed_samples: int
    world_sizes: tuple[int, ...] = ()
    initial_loss: float | None = None
    loss: float | None = None

    def after_step(self, samples: int, loss: float) -> TrainingProgress:
        """The progress one step later: `samples` more consumed, `loss` the last; the first step's is the initial."""
        return replace(
            self,
            step=self.step + 1,
            consumed_samples=self.consumed_samples + samples,
            initial_loss=loss if self.initial_loss is None else self.initial_loss,
            loss=loss,
        )


@dataclass(frozen=True)
class FileRecord:
    """One checkpoint file as written: its size and xxh3-128 hex digest."""

    size: int
    digest: str


@dataclass(frozen=True)
class Manifest:
    """Contents of `trainer.json`: which job wrote it, the progress, and every file as written."""

    job: str
    progress: TrainingProgress
    files: dict[str, FileRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        progress = dict(raw["progress"])
        progress["world_sizes"] = tuple(progress["world_sizes"])
        files = {str(name): FileRecord(int(record["size"]), str(record["digest"]))
                 for name, record in raw["files"].items()}
        return Manifest(str(raw["job"]), TrainingProgress(**progress), files)


class _DigestingStream(io.RawIOBase):
    """A binary file whose every written byte also feeds an xxh3-128 digest."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.digest = xxhash.xxh3_128()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        written = self.raw.write(data)
        self.size += written
        return written

    def tell(self) -> int:
        return self.raw.tell()

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()


class DigestingFileSystem(FileSystem):
    """DCP's local file system, recording the digest of each file it writes (by file name).

    The digest is taken from the bytes on their way to the file, in whatever thread writes them, so a
    checkpoint is never read back to be hashed and an async save stays off the training thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, FileRecord] = {}

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Iterator[io.IOBase]:
        if "w" not in mode:
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        with open(path, mode) as raw:
            stream = _DigestingStream(raw)
            yield stream
            raw.flush()
        self.written[Path(path).name] = FileRecord(stream.size, stream.digest.hexdigest())

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        super().rename(path, new_path)
        record = self.written.pop(Path(path).name, None)
        if record is not None:
            self.written[Path(new_path).name] = record


def file_digest(path: Path) -> str:
    """xxh3-128 hex digest of a file's contents, the same as `DigestingFileSystem` records."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(_DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def checkpoint_problem(path: Path, job: str) -> str | None:
    """Why the checkpoint at `path` cannot be loaded by `job`, or None if it is as committed."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return "not committed (no trainer.json)"
    try:
        manifest = Manifest.from_json(manifest_path.read_text())
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return f"unreadable trainer.json: {error!r}"
    if manifest.job != job:
        return f"written by job {manifest.job!r}, not {job!r}"
    if ".metadata" not in manifest.files:
        return "manifest lists no .metadata"
    for name, record in sorted(manifest.files.items()):
        file_path = path / name
        if not file_path.is_file():
            return f"missing {name}"
        actual = file_path.stat().st_size
        if actual != record.size:
            return f"{name} has {actual} bytes, {record.size} were committed (truncated or partial)"
        if file_digest(file_path) != record.digest:
            return f"{name} does not match its committed checksum (garbled)"
    try:
        FileSystemReader(path).read_metadata()
    except Exception as error:  # any unpickling failure means the same thing: unusable
        return f"unreadable .metadata: {error!r}"
    return None


class NoUsableCheckpoint(RuntimeError):
    """Every committed checkpoint failed to load; the process must restart to begin from step 0."""


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
    """Owns the checkpoint directory: when to save, collective save/load, commit on rank 0, retention.

    All ranks call `load`, `maybe_save`, `save` and `wait` at the same steps (they are collective); only
    rank 0 touches `latest`, manifests and retention. Saves run on their own gloo group so that background
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
        self,
        directory: str,
        job: str,
        keep: int,
        async_mode: bool,
        *,
        interval_steps: int = 0,
        interval_seconds: float = 0.0,
        on_blocked: Callable[[float], None] | None = None,
    ) -> None:
        """`job` is recorded in every manifest (a load refuses other jobs' checkpoints); `interval_steps`
        and `interval_seconds` time the periodic saves (0: never by that measure); `on_blocked`
        receives, per save, the seconds training waited for it."""
        self.directory = Path(directory) if directory else None
        self.job = job
        self.on_blocked = on_blocked
        self.keep = keep
        self.async_mode = async_mode
        self.interval_steps = interval_steps
        self.interval_seconds = interval_seconds
        # Start of the current periodic-save interval: the resume, then each periodic save.
        self._interval_started = time.monotonic()
        self.is_coordinator = dist.get_rank() == 0
        self.group = dist.new_group(backend="gloo")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._buffers: dict[str, Any] | None = None
        self._pending: _PendingSave | None = None
        self._staging: Future[None] | None = None
        self._blocked_s = 0.0
        self.last_committed_step: int | None = None
        self.last_save_blocking_s = 0.0
        # Newest step a load refused in this process (what the operator reports), None if none.
        self.last_rejected_step: int | None = None
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

        Rank 0 chooses and every rank loads the same one, even if their views of the volume differ. A
        load that fails on any rank rejects that checkpoint (renamed, never tried again) and the
        previous one is tried. When a load failed and nothing older is left, `state` may hold part of
        the rejected checkpoint, so this raises `NoUsableCheckpoint` instead of training from it; the
        next start finds no candidate and begins from step 0. The periodic-save clock starts once the
        load is done: from then on the state on disk is the state in memory.
        """
        resumed = self._load_newest(state)
        self._interval_started = time.monotonic()
        return resumed

    def _load_newest(self, state: TrainState) -> tuple[TrainingProgress, float] | None:
        """`load`, before the clock starts."""
        if self.directory is None:
            return None
        load_failed = False
        while True:
            # Rank 0's choice, and what it rejected on the way, so that every rank reports the same.
            choice: list[tuple[str | None, int | None] | None] = [
                (self._choose_resume_point(), self.last_rejected_step) if self.is_coordinator else None]
            dist.broadcast_object_list(choice, src=0)
            name, self.last_rejected_step = choice[0] or (None, None)
            if name is None:
                if load_failed:
                    raise NoUsableCheckpoint("every committed checkpoint failed to load; restart from step 0")
                return None
            started = time.perf_counter()
            path = self.directory / name
            problem = self._try_load(path, state)
            if problem is None:
                progress = Manifest.from_json((path / MANIFEST).read_text()).progress
                self.last_committed_step = progress.step
                return progress, time.perf_counter() - started
            load_failed = True
            self.last_rejected_step = step_of(name)
            if self.is_coordinator:
                self._reject(name, problem)

    def _try_load(self, path: Path, state: TrainState) -> str | None:
        """Load `path` into `state` on every rank; None if all ranks succeeded, else why not."""
        problem: str | None = None
        try:
            load_checkpoint({"train": state}, checkpoint_id=path, process_group=self.group)
        # Unpickling, shape, missing key: all mean this checkpoint is unusable. DCP gathers every rank's
        # error into a CheckpointException, which is a BaseException.
        except (Exception, CheckpointException) as error:
            problem = f"load failed: {error!r}"[:500]
        failed = torch.tensor([0 if problem is None else 1])
        dist.all_reduce(failed, op=dist.ReduceOp.MAX, group=self.group)
        if failed.item() and problem is None:
            problem = "load failed on another rank"
        return problem

    def _choose_resume_point(self) -> str | None:
        assert self.directory is not None
        names = [entry.name for entry in self.directory.iterdir() if entry.is_dir()]
        chosen: str | None = None
        for name in resume_order(names, self._read_latest()):
            problem = checkpoint_problem(self.directory / name, self.job)
            if problem is None:
                chosen = name
                break
            if (self.directory / name / MANIFEST).is_file():
                self.last_rejected_step = step_of(name)
                self._reject(name, problem)
            else:
                log.warning("checkpoint %s is unusable (%s); falling back to the previous one", name, problem)
        # Anything newer than the resume point is from a future this run will overwrite.
        for name in names:
            step = step_of(name)
            if step is not None and (self.directory / name).is_dir() and (
                chosen is None or step > (step_of(chosen) or 0)
            ):
                log.warning("removing checkpoint %s, newer than the resume point", name)
                shutil.rmtree(self.directory / name, ignore_errors=True)
        if chosen is not None:
            log.info("resuming from checkpoint %s", self.directory / chosen)
            self._point_latest_to(chosen)
        return chosen

    def _reject(self, name: str, problem: str) -> None:
        """Rename a committed checkpoint that cannot be loaded, so that no later start tries it again."""
        assert self.directory is not None
        log.warning("checkpoint %s is unusable (%s); rejected, falling back to the previous one", name, problem)
        target = self.directory / (REJECTED_PREFIX + name)
        shutil.rmtree(target, ignore_errors=True)
        (self.directory / name).rename(target)
        _write_durably(target / "rejected.txt", problem + "\n")

    def _read_latest(self) -> str | None:
        assert self.directory is not None
        try:
            return (self.directory / LATEST).read_text().strip() or None
        except OSError:
            return None

    def save_timer_due(self) -> bool:
        """This rank's vote for a save by time: `interval_seconds` passed since the resume or the last periodic save."""
        return 0 < self.interval_seconds <= time.monotonic() - self._interval_started

    def should_save(self, step: int, total_steps: int, *, stopping: bool, timer_voted: bool) -> SaveKind | None:
        """Whether the checkpoint of `step` (just trained) is written now, and how; the first rule that holds:

        1. final: `step` is the job's last, blocking (the summary says completed only once it is saved);
        2. emergency: the ranks agreed to stop (a SIGTERM somewhere), blocking, before the process exits;
        3. periodic: every `interval_steps` steps, or when some rank's `save_timer_due` voted, in the background.
        """
        if step >= total_steps:
            return "final"
        if stopping:
            return "emergency"
        if timer_voted or (self.interval_steps > 0 and step % self.interval_steps == 0):
            return "periodic"
        return None

    def maybe_save(
        self, progress: TrainingProgress, state: TrainState, total_steps: int, *, stopping: bool, timer_voted: bool
    ) -> None:
        """Save `progress.step` as `should_save` decides; every rank calls it after every step."""
        kind = self.should_save(progress.step, total_steps, stopping=stopping, timer_voted=timer_voted)
        if kind is None:
            return
        self.save(progress, state, blocking=kind != "periodic")
        if kind == "periodic":
            self._interval_started = time.monotonic()

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
        writer = FileSystemWriter(self.directory / step_dir_name(progress.step))
        writer.fs = files = DigestingFileSystem()
        save_checkpoint(state_dict, storage_writer=writer, process_group=self.group)
        written: list[dict[str, FileRecord]] = [{} for _ in range(dist.get_world_size(self.group))]
        dist.all_gather_object(written, files.written, group=self.group)
        self._commit(progress, {name: record for rank_files in written for name, record in rank_files.items()})

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

    def _commit(self, progress: TrainingProgress, files: dict[str, FileRecord]) -> None:
        self.last_committed_step = progress.step
        if not self.is_coordinator:
            return
        assert self.directory is not None
        name = step_dir_name(progress.step)
        path = self.directory / name
        _write_durably(path / MANIFEST, Manifest(self.job, progress, files).to_json())
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
