"""PATCH flavours: JSON merge patch, JSON patch, strategic merge patch (core types only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi


def http_patch(url: str, content_type: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": content_type}, method="PATCH")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def pod_url(apiserver: str, k8s: ApiClient) -> str:
    CoreV1Api(k8s).create_namespaced_pod("default", {
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x/one"]},
        "spec": {"containers": [{"name": "main", "image": "img:1", "env": [{"name": "A", "value": "1"}]},
                                {"name": "side", "image": "side:1"}],
                 "tolerations": [{"key": "spot", "operator": "Exists"}]}})
    return f"{apiserver}/api/v1/namespaces/default/pods/p"


def test_merge_patch_merges_maps_and_null_deletes(pod_url: str) -> None:
    status, pod = http_patch(pod_url, "application/merge-patch+json", {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert status == 200 and pod["metadata"]["labels"] == {"b": "2", "c": "3"}


def test_json_patch_applies_operations_and_fails_a_test_op(pod_url: str) -> None:
    status, pod = http_patch(pod_url, "application/json-patch+json", [
        {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"}])
    assert status == 200 and pod["metadata"]["labels"] == {"b": "2", "c": "3"}
    status, body = http_patch(pod_url, "application/json-patch+json", [
        {"op": "test", "path": "/metadata/labels/b", "value": "nope"}])
    assert status == 422 and body["kind"] == "Status"


def test_strategic_merge_patch_merges_containers_by_name(pod_url: str) -> None:
    status, pod = http_patch(pod_url, "application/strategic-merge-patch+json", {"spec": {"containers": [
        {"name": "main", "image": "img:2", "env": [{"name": "B", "value": "2"}]}]}})
    assert status == 200
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {"main", "side"}
    assert containers["main"]["image"] == "img:2"
    assert [e["name"] for e in containers["main"]["env"]] == ["A", "B"]


def test_strategic_merge_patch_directives_delete_and_replace(pod_url: str) -> None:
    status, pod = http_patch(pod_url, "application/strategic-merge-patch+json", {
        "metadata": {"finalizers": ["x/two"], "$deleteFromPrimitiveList/finalizers": ["x/one"]},
        "spec": {"containers": [{"name": "side", "$patch": "delete"}],
                 "tolerations": [{"key": "gpu", "operator": "Exists"}]}})
    assert status == 200
    assert [c["name"] for c in pod["spec"]["containers"]] == ["main"]
    assert pod["metadata"]["finalizers"] == ["x/two"]
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]


def test_patch_with_stale_resource_version_is_409(pod_url: str) -> None:
    status, body = http_patch(pod_url, "application/merge-patch+json", {"metadata": {"resourceVersion": "1"}})
    assert status == 409 and body["reason"] == "Conflict"


def test_strategic_merge_patch_on_a_custom_resource_is_415(apiserver: str, widgets: CustomObjectsApi) -> None:
    widgets.create_namespaced_custom_object("example.io", "v1", "default", "widgets", {
        "apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})
    status, body = http_patch(f"{apiserver}/apis/example.io/v1/namespaces/default/widgets/w",
                              "application/strategic-merge-patch+json", {"spec": {"size": 2}})
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
