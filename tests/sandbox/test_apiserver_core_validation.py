"""Built-in objects are validated as the API server validates them (official client and kubectl)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException


def pod(name: str = "p", labels: dict[str, str] | None = None, **container: Any) -> dict[str, Any]:
    main = {"name": "main", "image": "python:3.11", "command": ["python", "-c", "pass"], **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [main]}}


def causes_of(k8s: ApiClient, body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ApiException) as refused:
        CoreV1Api(k8s).create_namespaced_pod("default", body)
    assert refused.value.status == 422
    status = json.loads(refused.value.body)
    return [(c["field"], c["message"]) for c in status["details"]["causes"]]


def test_a_quantity_that_is_not_a_size_is_refused(k8s: ApiClient) -> None:
    (cause,) = causes_of(k8s, pod(resources={"requests": {"memory": "banana", "cpu": "500m"}}))
    assert cause[0] == "spec.containers[0].resources.requests[memory]"
    assert cause[1].startswith('Invalid value: "banana": quantities must match the regular expression')


def test_env_names_with_equals_and_values_with_nul_are_refused(k8s: ApiClient) -> None:
    causes = causes_of(k8s, pod(env=[{"name": "A=B", "value": "1"}, {"name": "OK", "value": "x\x00y"}]))
    assert [field for field, _ in causes] == ["spec.containers[0].env[0].name", "spec.containers[0].env[1].value"]


def test_label_keys_and_values_longer_than_63_characters_are_refused(k8s: ApiClient) -> None:
    causes = causes_of(k8s, pod(labels={"a" * 64: "v", "ok": "b" * 64}))
    assert [field for field, _ in causes] == ["metadata.labels", "metadata.labels"]
    CoreV1Api(k8s).create_namespaced_pod("default", pod(labels={"example.com/" + "a" * 63: "b" * 63}))


def test_integers_beyond_int32_are_refused(k8s: ApiClient) -> None:
    ((field, message),) = causes_of(k8s, pod(ports=[{"containerPort": 2**31}]))
    assert field == "spec.containers[0].ports[0].containerPort" and "int32" in message


def test_names_must_be_dns_1123(kubeconfig: Path) -> None:
    refused = subprocess.run(["kubectl", "create", "namespace", "Not_A_Label"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 1 and "RFC 1123" in refused.stderr


def test_objects_over_the_storage_limit_are_413(k8s: ApiClient) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"blob": "x" * 1_600_000}}
    with pytest.raises(ApiException) as refused:
        CoreV1Api(k8s).create_namespaced_config_map("default", big)
    assert refused.value.status == 413
    assert "request is too large" in json.loads(refused.value.body)["message"]
