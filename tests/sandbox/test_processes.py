"""A container's process tree, sampled from one machine-wide scan shared by every pod."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from elasticft_sandbox.processes import ProcessTable, ProcessTree

# A parent whose child starts its own session, as torchrun's workers do.
PARENT = """
import subprocess, sys, time
time.sleep(1)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
time.sleep(60)
"""


def test_a_tree_sampled_from_the_shared_scan_kills_a_child_in_its_own_session(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=True)
    try:
        table = ProcessTable(max_age_s=0.0)
        tree = ProcessTree(parent.pid, tmp_path / "processes.json", table)  # before the child exists
        deadline = time.monotonic() + 20
        while len(tree.alive()) < 2 and time.monotonic() < deadline:
            tree.refresh(fresh=False)
            time.sleep(0.1)
        members = tree.alive()
        assert len(members) == 2 and parent.pid in members
        child = next(pid for pid in members if pid != parent.pid)
        assert child in table.descendants(parent.pid)
        tree.kill_all()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while tree.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tree.alive() == []
    finally:
        parent.kill()
        parent.wait()
