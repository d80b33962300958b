"""Spot traces: availability (or surviving-instance) counts per tick, optionally with prices.

The format is the one of `skypilot-org/spot-traces` (see `elasticft/data/README.md`):
`{"metadata": {"gap_seconds": G}, "data": [counts...], "prices": [USD/h...]?}`. A subset of that
repository's traces ships inside the package (`SPOT_TRACES_DIR`); any file in the format can be loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: The traces packaged with elasticft (package data, so an installed wheel carries them). setuptools
#: installs a wheel as plain files, so the package's resource folder is a real directory.
SPOT_TRACES_DIR = Path(str(resources.files("elasticft") / "data" / "spot-traces"))


@dataclass(frozen=True)
class SpotTrace:
    """Spot instances obtainable at each tick, and the spot price per hour if the trace has one."""

    name: str
    gap_seconds: float
    available: npt.NDArray[np.int64]
    spot_price_per_hour: npt.NDArray[np.float64] | None = None

    @property
    def ticks(self) -> int:
        return int(self.available.shape[0])

    @property
    def hours(self) -> float:
        return self.ticks * self.gap_seconds / 3600.0

    @property
    def max_available(self) -> int:
        return int(self.available.max())


def load_trace(path: Path) -> SpotTrace:
    """Read one trace file; a malformed file raises ValueError naming the file."""
    try:
        document = json.loads(Path(path).read_text())
        gap_seconds = float(document["metadata"]["gap_seconds"])
        available = np.asarray(document["data"], dtype=np.int64)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a spot trace ({error})") from error
    if available.ndim != 1 or available.size == 0 or gap_seconds <= 0 or (available < 0).any():
        raise ValueError(f"{path}: a trace needs a positive gap and a non-empty list of counts >= 0")
    prices = document.get("prices")
    spot_price = None
    if prices is not None:
        spot_price = np.asarray(prices, dtype=np.float64)
        if spot_price.shape != available.shape:
            raise ValueError(f"{path}: 'prices' must have one entry per tick")
    return SpotTrace(Path(path).stem, gap_seconds, available, spot_price)


def load_trace_dir(directory: Path) -> list[SpotTrace]:
    """All `*.json` traces in a folder, sorted by name; an empty folder raises ValueError."""
    paths = sorted(Path(directory).glob("*.json"))
    if not paths:
        raise ValueError(f"{directory}: no *.json spot traces")
    return [load_trace(path) for path in paths]
