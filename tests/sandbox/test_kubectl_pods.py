"""kubectl on running pods of the sandbox: exec (with -i and -it), cp, logs --timestamps/--since/--previous,
top on a cluster without metrics-server, and `create deployment` (a protobuf body) rolled out to pods."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ftj_testing import eventually, kubectl
from ftj_testing import kubectl_ok as ok

from elasticft_sandbox.sandbox import Sandbox

SLEEPER = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
    "spec": {"containers": [{
        "name": "main", "image": "python:3.11", "workingDir": "/work",
        "command": ["python", "-c", "import time; print('line one'); print('line two', flush=True); time.sleep(600)"],
        "env": [{"name": "GREETING", "value": "hello from the pod"}],
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
    }], "volumes": [{"name": "work", "emptyDir": {}}]},
}
CRASHER = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher"},
    "spec": {"restartPolicy": "Always", "containers": [{
        "name": "main", "image": "python:3.11",
        "command": ["python", "-c", "import time; print('run at', time.time(), flush=True); time.sleep(0.3); exit(1)"],
    }]},
}
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "state", restart_backoff_s=0.2, shutdown_grace_s=2) as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))
        yield running


def start(manifest: dict[str, object]) -> None:
    ok("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


@pytest.fixture
def sleeper(sandbox: Sandbox) -> str:
    start(SLEEPER)
    eventually(lambda: "line two" in kubectl("logs", "sleeper").stdout, 60, what="the pod's output")
    return "sleeper"


def test_exec_runs_with_the_pods_environment_and_working_directory(sleeper: str) -> None:
    out = ok("exec", sleeper, "--", "sh", "-c", 'echo "$GREETING"; pwd; cat $KUBERNETES_SERVICE_HOST >/dev/null; '
                                                "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace")
    greeting, cwd, namespace = out.splitlines()
    assert greeting == "hello from the pod"
    assert cwd.endswith("/volumes/work")  # the emptyDir behind workingDir /work
    assert namespace == "default"
    failed = kubectl("exec", sleeper, "--", "sh", "-c", "exit 3")
    assert failed.returncode == 3 and "command terminated with exit code 3" in failed.stderr
    assert ok("exec", "-i", sleeper, "--", "python", "-c", "print(input().upper())", stdin="shout\n") == "SHOUT\n"


def test_exec_with_a_terminal_gives_the_command_a_tty(sleeper: str) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(["kubectl", "exec", "-it", sleeper, "--", "sh", "-c", "tty; echo done"],
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    while b"done" not in output:
        try:
            chunk = os.read(controller, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(controller)
    assert b"/dev/pts/" in output, output


def test_attach_streams_what_the_container_writes_from_then_on(sandbox: Sandbox) -> None:
    ticker = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"}, "spec": {"containers": [{
        "name": "main", "image": "python:3.11",
        "command": ["python", "-c", "import time\nfor i in range(600): print('tick', i, flush=True); time.sleep(0.2)"],
    }]}}
    start(ticker)
    eventually(lambda: "tick 1" in kubectl("logs", "ticker").stdout, 60, what="the pod's output")
    attached = subprocess.Popen(["kubectl", "attach", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert attached.stdout is not None
        seen = [attached.stdout.readline() for _ in range(3)]
        numbers = [int(line.split()[1]) for line in seen if line.startswith("tick ")]
        assert len(numbers) >= 2 and numbers == sorted(numbers) and numbers[0] > 1
    finally:
        attached.terminate()
        attached.wait(timeout=30)


def _sent_fields_kept(sent: object, stored: object) -> list[str]:
    """The paths of what the client sent that the stored object lacks (server defaults may add more)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return ["(not an object)"]
        return [f".{key}{missing}" for key, value in sent.items() if value not in ({}, [], None)
                for missing in _sent_fields_kept(value, stored.get(key))]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f" (list {stored!r})"]
        return [f"[{i}]{missing}" for i, item in enumerate(sent) for missing in _sent_fields_kept(item, stored[i])]
    return [] if sent == stored else [f" ({stored!r} for {sent!r})"]


