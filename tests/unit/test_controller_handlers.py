"""The kopf-facing glue: what the API sees of many reconciles at once, and what /metrics reports."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import kopf
import pytest
from prometheus_client import REGISTRY

from elasticft.controller import handlers
from elasticft.controller.kube import Conflict, Kube, Refused

JOB = {
    "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob",
    "metadata": {"name": "j", "namespace": "default", "uid": "u-1", "resourceVersion": "7", "generation": 1,
                 "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"command": ["python", "-m", "elasticft_sandbox.standin"], "totalSteps": 10, "globalBatchSize": 8,
             "resources": {"requests": {"nvidia.com/gpu": 1}}, "elastic": {"minWorkers": 1, "maxWorkers": 1},
             "objective": {"maxDuration": "1h"}, "checkpoint": {"volume": {"emptyDir": True}}},
}
NODE = {"metadata": {"name": "spot-0", "labels": {"karpenter.sh/capacity-type": "spot"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


class FakeKube:
    """Answers like the API server; counts node lists; can refuse status writes as a lost race."""

    def __init__(self, list_delay_s: float = 0.0, conflicts: int = 0, refuse: str | None = None) -> None:
        self.node_lists = 0
        self.list_delay_s = list_delay_s
        self.conflicts = conflicts
        self.refuse = refuse
        self.job = copy.deepcopy(JOB)
        self.created: list[str] = []
        self.status_writes = 0
        self._lock = threading.Lock()

    def list_nodes(self) -> list[dict[str, Any]]:
        with self._lock:
            self.node_lists += 1
        time.sleep(self.list_delay_s)
        return [NODE]

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.job)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []

    def patch_job_status(self, namespace: str, name: str, resource_version: str, status: dict[str, Any]) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(f"{namespace}/{name} changed meanwhile")
        self.status_writes += 1
        self.job["status"] = status

    def mark_launched(self, namespace: str, name: str, world: int) -> None:
        self.job["status"]["launchedGeneration"] = world

    def create(self, manifest: dict[str, Any]) -> bool:
        if self.refuse and manifest["kind"] == "Pod":
            raise Refused(f"Pod {manifest['metadata']['name']}: {self.refuse}")
        self.created.append(manifest["metadata"]["name"])
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        pass


@pytest.fixture
def fresh_handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(handlers.kopf, "event", lambda *args, **kwargs: None)
    yield


def job_memo(fake: FakeKube) -> kopf.Memo:
    """The memo kopf hands the job's handlers: a copy of the operator's, as the startup handler made it."""
    return copy.copy(handlers.operator_memo(cast(Kube, fake)))


def test_many_reconciles_at_once_list_the_nodes_once(fresh_handlers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKube(list_delay_s=0.2)
    cache = handlers.NodeCache(cast(Kube, fake))
    assert cache.nodes() == [NODE]
    cache.max_age_s = 0.0  # every look from now on finds the list expired
    results: list[list[dict[str, Any]]] = []
    threads = [threading.Thread(target=lambda: results.append(cache.nodes())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One refresh for the 16 looks (the others used the list being replaced), and every look got nodes.
    assert fake.node_lists == 2
    assert results == [[NODE]] * 16


def test_a_reconcile_that_loses_the_race_is_retried_quietly_and_timed_once(
    fresh_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = job_memo(FakeKube(conflicts=10))

    def timed() -> float:
        return REGISTRY.get_sample_value("elasticft_operator_reconcile_seconds_count") or 0.0

    def conflicts() -> float:
        return REGISTRY.get_sample_value("elasticft_operator_reconciles_total", {"outcome": "conflict"}) or 0.0

    timed_before, conflicts_before = timed(), conflicts()
    handlers.reconcile_job("default", "j", memo)  # no exception: kopf would log it as an ERROR
    assert conflicts() == conflicts_before + handlers.CONFLICT_RETRIES
    assert timed() == timed_before + 1


def test_a_conflict_on_the_first_look_is_followed_by_a_fresh_look_that_writes_status(
    fresh_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKube(conflicts=1)
    handlers.reconcile_job("default", "j", job_memo(fake))
    assert fake.job["status"]["generation"] == 1


def test_a_refused_pod_create_is_shown_and_retried_without_spending_a_restart(
    fresh_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKube(refuse='pods "j-g1-w0" is forbidden: exceeded quota: gpus')
    memo = job_memo(fake)
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: events.append((kw["reason"], kw["message"])))
    for _ in range(4):
        handlers.reconcile_job("default", "j", memo)
    status = fake.job["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CreateRefused")
    assert "exceeded quota: gpus" in ready["message"]
    assert [r for r, _ in events].count("CreateRefused") == 1
    assert status["restarts"] == 0 and status["preemptions"] == 0 and status["launchedGeneration"] == 0
    fake.refuse = None
    memory = handlers.job_memory(memo)
    assert memory.refusal is not None
    memory.refusal = replace(memory.refusal, retry_at=memory.refusal.retry_at - timedelta(hours=1))  # backoff over
    handlers.reconcile_job("default", "j", memo)
    assert "j-g1-w0" in fake.created and memory.refusal is None


def test_a_pod_taken_before_the_next_look_counts_as_preempted(
    fresh_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The world counts as launched once its creates went through, not only once a look sees its pods: a
    # spot reclaim with a notice shorter than the reconcile interval leaves no pod for the next look.
    fake = FakeKube()
    memo = job_memo(fake)
    events: list[str] = []
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **kw: events.append(kw["reason"]))
    for _ in range(4):  # the claim first, then the worker
        if "j-g1-w0" not in fake.created:
            handlers.reconcile_job("default", "j", memo)
    assert fake.job["status"]["launchedGeneration"] == 1
    handlers.reconcile_job("default", "j", memo)  # list_pods finds no pod: it was taken meanwhile
    status = fake.job["status"]
    assert status["preemptions"] == 1 and status["restarts"] == 0 and status["generation"] == 2
    assert "Preempted" in events


def test_a_finished_job_is_left_alone_by_the_timer(fresh_handlers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKube()
    memo = job_memo(fake)
    handlers.reconcile_job("default", "j", memo)
    fake.job["status"]["phase"] = "Succeeded"
    handlers.reconcile_job("default", "j", memo)  # the look that finishes it (completionTime, workers released)
    writes = fake.status_writes
    for _ in range(3):
        handlers.reconcile_job("default", "j", memo)
    assert fake.status_writes == writes and fake.job["status"]["phase"] == "Succeeded"
