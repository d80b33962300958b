"""Deletion: finalizers and deletionTimestamp, owner-reference cascade, graceful pod deletion."""

from __future__ import annotations

import time

import pytest
from kubernetes.client import ApiClient, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.apiserver.store import GRACE_EXPIRY_MARGIN_S


def exists(read: object, *args: str) -> bool:
    try:
        read(*args)  # type: ignore[operator]
    except ApiException as error:
        assert error.status == 404
        return False
    return True


def owned_config_map(name: str, *owners: tuple[str, str]) -> dict[str, object]:
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid} for owner, uid in owners]
    return {"metadata": {"name": name, "ownerReferences": refs}}


def test_delete_with_finalizers_only_marks_and_removing_the_last_finalizer_deletes(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "finalizers": ["a/x", "b/y"]}})
    core.delete_namespaced_config_map("c", "default")
    marked = core.read_namespaced_config_map("c", "default")
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": ["b/y"]}})
    assert exists(core.read_namespaced_config_map, "c", "default")
    core.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": None}})
    assert not exists(core.read_namespaced_config_map, "c", "default")


def test_no_new_finalizers_once_deletion_started(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "finalizers": ["a/x"]}})
    core.delete_namespaced_config_map("c", "default")
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": ["a/x", "b/new"]}})
    assert caught.value.status == 422


def test_deleting_an_owner_deletes_dependents_whose_owners_are_all_gone(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    one = core.create_namespaced_config_map("default", {"metadata": {"name": "one"}}).metadata.uid
    two = core.create_namespaced_config_map("default", {"metadata": {"name": "two"}}).metadata.uid
    core.create_namespaced_config_map("default", owned_config_map("child", ("one", one)))
    core.create_namespaced_config_map("default", owned_config_map("grandchild", ("child", "")))
    core.create_namespaced_config_map("default", owned_config_map("shared", ("one", one), ("two", two)))
    child_uid = core.read_namespaced_config_map("child", "default").metadata.uid
    core.patch_namespaced_config_map("grandchild", "default", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child_uid}]}})
    core.delete_namespaced_config_map("one", "default")
    remaining = {c.metadata.name for c in core.list_namespaced_config_map("default").items}
    assert remaining == {"two", "shared"}
    core.delete_namespaced_config_map("two", "default")
    assert not exists(core.read_namespaced_config_map, "shared", "default")


def test_orphan_propagation_keeps_dependents_and_drops_their_owner_reference(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}}).metadata.uid
    core.create_namespaced_config_map("default", owned_config_map("child", ("owner", owner)))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", "default")
    assert not child.metadata.owner_references


def test_dependents_with_finalizers_are_marked_not_removed(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}}).metadata.uid
    child = owned_config_map("child", ("owner", owner))
    child["metadata"]["finalizers"] = ["keep/me"]  # type: ignore[index]
    core.create_namespaced_config_map("default", child)
    core.delete_namespaced_config_map("owner", "default")
    assert core.read_namespaced_config_map("child", "default").metadata.deletion_timestamp is not None


def bound_pod(core: CoreV1Api, name: str, grace: int) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": grace, "containers": [{"name": "m", "image": "x"}]}})
    core.create_namespaced_pod_binding(name, "default", {"metadata": {"name": name}, "target": {"name": "n1"}},
                                       _preload_content=False)


def test_bound_pod_deletion_is_graceful_until_the_kubelet_deletes_with_zero_grace(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    bound_pod(core, "p", 30)
    core.delete_namespaced_pod("p", "default")
    terminating = core.read_namespaced_pod("p", "default")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_bound_pod_is_removed_when_no_kubelet_finishes_its_deletion(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    bound_pod(core, "p", 1)
    core.delete_namespaced_pod("p", "default")
    assert exists(core.read_namespaced_pod, "p", "default")
    # The server waits the grace period plus a margin for the kubelet's final status, then removes it.
    time.sleep(1 + GRACE_EXPIRY_MARGIN_S + 0.5)
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_unbound_and_finished_pods_are_deleted_at_once(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_pod("default", {"metadata": {"name": "pending"}, "spec": {"containers": [
        {"name": "m", "image": "x"}]}})
    bound_pod(core, "done", 30)
    core.patch_namespaced_pod_status("done", "default", {"status": {"phase": "Succeeded"}})
    core.delete_namespaced_pod("pending", "default")
    core.delete_namespaced_pod("done", "default")
    assert core.list_namespaced_pod("default").items == []


def test_deleting_a_node_deletes_its_pods(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_node({"metadata": {"name": "n1"}})
    bound_pod(core, "p", 30)
    core.delete_node("n1")
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_deleting_a_namespace_deletes_its_contents(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})
    core.delete_namespace("team")
    assert not exists(core.read_namespace, "team")
    assert core.list_config_map_for_all_namespaces().items == []


def test_deleting_a_crd_deletes_its_custom_resources_and_stops_serving_them(
        k8s: ApiClient, widgets: CustomObjectsApi) -> None:
    widgets.create_namespaced_custom_object("example.io", "v1", "default", "widgets", {
        "apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})
    ApiextensionsV1Api(k8s).delete_custom_resource_definition("widgets.example.io")
    with pytest.raises(ApiException) as caught:
        widgets.list_namespaced_custom_object("example.io", "v1", "default", "widgets")
    assert caught.value.status == 404


def test_eviction_deletes_the_pod_and_delete_preconditions_guard_against_a_replaced_object(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "m", "image": "x"}]}})
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod("p", "default", body={"preconditions": {"uid": "someone-else"}})
    assert caught.value.status == 409
    core.create_namespaced_pod_eviction("p", "default", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                         "metadata": {"name": "p", "namespace": "default"}},
                                        _preload_content=False)
    assert not exists(core.read_namespaced_pod, "p", "default")
