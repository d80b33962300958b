"""`elasticft sandbox up` / `down` as a user runs them from two shells."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ELASTICFT = [sys.executable, "-m", "elasticft.cli"]


def pod_manifest(marker: str) -> str:
    # The marker in the command line lets the test find the pod's process among all processes.
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  containers:
    - name: main
      image: python:3.11
      command: ["python", "-c", "import time, sys; time.sleep(600)", "{marker}"]
"""


def processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []) and process.status() != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def wait_until(check: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout_s} s")


def sandbox_down(state_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [*ELASTICFT, "sandbox", "down", "--state-dir", str(state_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


@pytest.fixture
def sandbox_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, str]]:
    """`elasticft sandbox up` in the background; yields (process, state dir, KUBECONFIG path)."""
    state_dir = tmp_path / "state"
    up = subprocess.Popen(
        [*ELASTICFT, "sandbox", "up", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache")},
    )
    try:
        assert up.stdout is not None
        first_line = up.stdout.readline().strip()
        assert first_line.startswith("export KUBECONFIG="), first_line
        yield up, state_dir, first_line.removeprefix("export KUBECONFIG=")
    finally:
        if up.poll() is None:
            up.kill()
        up.wait(30)
        sandbox_down(state_dir)


def start_sleeper(kubeconfig: str, tmp_path: Path, marker: str) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(pod_manifest(marker))
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(tmp_path / "kube-cache")}
    nodes = subprocess.run(["kubectl", "get", "nodes"], env=env, capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    assert "spot-0" in nodes.stdout and "on-demand-0" in nodes.stdout and "Ready" in nodes.stdout
    applied = subprocess.run(
        ["kubectl", "apply", "-f", str(manifest)], env=env, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr

    def running() -> bool:
        get = ["kubectl", "get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"]
        return subprocess.run(get, env=env, capture_output=True, text=True, timeout=60).stdout == "Running"

    wait_until(running)
    assert processes_with(marker)


def test_up_serves_kubectl_and_down_leaves_no_process(
    sandbox_up: tuple[subprocess.Popen[str], Path, str], tmp_path: Path
) -> None:
    up, state_dir, kubeconfig = sandbox_up
    marker = f"marker-{uuid.uuid4()}"
    start_sleeper(kubeconfig, tmp_path, marker)

    down = sandbox_down(state_dir)
    assert down.returncode == 0, down.stderr
    assert up.wait(30) == 0
    assert processes_with(marker) == []
    assert not (state_dir / "sandbox.pid").exists()


def test_down_cleans_up_after_an_up_that_was_killed(
    sandbox_up: tuple[subprocess.Popen[str], Path, str], tmp_path: Path
) -> None:
    up, state_dir, kubeconfig = sandbox_up
    marker = f"marker-{uuid.uuid4()}"
    start_sleeper(kubeconfig, tmp_path, marker)
    up.send_signal(signal.SIGKILL)
    up.wait(30)
    assert processes_with(marker), "a killed `up` cannot stop its pods itself"

    down = sandbox_down(state_dir)
    assert down.returncode == 0, down.stderr
    assert "stray" in down.stdout
    wait_until(lambda: not processes_with(marker), timeout_s=5)
