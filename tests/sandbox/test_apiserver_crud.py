"""Create/get/list/update/delete semantics of the API emulator, seen through the official client."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes.client import ApiClient, CoordinationV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}


def test_default_and_kube_system_namespaces_exist_at_start(k8s: ApiClient) -> None:
    names = {ns.metadata.name for ns in CoreV1Api(k8s).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_created_object_gets_uid_timestamp_generation_and_resource_version(k8s: ApiClient) -> None:
    created = CoreV1Api(k8s).create_namespaced_pod("default", pod("a"))
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.generation == 1
    fetched = CoreV1Api(k8s).read_namespaced_pod("a", "default")
    assert fetched.metadata.resource_version == created.metadata.resource_version
    assert fetched.status.phase == "Pending"


def test_resource_version_is_a_global_increasing_counter(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    versions = [int(core.create_namespaced_pod("default", pod(f"p{i}")).metadata.resource_version) for i in range(3)]
    config = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    versions.append(int(config.metadata.resource_version))
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert int(core.list_namespaced_pod("default").metadata.resource_version) >= versions[-1]


def test_creating_an_existing_name_is_409_already_exists(k8s: ApiClient) -> None:
    CoreV1Api(k8s).create_namespaced_pod("default", pod("dup"))
    with pytest.raises(ApiException) as caught:
        CoreV1Api(k8s).create_namespaced_pod("default", pod("dup"))
    assert caught.value.status == 409 and '"reason": "AlreadyExists"' in caught.value.body


def test_missing_object_is_404_with_a_status_body(k8s: ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        CoreV1Api(k8s).read_namespaced_pod("nope", "default")
    assert caught.value.status == 404
    assert '"kind": "Status"' in caught.value.body and '"reason": "NotFound"' in caught.value.body


def test_creating_in_a_missing_namespace_is_404(k8s: ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        CoreV1Api(k8s).create_namespaced_pod("elsewhere", pod("a"))
    assert caught.value.status == 404


def test_update_with_stale_resource_version_is_409_conflict(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"k": "1"}})
    first.data = {"k": "2"}
    core.replace_namespaced_config_map("c", "default", first)
    first.data = {"k": "3"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("c", "default", first)
    assert caught.value.status == 409 and '"reason": "Conflict"' in caught.value.body
    assert core.read_namespaced_config_map("c", "default").data == {"k": "2"}


def test_generate_name_makes_a_unique_name(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    body = {"metadata": {"generateName": "job-"}, "data": {}}
    names = {core.create_namespaced_config_map("default", body).metadata.name for _ in range(3)}
    assert len(names) == 3 and all(name.startswith("job-") for name in names)


def test_generation_bumps_on_spec_changes_only(widgets: CustomObjectsApi) -> None:
    args = ("example.io", "v1", "default", "widgets")
    widgets.create_namespaced_custom_object(*args, {"apiVersion": "example.io/v1", "kind": "Widget",
                                                    "metadata": {"name": "w"}, "spec": {"size": 1}})
    status = widgets.patch_namespaced_custom_object_status(*args, "w", {"status": {"phase": "Running"}})
    labelled = widgets.patch_namespaced_custom_object(*args, "w", {"metadata": {"labels": {"a": "b"}}})
    assert status["metadata"]["generation"] == 1 and labelled["metadata"]["generation"] == 1
    resized = widgets.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 2}})
    assert resized["metadata"]["generation"] == 2


def test_status_subresource_writes_only_status_and_main_writes_ignore_status(widgets: CustomObjectsApi) -> None:
    args = ("example.io", "v1", "default", "widgets")
    created = widgets.create_namespaced_custom_object(*args, {
        "apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1},
        "status": {"phase": "Ignored"}})
    assert "status" not in created
    widgets.patch_namespaced_custom_object_status(*args, "w", {"spec": {"size": 9}, "status": {"phase": "Running"}})
    widgets.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 3}, "status": {"phase": "Hacked"}})
    final = widgets.get_namespaced_custom_object(*args, "w")
    assert final["spec"]["size"] == 3 and final["status"] == {"phase": "Running"}


def test_pod_status_subresource_and_binding_set_what_a_kubelet_reports(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod_binding("a", "default", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False)
    core.patch_namespaced_pod_status("a", "default", {"status": {"phase": "Running", "podIP": "127.0.0.7"}})
    core.patch_namespaced_pod("a", "default", {"status": {"phase": "Failed"}})
    final = core.read_namespaced_pod("a", "default")
    assert final.spec.node_name == "n1"
    assert final.status.phase == "Running" and final.status.pod_ip == "127.0.0.7"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in final.status.conditions)


def test_service_gets_a_loopback_cluster_ip_that_survives_updates(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    service = core.create_namespaced_service("default", {
        "metadata": {"name": "rdzv"}, "spec": {"ports": [{"port": 29400}], "selector": {"app": "x"}}})
    address = service.spec.cluster_ip
    assert ipaddress.ip_address(address) in ipaddress.ip_network("127.1.0.0/16")
    replacement = {"metadata": {"name": "rdzv"}, "spec": {"ports": [{"port": 29400}], "selector": {"app": "y"}}}
    assert core.replace_namespaced_service("rdzv", "default", replacement).spec.cluster_ip == address
    other = core.create_namespaced_service("default", {"metadata": {"name": "other"},
                                                       "spec": {"ports": [{"port": 80}]}})
    assert other.spec.cluster_ip != address


def test_cluster_scoped_nodes_and_node_status(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_node({"metadata": {"name": "n1", "labels": {"karpenter.sh/capacity-type": "spot"}},
                      "status": {"capacity": {"nvidia.com/gpu": "1"}}})
    core.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    node = core.read_node("n1")
    assert node.status.capacity == {"nvidia.com/gpu": "1"}
    assert node.status.conditions[0].type == "Ready"
    assert [n.metadata.name for n in core.list_node(label_selector="karpenter.sh/capacity-type=spot").items] == ["n1"]


def test_list_pages_with_limit_and_continue(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    rest = core.list_namespaced_config_map("default", _continue=second.metadata._continue)
    names = [c.metadata.name for page in (first, second, rest) for c in page.items]
    assert names == ["c0", "c1", "c2", "c3", "c4"]


def test_configmaps_claims_events_and_leases_are_served_with_crud(k8s: ApiClient) -> None:
    core, coordination = CoreV1Api(k8s), CoordinationV1Api(k8s)
    core.create_namespaced_config_map("default", {"metadata": {"name": "prices"}, "data": {"spot": "0.9"}})
    core.create_namespaced_persistent_volume_claim("default", {
        "metadata": {"name": "ckpt"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    core.create_namespaced_event("default", {
        "metadata": {"name": "job.1"}, "involvedObject": {"kind": "Pod", "name": "a", "namespace": "default"},
        "reason": "Preempted", "message": "spot reclaim", "type": "Warning"})
    coordination.create_namespaced_lease("default", {
        "metadata": {"name": "leader"}, "spec": {"holderIdentity": "op-1", "leaseDurationSeconds": 15}})

    assert core.read_namespaced_config_map("prices", "default").data == {"spot": "0.9"}
    assert core.read_namespaced_persistent_volume_claim("ckpt", "default").spec.access_modes == ["ReadWriteMany"]
    assert [e.reason for e in core.list_namespaced_event("default").items] == ["Preempted"]
    lease = coordination.read_namespaced_lease("leader", "default")
    lease.spec.holder_identity = "op-2"
    assert coordination.replace_namespaced_lease("leader", "default", lease).spec.holder_identity == "op-2"

    core.delete_namespaced_config_map("prices", "default")
    core.delete_namespaced_persistent_volume_claim("ckpt", "default")
    core.delete_namespaced_event("job.1", "default")
    coordination.delete_namespaced_lease("leader", "default")
    assert core.list_namespaced_config_map("default").items == []
    assert core.list_namespaced_persistent_volume_claim("default").items == []
    assert core.list_namespaced_event("default").items == []
    assert coordination.list_namespaced_lease("default").items == []
