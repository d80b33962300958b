"""The process kubelet and service proxy against the API emulator, through the official client and kubectl."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from ftj_testing import eventually
from kubernetes import client, watch
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.sandbox import Sandbox

T = TypeVar("T")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "state", restart_backoff_s=0.2, shutdown_grace_s=2) as running:
        yield running


@pytest.fixture
def core(sandbox: Sandbox) -> Iterator[CoreV1Api]:
    with client.ApiClient(client.Configuration(host=sandbox.url)) as api_client:
        yield CoreV1Api(api_client)




def python_pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {"app": name})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def log_of(core: CoreV1Api, name: str) -> str:
    """The pod's log, or "" while its container has not started (the API answers 400 then)."""
    try:
        text: str = core.read_namespaced_pod_log(name, "default")
    except ApiException:
        return ""
    return text


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def kubectl(sandbox: Sandbox, *args: str) -> str:
    command = ["kubectl", "--kubeconfig", str(sandbox.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


WORKER_SCRIPT = """
import json, os, pathlib, time
print(f"pod={os.environ['POD_NAME']} ns={os.environ['POD_NAMESPACE']} ip={os.environ['POD_IP']} "
      f"node={os.environ['NODE_NAME']} job={os.environ['JOB']}", flush=True)
while not pathlib.Path('/work/go').exists():
    time.sleep(0.05)
ckpt = pathlib.Path(os.environ['CKPT_DIR'])
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / 'step-10').write_text('weights')
summary = json.dumps({'completed': True, 'step': 10})
pathlib.Path(os.environ['TERMINATION_LOG']).write_text(summary)
print('ELASTICFT_SUMMARY ' + summary)
"""


def test_python_pod_goes_pending_running_succeeded_with_logs_and_mapped_paths(
    sandbox: Sandbox, core: CoreV1Api
) -> None:
    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    pod = python_pod(
        "worker",
        WORKER_SCRIPT,
        labels={"elasticft.io/job": "demo"},
        volumes=[{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}],
        container={
            "env": [
                {"name": "POD_NAME", **field("metadata.name")},
                {"name": "POD_NAMESPACE", **field("metadata.namespace")},
                {"name": "POD_IP", **field("status.podIP")},
                {"name": "NODE_NAME", **field("spec.nodeName")},
                {"name": "JOB", **field("metadata.labels['elasticft.io/job']")},
                {"name": "CKPT_DIR", "value": "/work/checkpoints/$(JOB)"},
                {"name": "TERMINATION_LOG", "value": "/dev/termination-log"},
            ],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        },
    )
    claim_dir = sandbox.state_dir / "volumes" / "default" / "work"
    core.create_namespaced_pod("default", pod)

    phases: list[str] = []
    final: Any = None
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", field_selector="metadata.name=worker", timeout_seconds=30
    )
    for event in stream:
        final = event["object"]
        if not phases or phases[-1] != final.status.phase:
            phases.append(final.status.phase)
        if final.status.phase == "Running":
            (claim_dir / "go").touch()
        if final.status.phase in ("Succeeded", "Failed"):
            break
    assert phases == ["Pending", "Running", "Succeeded"]

    terminated = final.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0 and terminated.reason == "Completed"
    assert json.loads(terminated.message) == {"completed": True, "step": 10}
    assert (claim_dir / "checkpoints" / "demo" / "step-10").read_text() == "weights"

    pod_ip, node = final.status.pod_ip, final.spec.node_name
    assert ipaddress.ip_address(pod_ip) in sandbox.addresses.pods and pod_ip != "127.0.0.1"
    expected = f"pod=worker ns=default ip={pod_ip} node={node} job=demo"
    assert expected in core.read_namespaced_pod_log("worker", "default")
    assert expected in kubectl(sandbox, "logs", "worker")


def test_on_failure_pod_is_restarted_until_it_succeeds(sandbox: Sandbox, core: CoreV1Api) -> None:
    script = """
import pathlib, sys
counter = pathlib.Path('/scratch/attempts')
attempt = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(attempt))
print(f'attempt {attempt}')
sys.exit(0 if attempt == 3 else 3)
"""
    pod = python_pod(
        "flaky",
        script,
        restartPolicy="OnFailure",
        volumes=[{"name": "scratch", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
    )
    core.create_namespaced_pod("default", pod)

    done = eventually(
        lambda: (p := core.read_namespaced_pod("flaky", "default")).status.phase == "Succeeded" and p
    )
    status = done.status.container_statuses[0]
    assert status.restart_count == 2
    assert status.state.terminated.exit_code == 0
    assert status.last_state.terminated.exit_code == 3
    assert kubectl(sandbox, "logs", "flaky").strip() == "attempt 3"
    assert kubectl(sandbox, "logs", "flaky", "--previous").strip() == "attempt 2"


def test_deleted_pods_get_sigterm_and_sigkill_after_their_grace_period(
    sandbox: Sandbox, core: CoreV1Api
) -> None:
    graceful = """
import signal, sys, time
def stop(signum, frame):
    print('received SIGTERM, saving', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print('ready', flush=True)
time.sleep(600)
"""
    stubborn = graceful.replace("sys.exit(0)", "pass")
    core.create_namespaced_pod("default", python_pod("graceful", graceful, terminationGracePeriodSeconds=30))
    core.create_namespaced_pod("default", python_pod("stubborn", stubborn, terminationGracePeriodSeconds=1))
    for name in ("graceful", "stubborn"):
        eventually(lambda name=name: "ready" in log_of(core, name))
    container_ids = {
        name: core.read_namespaced_pod(name, "default").status.container_statuses[0].container_id
        for name in ("graceful", "stubborn")
    }
    pids = {name: int(cid.removeprefix("sandbox://")) for name, cid in container_ids.items()}

    last_seen: dict[str, Any] = {}
    stream = watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=30)
    started = time.monotonic()
    core.delete_namespaced_pod("graceful", "default")
    core.delete_namespaced_pod("stubborn", "default")
    gone_after: dict[str, float] = {}
    for event in stream:
        name = event["object"].metadata.name
        if event["type"] == "DELETED":
            gone_after[name] = time.monotonic() - started
            if len(gone_after) == 2:
                break
        else:
            last_seen[name] = event["object"]

    assert last_seen["graceful"].status.container_statuses[0].state.terminated.exit_code == 0
    assert last_seen["graceful"].status.phase == "Succeeded"
    assert gone_after["graceful"] < 5
    # The stubborn process saw SIGTERM, kept running, and was killed when its 1 s grace ran out.
    assert "received SIGTERM, saving" in (sandbox.logs_dir / "default" / "stubborn" / "main.log").read_text()
    assert 1 <= gone_after["stubborn"] < 5
    eventually(lambda: not any(_alive(pid) for pid in pids.values()), timeout_s=3)


WEB_SCRIPT = """
import http.server, os, time
time.sleep(1.5)
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ['HOSTNAME']}".encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((os.environ['POD_IP'], 8080), Hello).serve_forever()
"""

CLIENT_SCRIPT = """
import os, urllib.request
url = f"http://{os.environ['WEB_SERVICE_HOST']}:{os.environ['WEB_SERVICE_PORT']}/"
print(urllib.request.urlopen(url, timeout=10).read().decode())
"""


def test_readiness_probe_gates_a_service_whose_proxy_reaches_the_pod(
    sandbox: Sandbox, core: CoreV1Api
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    cluster_ip = core.create_namespaced_service("default", service).spec.cluster_ip
    web = python_pod(
        "web",
        WEB_SCRIPT,
        container={
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        },
    )
    core.create_namespaced_pod("default", web)

    eventually(lambda: core.read_namespaced_pod("web", "default").status.phase == "Running")
    running = core.read_namespaced_pod("web", "default")
    assert not running.status.container_statuses[0].ready, "not ready before the server listens"
    eventually(lambda: core.read_namespaced_pod("web", "default").status.container_statuses[0].ready)

    with urllib.request.urlopen(f"http://{cluster_ip}:80/", timeout=10) as response:
        assert response.read().decode() == "hello from web"

    core.create_namespaced_pod("default", python_pod("client", CLIENT_SCRIPT))
    eventually(lambda: core.read_namespaced_pod("client", "default").status.phase == "Succeeded")
    assert core.read_namespaced_pod_log("client", "default").strip() == "hello from web"


def test_container_without_command_is_reported_not_run(sandbox: Sandbox, core: CoreV1Api) -> None:
    pod = python_pod("imageonly", "")
    del pod["spec"]["containers"][0]["command"]
    core.create_namespaced_pod("default", pod)

    def waiting_reason() -> str | None:
        statuses = core.read_namespaced_pod("imageonly", "default").status.container_statuses or []
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    assert eventually(lambda: waiting_reason() == "CreateContainerConfigError")
    core.delete_namespaced_pod("imageonly", "default")
    eventually(lambda: not core.list_namespaced_pod("default").items)
