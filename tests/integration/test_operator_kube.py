"""The operator's API client against the emulator: as many callers at once as kopf has workers."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes.client import Configuration

from elasticft.controller.handlers import MAX_WORKERS
from elasticft.controller.kube import Kube, pooled_client
from elasticft_sandbox.apiserver import ApiServerThread


def test_every_worker_thread_keeps_its_connection(caplog: pytest.LogCaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with ApiServerThread() as server:
        monkeypatch.setattr(Configuration, "_default", Configuration(host=server.url))
        kube = Kube(pooled_client(MAX_WORKERS))
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"), \
                ThreadPoolExecutor(MAX_WORKERS) as pool:
            for _ in range(5):
                nodes = list(pool.map(lambda _: kube.list_nodes(), range(4 * MAX_WORKERS)))
                assert nodes == [[]] * (4 * MAX_WORKERS)
    # urllib3 says so each time it has to drop a connection it opened because its pool was full.
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
