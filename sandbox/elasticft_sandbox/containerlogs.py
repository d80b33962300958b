"""Container logs with the time each line was written, as a container runtime keeps them.

The kubelet copies a container's output into `{container}.log` (raw, what `kubectl logs` shows) and
writes, for every line that starts, its RFC 3339 time with nanoseconds into `{container}.times` (one
per line, in order), so that `kubectl logs --timestamps` and `--since` can be answered (see the API
server's `podlogs.py`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

CHUNK = 65536


def times_path(log_path: Path) -> Path:
    """`main.times` beside `main.log` (and `main.previous.times` beside `main.previous.log`)."""
    return log_path.with_suffix(".times")


def rfc3339_nano(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


async def copy_output(reader: asyncio.StreamReader, log_path: Path) -> None:
    """Append the process's output to its log, and the time of each line start to the times file."""
    at_line_start = not log_path.exists() or log_path.stat().st_size == 0
    with log_path.open("ab") as log, times_path(log_path).open("a") as times:
        while chunk := await reader.read(CHUNK):
            starts = int(at_line_start) + chunk.count(b"\n", 0, len(chunk) - 1)
            log.write(chunk)
            log.flush()
            if starts:
                times.write(f"{rfc3339_nano(datetime.now(UTC))}\n" * starts)
                times.flush()
            at_line_start = chunk.endswith(b"\n")
