"""Durations as users write them in Kubernetes objects: Go-style `1h30m`, `90s`, `2.5h`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|h|m|s))+$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

DURATION_PATTERN = _WHOLE.pattern


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string such as `1h30m` or `45s`; ValueError if malformed."""
    if not _WHOLE.match(text):
        raise ValueError("must be a duration such as 90s, 15m or 1h30m")
    return float(sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """The shortest Go-style form of a non-negative number of seconds, e.g. 5400 -> `1h30m`."""
    total = round(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check), Field(json_schema_extra={"pattern": DURATION_PATTERN})]
"""A duration kept as the user wrote it (so status and YAML round-trip), checked on input; the CRD
carries the same pattern so the API server rejects a malformed one too."""
