"""The final JSON summary: one stdout line and the container's termination message.

The operator reads it from `status.containerStatuses[].state.terminated.message` to tell a job that
finished all its steps from one that stopped early, independent of exit codes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

SUMMARY_PREFIX = "ELASTICFT_SUMMARY "
StopReason = Literal["completed", "sigterm", "peer-stopped"]


@dataclass(frozen=True)
class RunSummary:
    """How this run of the trainer ended (the shape is a contract with the operator)."""

    completed: bool
    step: int
    total_steps: int
    samples: int
    loss: float
    initial_loss: float
    world_sizes: list[int]
    reason: StopReason

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def parse_summary_line(line: str) -> RunSummary | None:
    """The summary in a log line, or None if the line is not one."""
    if not line.startswith(SUMMARY_PREFIX):
        return None
    return RunSummary(**json.loads(line[len(SUMMARY_PREFIX) :]))


def publish(summary: RunSummary, termination_log: str) -> None:
    """Print the summary line and, if the operator asked, write it as the termination message."""
    print(SUMMARY_PREFIX + summary.to_json(), flush=True)
    if termination_log:
        Path(termination_log).write_text(summary.to_json())
