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
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import psutil


class ProcessTable:
    """Parent -> children of every process on the machine, from one scan shared by all trees for `max_age_s`.

    Finding one tree's descendants means reading every process's parent (`/proc/*/stat`); done per pod
    every second, 200 pods cost some 100 000 reads a second in the process that also serves the API.
    """

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._taken = -float("inf")
        self._children: dict[int, list[int]] = {}

    def descendants(self, pid: int) -> list[int]:
        """Pids below `pid` as of a scan at most `max_age_s` old."""
        with self._lock:
            if time.monotonic() - self._taken > self.max_age_s:
                children: dict[int, list[int]] = defaultdict(list)
                for process in psutil.process_iter(["ppid"]):
                    children[process.info["ppid"]].append(process.pid)
                self._children, self._taken = children, time.monotonic()
            table = self._children
        found, frontier = [], [pid]
        while frontier:
            below = [child for parent in frontier for child in table.get(parent, ())]
            found += below
            frontier = below
        return found


class ProcessTree:
    """The main process of a container and every descendant seen so far."""

    def __init__(self, pid: int, record: Path, table: ProcessTable | None = None) -> None:
        self.pid = pid
        self.record = record
        self.table = table
        self._members: dict[int, psutil.Process] = {}
        self.refresh()

    def refresh(self, fresh: bool = True) -> None:
        """Remember the current descendants (identity includes start time, so reused pids are not hit);
        `fresh=False` reads them from the shared `table`'s latest scan instead of scanning now.

        The members are also written to `record`, so that `sandbox down` can still find them if the
        sandbox itself was killed without cleaning up.
        """
        try:
            root = psutil.Process(self.pid)
            if fresh or self.table is None:
                found = [root, *root.children(recursive=True)]
            else:
                found = [root]
                for pid in self.table.descendants(self.pid):
                    if pid not in self._members:
                        with contextlib.suppress(psutil.Error):
                            found.append(psutil.Process(pid))
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
