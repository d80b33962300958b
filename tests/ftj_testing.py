"""Helpers shared by the test layers: polling, and driving FineTuneJobs through a LocalCluster."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from elasticft_sandbox.cluster import Job, LocalCluster

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout_s: float = 20.0, interval_s: float = 0.05,
               what: str = "condition") -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"{what} not met within {timeout_s} s")


def apply_job(cluster: LocalCluster, namespace: str, job: dict[str, Any]) -> None:
    """`kubectl apply` the namespace, then the job into it."""
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(namespace_doc))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(job))


def job_status(job: Job | None) -> dict[str, Any]:
    return dict((job or {}).get("status") or {})


def job_events(cluster: LocalCluster, namespace: str, name: str) -> list[str]:
    """`REASON: message` of every Event about the job, as `kubectl describe` lists them."""
    out = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}",
                          "-o", "json")
    return [f"{e['reason']}: {e['message']}" for e in json.loads(out)["items"]]


def worker_pods(cluster: LocalCluster, namespace: str, name: str) -> list[Job]:
    return cluster.pods(namespace, f"elasticft.io/job={name},elasticft.io/role=worker")


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real kubectl against the current KUBECONFIG, its result kept for the test to judge."""
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def kubectl_ok(*args: str, stdin: str | None = None) -> str:
    """kubectl that must succeed: its stdout."""
    result = kubectl(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout
