"""Reading a container log as `kubectl logs` asks: `--timestamps`, `--since`/`--since-time`, `--tail`,
`--limit-bytes`, and `--follow` of complete lines.

The kubelet keeps the log raw in `{container}.log` and the time each line started in `{container}.times`
(one RFC 3339 time per line; lines without one, such as a start error, take the log's modification time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import ApiError


def _parse_time(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    body = text.strip().rstrip("Z")
    whole, _, fraction = body.partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return moment + timedelta(microseconds=int((fraction + "000000")[:6])) if fraction else moment


@dataclass(frozen=True)
class LogQuery:
    """The query parameters of `pods/{name}/log` that select and decorate lines."""

    timestamps: bool = False
    since: datetime | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], now: datetime) -> LogQuery:
        try:
            since = None
            if query.get("sinceSeconds"):
                since = now - timedelta(seconds=int(query["sinceSeconds"]))
            elif query.get("sinceTime"):
                since = _parse_time(query["sinceTime"])
            tail = int(query["tailLines"]) if query.get("tailLines") else None
            limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        except ValueError as error:
            raise ApiError(400, f"invalid log options: {error}") from error
        return cls(query.get("timestamps") == "true", since, tail, limit)


class ContainerLog:
    """One log file and its line times, read from line `start` on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times_path = path.with_suffix(".times")
        self.lines_read = 0
        self.bytes_read = 0

    def _times(self) -> list[str]:
        try:
            return self.times_path.read_text().split()
        except OSError:
            return []

    def read_lines(self, complete_only: bool) -> list[tuple[str, bytes]]:
        """(time, line) of the lines written since the last read; the last partial line only if asked."""
        with self.path.open("rb") as log:
            log.seek(self.bytes_read)
            content = log.read()
        lines = content.splitlines(keepends=True)
        if complete_only and lines and not lines[-1].endswith(b"\n"):
            lines.pop()
        times = self._times()
        fallback = datetime.fromtimestamp(self.path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        result = []
        for line in lines:
            index = self.lines_read
            result.append((times[index] if index < len(times) else fallback, line))
            self.lines_read += 1
            self.bytes_read += len(line)
        return result


def render(lines: list[tuple[str, bytes]], query: LogQuery) -> bytes:
    """The selected lines as the response body."""
    if query.since is not None:
        since = query.since
        lines = [(time, line) for time, line in lines if _parse_time(time) >= since]
    if query.tail_lines is not None:
        lines = lines[-query.tail_lines:] if query.tail_lines > 0 else []
    body = b"".join((time.encode() + b" " if query.timestamps else b"") + line for time, line in lines)
    return body[:query.limit_bytes] if query.limit_bytes is not None else body
