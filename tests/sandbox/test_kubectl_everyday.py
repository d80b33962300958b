"""Everyday kubectl against the emulator: `create` (protobuf bodies), server-side apply, `get -w`, 404s."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from ftj_testing import kubectl
from ftj_testing import kubectl_ok as ok


def test_kubectl_create_namespace_configmap_secret_and_service(kubeconfig: Path) -> None:
    assert ok("create", "namespace", "team-a").strip() == "namespace/team-a created"
    ok("create", "configmap", "settings", "--from-literal=mode=fast", "-n", "team-a")
    ok("create", "secret", "generic", "token", "--from-literal=key=s3cr3t", "-n", "team-a")
    ok("create", "service", "clusterip", "rdzv", "--tcp=29400:29400", "-n", "team-a")
    ok("create", "serviceaccount", "runner", "-n", "team-a")

    assert json.loads(ok("get", "configmap", "settings", "-n", "team-a", "-o", "json"))["data"] == {"mode": "fast"}
    secret = json.loads(ok("get", "secret", "token", "-n", "team-a", "-o", "json"))
    assert secret["type"] == "Opaque" and base64.b64decode(secret["data"]["key"]) == b"s3cr3t"
    service = json.loads(ok("get", "service", "rdzv", "-n", "team-a", "-o", "json"))
    assert service["spec"]["ports"][0]["port"] == 29400 and service["spec"]["clusterIP"]
    assert ok("get", "secrets", "-n", "team-a").split()[:4] == ["NAME", "TYPE", "DATA", "AGE"]


def test_server_side_apply_creates_updates_and_reports_conflicts(kubeconfig: Path) -> None:
    first = '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}'
    assert "serverside-applied" in ok("apply", "--server-side", "-f", "-", stdin=first)
    # The same manager dropping a field removes it; another manager changing one it owns conflicts.
    ok("apply", "--server-side", "-f", "-", stdin=first.replace(', "b": "2"', ""))
    assert json.loads(ok("get", "cm", "c", "-o", "json"))["data"] == {"a": "1"}
    rival = first.replace('"a": "1", "b": "2"', '"a": "9"')
    conflict = kubectl("apply", "--server-side", "--field-manager=rival", "-f", "-", stdin=rival)
    assert conflict.returncode == 1
    assert 'conflict with "kubectl"' in conflict.stderr and ".data.a" in conflict.stderr
    ok("apply", "--server-side", "--field-manager=rival", "--force-conflicts", "-f", "-", stdin=rival)
    taken = json.loads(ok("get", "cm", "c", "-o", "json", "--show-managed-fields"))
    assert taken["data"] == {"a": "9"}
    owners = {entry["manager"]: entry["fieldsV1"] for entry in taken["metadata"]["managedFields"]}
    assert owners["rival"] == {"f:data": {"f:a": {}}}


def test_get_watch_keeps_the_columns_of_the_first_screen(kubeconfig: Path) -> None:
    ok("create", "configmap", "first")
    watching = subprocess.Popen(["kubectl", "get", "configmaps", "-w"], stdout=subprocess.PIPE, text=True)
    try:
        assert watching.stdout is not None
        header = watching.stdout.readline().split()
        assert header == ["NAME", "DATA", "AGE"]
        assert watching.stdout.readline().split()[:2] == ["first", "0"]
        ok("create", "configmap", "second", "--from-literal=a=b")
        assert watching.stdout.readline().split()[:2] == ["second", "1"]
    finally:
        watching.kill()
        watching.wait()


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/bogus", "/api/v1/bogus", "/apis/apps/v1/bogus",
                                  "/api/v1/namespaces/default/nodes"])
def test_types_that_are_not_served_are_404(kubeconfig: Path, path: str) -> None:
    result = kubectl("get", "--raw", path)
    assert result.returncode == 1 and "NotFound" in result.stderr
