"""Pod logs served from the files a kubelet writes under `{logs_dir}/{ns}/{pod}/{container}.log`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def log_file(k8s: ApiClient, logs_dir: Path) -> Path:
    CoreV1Api(k8s).create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "main", "image": "x"}]}})
    path = logs_dir / "default" / "p" / "main.log"
    path.parent.mkdir(parents=True)
    path.write_text("one\ntwo\nthree\n")
    return path


def test_logs_and_tail_lines(k8s: ApiClient, log_file: Path) -> None:
    core = CoreV1Api(k8s)
    assert core.read_namespaced_pod_log("p", "default") == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", "default", container="main", tail_lines=1) == "three\n"


def test_logs_of_a_container_that_has_not_started_are_400(k8s: ApiClient, logs_dir: Path) -> None:
    CoreV1Api(k8s).create_namespaced_pod("default", {"metadata": {"name": "q"}, "spec": {"containers": [
        {"name": "main", "image": "x"}]}})
    with pytest.raises(ApiException) as caught:
        CoreV1Api(k8s).read_namespaced_pod_log("q", "default")
    assert caught.value.status == 400


def test_follow_streams_new_lines_until_the_pod_terminates(k8s: ApiClient, log_file: Path) -> None:
    core = CoreV1Api(k8s)

    def kubelet() -> None:
        time.sleep(0.3)
        with log_file.open("a") as log:
            log.write("four\n")
        time.sleep(0.3)
        core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Succeeded"}})

    thread = threading.Thread(target=kubelet)
    thread.start()
    response = core.read_namespaced_pod_log("p", "default", follow=True, _preload_content=False)
    streamed = response.data.decode()
    thread.join()
    assert streamed == "one\ntwo\nthree\nfour\n"
