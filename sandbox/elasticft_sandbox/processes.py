"""Signalling a container's processes the way a container runtime would, without a cgroup.

A container's main process runs in its own process group, so SIGTERM reaches it and its ordinary
children. Some children start their own session (torchrun's workers do), and they are orphaned when
their parent dies; the tree is therefore sampled while it runs so that a kill reaches them as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil


class ProcessTree:
    """The main process of a container and every descendant seen so far."""

    def __init__(self, pid: int, record: Path) -> None:
        self.pid = pid
        self.record = record
        self._members: dict[int, psutil.Process] = {}
        self.refresh()

    def refresh(self) -> None:
        """Remember the current descendants (identity includes start time, so reused pids are not hit).

        The members are also written to `record`, so that `sandbox down` can still find them if the
        sandbox itself was killed without cleaning up.
        """
        try:
            root = psutil.Process(self.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        new = [process for process in found if process.pid not in self._members]
        for process in new:
            self._members[process.pid] = process
        if new:
            with contextlib.suppress(psutil.Error, OSError):
                starts = {pid: process.create_time() for pid, process in self._members.items()}
                self.record.write_text(json.dumps(starts))

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the main process's group, as `kill(-pgid)` does."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_all(self) -> None:
        """SIGKILL the group and every remembered descendant that is still the same process."""
        self.refresh()
        self.signal_group(signal.SIGKILL)
        for process in self._members.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running():
                    process.kill()

    def alive(self) -> list[int]:
        """Pids of remembered processes still running (zombies count as gone)."""
        running = []
        for pid, process in self._members.items():
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
        return running


def kill_recorded(records: Iterable[Path]) -> int:
    """SIGKILL the processes listed in `ProcessTree` records that are still the same processes.

    Returns how many were killed.
    """
    killed = 0
    for record in records:
        try:
            starts: dict[str, float] = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        for pid, start in starts.items():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(int(pid))
                if process.create_time() == start and process.status() != psutil.STATUS_ZOMBIE:
                    process.kill()
                    killed += 1
    return killed
