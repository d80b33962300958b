"""Watches: from a resourceVersion, 410 Gone past the retained history, bookmarks, selectors."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from elasticft_sandbox.apiserver import ApiServerThread


def config_map(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {}}


def stream_lines(url: str, timeout_s: float = 5.0) -> Iterator[dict[str, object]]:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        for line in response:
            yield json.loads(line)


def test_watch_from_a_resource_version_replays_later_changes_in_order(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_config_map("default", config_map("before"))
    since = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", config_map("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("a", "default")
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=since,
                                            timeout_seconds=1)]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_resource_version_starts_with_current_objects(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_namespaced_config_map("default", config_map("x"))
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert events == [("ADDED", "x")]


def test_watch_from_a_compacted_resource_version_is_410_gone() -> None:
    with ApiServerThread(history=5) as server, ApiClient() as client:
        client.configuration.host = server.url
        core = CoreV1Api(client)
        first = core.create_namespaced_config_map("default", config_map("c0")).metadata.resource_version
        for i in range(1, 10):
            core.create_namespaced_config_map("default", config_map(f"c{i}"))
        with pytest.raises(ApiException) as caught:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=first,
                                      timeout_seconds=1))
        assert caught.value.status == 410


def test_watch_sends_bookmarks_with_the_current_resource_version(apiserver: str, k8s: ApiClient) -> None:
    CoreV1Api(k8s).create_namespaced_config_map("default", config_map("x"))
    url = f"{apiserver}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=2"
    events = list(stream_lines(url))
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert events[0]["type"] == "ADDED" and bookmarks
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= 3


def test_watch_with_label_selector_sees_objects_enter_and_leave_the_selection(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    since = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", config_map("a", {"job": "one"}))
    core.create_namespaced_config_map("default", config_map("b", {"job": "two"}))
    core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"job": "one"}}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"job": "three"}}})
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_config_map, "default", label_selector="job=one",
                                            resource_version=since, timeout_seconds=1)]
    assert events == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_watch_event_reaches_a_waiting_client(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    since = core.list_namespaced_config_map("default").metadata.resource_version
    received: list[str] = []
    watcher = watch.Watch()

    def consume() -> None:
        for event in watcher.stream(core.list_namespaced_config_map, "default", resource_version=since,
                                    timeout_seconds=5):
            received.append(event["object"].metadata.name)
            watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    core.create_namespaced_config_map("default", config_map("live"))
    thread.join(timeout=5)
    assert received == ["live"]


def test_watch_on_all_namespaces_sees_every_namespace(k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    since = core.list_config_map_for_all_namespaces().metadata.resource_version
    core.create_namespaced_config_map("default", config_map("a"))
    core.create_namespaced_config_map("kube-system", config_map("b"))
    events = [(e["object"].metadata.namespace, e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_config_map_for_all_namespaces, resource_version=since,
                                            timeout_seconds=1)]
    assert events == [("default", "a"), ("kube-system", "b")]


def test_send_initial_events_ends_with_a_marked_bookmark(apiserver: str, k8s: ApiClient) -> None:
    CoreV1Api(k8s).create_namespaced_config_map("default", config_map("x"))
    url = (f"{apiserver}/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true"
           "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
    events = list(stream_lines(url))
    assert events[0]["type"] == "ADDED" and events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
