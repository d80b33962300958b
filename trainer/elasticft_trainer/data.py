"""Token corpus and the exact-resume sampler.

The corpus is cut into fixed windows of `seq_len + 1` tokens; a *sample* is one window, named by its
index. The order of an epoch is a permutation drawn from (seed, epoch). Training consumes that order
as one global stream: global step s takes stream positions [s*B, (s+1)*B) for global batch B, and rank
r of W takes a fixed contiguous slice of those B positions. Because the only state is the global count
of consumed samples, a restart at any world size continues the same stream: every sample is seen
exactly once per epoch, whatever the sequence of world sizes.
"""

from __future__ import annotations

import functools
import importlib.util
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class SampleRef:
    """One sample of the stream: its epoch and its window index in the corpus."""

    epoch: int
    index: int


PACKAGE_PREFIX = "package:"


def packaged_path(reference: str) -> Path:
    """A model or dataset reference as a path: `package:MODULE[/PATH]` is PATH inside the installed Python
    package MODULE (data shipped on a package registry, read offline); anything else is a path as given.

    The package is located, never imported: only its files are used, so its own code (and whatever that
    code imports) does not have to work here.
    """
    if not reference.startswith(PACKAGE_PREFIX):
        return Path(reference)
    module, _, inner = reference.removeprefix(PACKAGE_PREFIX).partition("/")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{reference}: no installed Python package {module!r}")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise FileNotFoundError(f"{reference}: {path} does not exist")
    return path


def corpus_files(dataset: str) -> list[Path]:
    """Files of the corpus in a stable order; empty `dataset` means the Python stdlib sources.

    The stdlib is on every machine that runs the trainer, so the default corpus needs no download;
    only its top level is read so that site-packages (which lives below it) never leaks in.
    """
    if not dataset:
        return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    root = packaged_path(dataset)
    if root.is_file():
        return [root]
    files = sorted(path for path in root.rglob("*") if path.is_file())
    if not files:
        raise FileNotFoundError(f"dataset {dataset!r} contains no files")
    return files


def read_corpus(files: list[Path], max_bytes: int) -> str:
    """Concatenated text of `files`, cut at `max_bytes`; undecodable bytes are dropped."""
    chunks: list[bytes] = []
    remaining = max_bytes
    for path in files:
        if remaining <= 0:
            break
        chunk = path.read_bytes()[:remaining]
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks).decode("utf-8", errors="ignore")


def encode_bytes(text: str) -> list[int]:
    """Byte-level tokenizer: token id = UTF-8 byte value (vocabulary 256)."""
    return list(text.encode("utf-8"))


@dataclass(frozen=True)
class TokenWindows:
    """The corpus as `num_samples` non-overlapping windows of `seq_len + 1` tokens."""

    tokens: torch.Tensor
    seq_len: int

    @property
    def num_samples(self) -> int:
        return int(self.tokens.numel()) // (self.seq_len + 1)

    @property
    def targets_per_sample(self) -> int:
        """Predictions the loss sums over in one sample: every next token."""
        return self.seq_len

    def batch(self, samples: list[SampleRef]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, each of shape (len(samples), seq_len)."""
        width = self.seq_len + 1
        windows = torch.stack([self.tokens[s.index * width : (s.index + 1) * width] for s in samples])
        return windows[:, :-1], windows[:, 1:]


def build_windows(dataset: str, max_bytes: int, seq_len: int, encode: Callable[[str], list[int]]) -> TokenWindows:
    """Read, tokenize and window the corpus; fails early if it cannot fill one sample."""
    text = read_corpus(corpus_files(dataset), max_bytes)
    windows = TokenWindows(torch.tensor(encode(text), dtype=torch.long), seq_len)
    if windows.num_samples < 1:
        raise ValueError(f"corpus {dataset or 'stdlib'!r} is shorter than one sample of {seq_len + 1} tokens")
    return windows


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, num_samples: int) -> tuple[int, ...]:
    """The permutation of window indices for one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    return tuple(int(i) for i in rng.permutation(num_samples))


def rank_slice(global_batch: int, world_size: int, rank: int) -> tuple[int, int]:
    """Offsets [start, stop) of `rank`'s share of a global batch.

    Shares differ by at most one sample when W does not divide B; the loss is scaled by the global
    batch (see `train.py`), so unequal shares still give the exact global-mean gradient.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    if global_batch < world_size:
        raise ValueError(f"global batch {global_batch} is smaller than world size {world_size}")
    base, extra = divmod(global_batch, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def rank_samples(
    seed: int, consumed: int, global_batch: int, world_size: int, rank: int, num_samples: int
) -> list[SampleRef]:
    """Samples `rank` trains on in the step that starts after `consumed` global samples."""
    start, stop = rank_slice(global_batch, world_size, rank)
    refs = []
    for position in range(consumed + start, consumed + stop):
        epoch, offset = divmod(position, num_samples)
        refs.append(SampleRef(epoch, epoch_order(seed, epoch, num_samples)[offset]))
    return refs


def micro_batches(samples: list[SampleRef], micro_batch_size: int) -> list[list[SampleRef]]:
    """Split a rank's share into forward passes of at most `micro_batch_size` (gradient accumulation)."""
    return [samples[i : i + micro_batch_size] for i in range(0, len(samples), micro_batch_size)]
