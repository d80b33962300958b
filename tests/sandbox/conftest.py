"""Shared fixtures for the sandbox tests: a running API emulator and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, ApiextensionsV1Api, Configuration, CustomObjectsApi

from elasticft_sandbox.apiserver import ApiServerThread, write_kubeconfig


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    """Where the emulator reads pod logs from (`{logs_dir}/{ns}/{pod}/{container}.log`)."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def apiserver_thread(logs_dir: Path) -> Iterator[ApiServerThread]:
    """A fresh emulator for one test, running in a background thread; stopped afterwards."""
    with ApiServerThread(logs_dir=logs_dir, bookmark_interval_s=0.5) as server:
        yield server


@pytest.fixture
def apiserver(apiserver_thread: ApiServerThread) -> str:
    """The URL of a fresh, running API emulator (`http://127.0.0.1:PORT`)."""
    return apiserver_thread.url


@pytest.fixture
def kubeconfig(apiserver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig file for the emulator; also exported as KUBECONFIG for subprocesses (kubectl), with
    kubectl's discovery cache kept per test so that one server's cached API never leaks into another."""
    path = write_kubeconfig(apiserver, tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))
    return path


@pytest.fixture
def k8s(apiserver: str) -> Iterator[ApiClient]:
    """An official `kubernetes` client configured for the emulator."""
    configuration = Configuration(host=apiserver)
    with ApiClient(configuration) as client:
        yield client


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.io"},
    "spec": {
        "group": "example.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                  "categories": ["all"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                            "port": {"x-kubernetes-int-or-string": True},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "note": {"type": "string", "nullable": True},
                        },
                    },
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                               "properties": {"phase": {"type": "string"}}},
                },
            }},
        }],
    },
}


@pytest.fixture
def widgets(k8s: ApiClient) -> CustomObjectsApi:
    """The emulator serving a small test CRD (`widgets.example.io/v1`, kind Widget, short name `wd`)."""
    ApiextensionsV1Api(k8s).create_custom_resource_definition(WIDGET_CRD)
    return CustomObjectsApi(k8s)
