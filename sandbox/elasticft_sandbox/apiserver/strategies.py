"""Per-type behaviour the real API server implements in its registry strategies: defaults set on
create, fields that writes through the main resource may not change, and graceful deletion of pods."""

from __future__ import annotations

import ipaddress
from typing import Any

from .errors import ApiError
from .resources import ResourceType

DEFAULT_SERVICE_NETWORK = ipaddress.IPv4Network("127.1.0.0/16")
_TERMINAL_POD_PHASES = ("Succeeded", "Failed")


class ClusterIPAllocator:
    """Hands out Service cluster IPs from a loopback range, so the sandbox can proxy them locally."""

    def __init__(self, network: ipaddress.IPv4Network = DEFAULT_SERVICE_NETWORK) -> None:
        self.network = network
        self._used: set[str] = set()
        self._hosts = network.hosts()

    def allocate(self, requested: str | None) -> str:
        if requested:
            if not self._in_range(requested):
                # A Service may not take an address outside the range (another sandbox's, say).
                raise ApiError(422, f"spec.clusterIPs: Invalid value: [{requested!r}]: failed to allocate IP "
                                    f"{requested}: provided IP ({requested}) is not in the valid range. "
                                    f"The range of valid IPs is {self.network}")
            if requested in self._used:
                raise ApiError(422, f"spec.clusterIP: Invalid value: {requested!r}: provided IP is already allocated")
            self._used.add(requested)
            return requested
        for address in self._hosts:
            candidate = str(address)
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        self._hosts = self.network.hosts()
        free = next((str(a) for a in self.network.hosts() if str(a) not in self._used), None)
        if free is None:
            raise ApiError(500, f"no cluster IPs left in {self.network}")
        self._used.add(free)
        return free

    def _in_range(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.network
        except ValueError:
            return False

    def release(self, address: str | None) -> None:
        if address:
            self._used.discard(address)


def _default_pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("resources", {})
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _default_service(obj: dict[str, Any], allocator: ClusterIPAllocator) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec.get("clusterIP") != "None":
        spec["clusterIP"] = allocator.allocate(spec.get("clusterIP"))
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    obj["status"] = {"loadBalancer": {}}


def _default_pvc(obj: dict[str, Any]) -> None:
    # No provisioner runs in the sandbox: every claim is bound at once, its capacity what it asked for.
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    spec.setdefault("volumeName", f"pvc-{obj['metadata']['uid']}")
    obj["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                     "capacity": {"storage": requested}}


def _default_crd(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    names = spec["names"]
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})


def crd_status(obj: dict[str, Any], now: str) -> dict[str, Any]:
    """The status a real server reports once a CRD is established."""
    spec = obj["spec"]
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {
        "acceptedNames": dict(spec["names"]),
        "conditions": conditions,
        "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")] or [spec["versions"][0]["name"]],
    }


def prepare_create(resource: ResourceType, obj: dict[str, Any], allocator: ClusterIPAllocator, now: str) -> None:
    """Defaults and the status a freshly created object starts with."""
    if resource.group == "":
        if resource.plural == "pods":
            _default_pod(obj)
        elif resource.plural == "services":
            _default_service(obj, allocator)
        elif resource.plural == "persistentvolumeclaims":
            _default_pvc(obj)
        elif resource.plural == "namespaces":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
    elif resource.plural == "customresourcedefinitions":
        _default_crd(obj)
        obj["status"] = crd_status(obj, now)
    elif resource.is_custom and resource.has_status:
        obj.pop("status", None)


def prepare_update(resource: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Carry over what an update may not change: allocated service IPs, the pod's node binding."""
    if resource.group == "" and resource.plural == "services":
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP")
            spec["clusterIPs"] = old_spec.get("clusterIPs")
        elif spec["clusterIP"] != old_spec.get("clusterIP"):
            raise ApiError(422, "spec.clusterIP: Invalid value: field is immutable")
    elif resource.group == "" and resource.plural == "pods":
        old_node = (old.get("spec") or {}).get("nodeName")
        if old_node and (new.get("spec") or {}).get("nodeName") != old_node:
            new.setdefault("spec", {})["nodeName"] = old_node


def graceful_deletion_seconds(resource: ResourceType, obj: dict[str, Any], requested: int | None) -> int:
    """Pods bound to a node are deleted gracefully (the kubelet finishes the deletion); others at once."""
    if resource.group != "" or resource.plural != "pods":
        return 0
    if not (obj.get("spec") or {}).get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in _TERMINAL_POD_PHASES:
        return 0
    if requested is not None:
        return max(0, requested)
    return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
