"""kopf, run by `kopf.testing.KopfRunner`, operates custom resources through the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kopf
from kopf.testing import KopfRunner
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

ARGS = ("example.io", "v1", "default", "widgets")


def widget_operator(server: str, seen: list[str]) -> kopf.OperatorRegistry:
    """A test-only operator: status on create and update, an Event, cleanup on delete (via a finalizer)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server)

    @kopf.on.create("example.io", "v1", "widgets", registry=registry)
    def created(spec: kopf.Spec, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        seen.append("create")
        kopf.info(body, reason="Built", message=f"built a widget of size {spec['size']}")
        patch.status["phase"] = "Built"
        patch.status["size"] = spec["size"]

    @kopf.on.update("example.io", "v1", "widgets", field="spec.size", registry=registry)
    def resized(new: int, patch: kopf.Patch, **_: Any) -> None:
        seen.append("update")
        patch.status["size"] = new

    @kopf.on.delete("example.io", "v1", "widgets", registry=registry)
    def deleted(**_: Any) -> None:
        seen.append("delete")

    return registry


def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_kopf_sees_create_update_delete_patches_status_posts_events_and_uses_finalizers(
        apiserver: str, k8s: ApiClient, widgets: CustomObjectsApi) -> None:
    seen: list[str] = []
    settings = kopf.OperatorSettings()
    settings.watching.connect_timeout = 5
    settings.posting.level = 20
    registry = widget_operator(apiserver, seen)
    with KopfRunner(["run", "--standalone", "-A"], registry=registry, settings=settings, timeout=60) as runner:
        widgets.create_namespaced_custom_object(*ARGS, {"apiVersion": "example.io/v1", "kind": "Widget",
                                                        "metadata": {"name": "w"}, "spec": {"size": 2}})
        get = lambda: widgets.get_namespaced_custom_object(*ARGS, "w")  # noqa: E731
        eventually(lambda: get().get("status", {}).get("phase") == "Built")
        assert get()["metadata"]["finalizers"]

        widgets.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"size": 5}})
        eventually(lambda: get()["status"].get("size") == 5)

        events = lambda: CoreV1Api(k8s).list_namespaced_event(  # noqa: E731
            "default", field_selector="involvedObject.name=w").items
        eventually(lambda: any(e.reason == "Built" for e in events()))

        widgets.delete_namespaced_custom_object(*ARGS, "w")

        def gone() -> bool:
            try:
                get()
            except ApiException as error:
                return error.status == 404
            return False

        eventually(gone)
    assert runner.exit_code == 0, runner.output
    assert seen == ["create", "update", "delete"]
    assert "Traceback" not in runner.output and "ERROR" not in runner.output, runner.output