def test_create_deployment_sends_protobuf_and_rolls_out_its_pods(sandbox: Sandbox) -> None:
    create = ["create", "deployment", "web", "--image=python:3.11", "--replicas=2", "--port=8080", "--",
              "python", "-c", "import time; print('serving', flush=True); time.sleep(600)"]
    assert ok(*create).strip() == "deployment.apps/web created"
    assert "successfully rolled out" in ok("rollout", "status", "deployment/web", "--timeout=90s")

    sent = json.loads(ok(*create[:2], "--dry-run=client", "-o", "json", *create[2:]))
    stored = json.loads(ok("get", "deployment", "web", "-o", "json"))
    assert _sent_fields_kept(sent["spec"], stored["spec"]) == []
    assert stored["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080
    pods = json.loads(ok("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert [pod["status"]["phase"] for pod in pods] == ["Running", "Running"]
    eventually(lambda: "serving" in kubectl("logs", "deployment/web").stdout, 60, what="the deployment's output")


def test_attach_with_stdin_feeds_the_container_what_is_typed(sandbox: Sandbox) -> None:
    echoer = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echoer"}, "spec": {"containers": [{
        "name": "main", "image": "python:3.11", "stdin": True,
        "command": ["python", "-c", "import sys\nprint('ready', flush=True)\n"
                    "for line in sys.stdin: print('got', line.strip(), flush=True)"],
    }]}}
    start(echoer)
    eventually(lambda: "ready" in kubectl("logs", "echoer").stdout, 60, what="the pod's output")
    attached = subprocess.Popen(["kubectl", "attach", "-i", "echoer"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert attached.stdin is not None and attached.stdout is not None
        attached.stdin.write("hello pod\n")
        attached.stdin.flush()
        assert attached.stdout.readline().strip() == "got hello pod"
    finally:
        attached.terminate()
        attached.wait(timeout=30)
    assert "got hello pod" in ok("logs", "echoer")


def test_cp_copies_files_into_and_out_of_a_pods_volume(sleeper: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("checkpoint notes\n")
    ok("cp", str(source), f"{sleeper}:/work/notes.txt")
    assert ok("exec", sleeper, "--", "cat", "/work/notes.txt") == "checkpoint notes\n"
    ok("cp", f"{sleeper}:/work/notes.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "checkpoint notes\n"


def test_logs_timestamps_and_since_select_lines_by_when_they_were_written(sleeper: str) -> None:
    stamped = ok("logs", sleeper, "--timestamps").splitlines()
    assert [TIMESTAMPED.sub("", line) for line in stamped] == ["line one", "line two"]
    assert all(TIMESTAMPED.match(line) for line in stamped)
    assert ok("logs", sleeper, "--since=1h").splitlines() == ["line one", "line two"]
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert ok("logs", sleeper, f"--since-time={later}") == ""
    assert ok("logs", sleeper, "--tail=1", "--timestamps").split(" ", 1)[1] == "line two\n"


def test_logs_previous_shows_the_run_before_a_restart(sandbox: Sandbox) -> None:
    start(CRASHER)
    eventually(lambda: kubectl("logs", "crasher", "--previous").returncode == 0, 60, what="a restart")
    previous, current = ok("logs", "crasher", "--previous"), kubectl("logs", "crasher").stdout
    assert previous.startswith("run at ") and previous != current


def test_port_forward_reaches_a_port_of_the_pod(sandbox: Sandbox) -> None:
    server = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "metrics"}, "spec": {"containers": [{
        "name": "main", "image": "python:3.11",
        "command": ["python", "-m", "http.server", "9400", "--bind", "$(POD_IP)", "--directory", "$(WORK)"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "WORK", "value": "/work"}],
        "volumeMounts": [{"name": "work", "mountPath": "/work"}]}], "volumes": [{"name": "work", "emptyDir": {}}]}}
    start(server)
    eventually(lambda: "Serving HTTP" in kubectl("logs", "metrics").stdout, 60, what="the pod's server")
    ok("exec", "metrics", "--", "sh", "-c", "echo 'samples_per_second 42' > /work/metrics")
    forward = subprocess.Popen(["kubectl", "port-forward", "pod/metrics", ":9400"], stdout=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 9400
        local = int(re.search(r"127\.0\.0\.1:(\d+) -> 9400", first).group(1))  # type: ignore[union-attr]
        for _ in range(2):  # each request is a connection of its own through the same tunnel
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/metrics", timeout=30) as response:
                assert response.read() == b"samples_per_second 42\n"
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def test_a_pod_of_an_unknown_image_without_command_waits_with_the_reason(sandbox: Sandbox) -> None:
    ok("run", "web", "--image=nginx:1.27", "--restart=Never")

    def waiting() -> dict[str, str] | None:
        statuses = json.loads(ok("get", "pod", "web", "-o", "json")).get("status", {}).get("containerStatuses") or []
        state: dict[str, str] | None = (statuses[0].get("state") or {}).get("waiting") if statuses else None
        return state if state and state.get("message") else None

    state = eventually(waiting, 60, what="a waiting reason")
    assert state["reason"] == "CreateContainerConfigError"
    assert "'nginx:1.27' is not one of the project's images" in state["message"]


def test_a_pod_that_opts_out_of_the_token_gets_none(sandbox: Sandbox) -> None:
    script = "import os; print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "no-token"},
           "spec": {"automountServiceAccountToken": False, "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", script]}]}}
    start(pod)
    eventually(lambda: kubectl("logs", "no-token").stdout.strip() == "False", 60, what="the pod's answer")


def test_top_answers_as_a_cluster_without_metrics_server(sandbox: Sandbox) -> None:
    for what in ("pods", "nodes"):
        result = kubectl("top", what)
        assert result.returncode == 1 and "Metrics API not available" in result.stderr
