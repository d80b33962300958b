"""Label selectors (=, !=, in, notin, exists, !exists) and field selectors on lists."""

from __future__ import annotations

import pytest
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def labelled(k8s: ApiClient) -> CoreV1Api:
    core = CoreV1Api(k8s)
    for name, labels in (("a", {"role": "worker", "gen": "1"}), ("b", {"role": "worker", "gen": "2"}),
                         ("c", {"role": "rendezvous"}), ("d", {})):
        core.create_namespaced_pod("default", {"metadata": {"name": name, "labels": labels},
                                               "spec": {"containers": [{"name": "m", "image": "x"}]}})
    return core


@pytest.mark.parametrize(("selector", "expected"), [
    ("role=worker", ["a", "b"]),
    ("role==worker,gen=2", ["b"]),
    ("role!=worker", ["c", "d"]),
    ("gen in (1, 3)", ["a"]),
    ("role notin (worker)", ["c", "d"]),
    ("gen", ["a", "b"]),
    ("!gen", ["c", "d"]),
    ("role in (worker,rendezvous),!gen", ["c"]),
])
def test_label_selector_operators(labelled: CoreV1Api, selector: str, expected: list[str]) -> None:
    assert [p.metadata.name for p in labelled.list_namespaced_pod("default", label_selector=selector).items] == expected


def test_field_selectors_on_name_node_and_phase(labelled: CoreV1Api) -> None:
    labelled.patch_namespaced_pod_status("a", "default", {"status": {"phase": "Running"}})
    labelled.create_namespaced_pod_binding("b", "default", {"metadata": {"name": "b"}, "target": {"name": "n1"}},
                                           _preload_content=False)
    names = lambda selector: [p.metadata.name for p in labelled.list_namespaced_pod(  # noqa: E731
        "default", field_selector=selector).items]
    assert names("metadata.name=c") == ["c"]
    assert names("spec.nodeName=n1") == ["b"]
    assert names("status.phase!=Pending") == ["a"]
    assert names("metadata.namespace=default,status.phase=Pending") == ["b", "c", "d"]


def test_field_selector_on_events_involved_object(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    for name, kind in (("e1", "Pod"), ("e2", "FineTuneJob")):
        involved = {"kind": kind, "name": "job", "namespace": "default"}
        core.create_namespaced_event("default", {"metadata": {"name": name}, "reason": "Scaled", "message": "m",
                                                 "involvedObject": involved})
    selector = "involvedObject.kind=FineTuneJob,involvedObject.name=job"
    events = core.list_namespaced_event("default", field_selector=selector)
    assert [e.metadata.name for e in events.items] == ["e2"]


def test_malformed_label_selector_is_400(labelled: CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        labelled.list_namespaced_pod("default", label_selector="a in (b")
    assert caught.value.status == 400
