"""Which pod addresses serve a Service port (pure): the endpoints controller's selection rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]


def pod_is_ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def target_port(service_port: Obj, pod: Obj) -> int | None:
    """The pod port a Service port forwards to: `targetPort` as a number, or the containerPort it names."""
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(str(target))
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def service_backends(service: Obj, service_port: Obj, pods: Iterable[Obj]) -> list[tuple[str, int]]:
    """(podIP, port) of every Ready, not-terminating pod of the Service's namespace its selector matches."""
    selector: dict[str, str] = service.get("spec", {}).get("selector") or {}
    if not selector:
        return []
    namespace = service["metadata"].get("namespace")
    backends = []
    for pod in pods:
        meta = pod.get("metadata", {})
        labels = meta.get("labels") or {}
        if meta.get("namespace") != namespace or meta.get("deletionTimestamp") or not pod_is_ready(pod):
            continue
        if any(labels.get(key) != value for key, value in selector.items()):
            continue
        ip, port = pod.get("status", {}).get("podIP"), target_port(service_port, pod)
        if ip and port is not None:
            backends.append((str(ip), port))
    return sorted(backends)


def proxied_ports(service: Obj) -> list[tuple[str, Obj]]:
    """(clusterIP, port spec) of each TCP port to listen on; headless Services get none."""
    spec = service.get("spec", {})
    ip = spec.get("clusterIP")
    if not ip or ip == "None":
        return []
    return [(str(ip), port) for port in spec.get("ports") or [] if port.get("protocol", "TCP") == "TCP"]
