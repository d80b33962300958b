"""Per-type behaviour the real API server implements in its registry strategies: validation and
defaults on create, fields that writes through the main resource may not change, how an object is
deleted, and what its creation or removal sets off (a CRD's types served, a node's pods collected).
One `Strategy` per kind that needs one; `strategy_for` finds it. The store calls the hooks and knows
no kind by name."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import validation
from .errors import ApiError
from .resources import ResourceType

if TYPE_CHECKING:
    from .store import Store

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


@dataclass(frozen=True)
class CreateContext:
    """What create hooks may need besides the object: the cluster IP allocator, the time, and whether
    the create is a dry run (nothing it takes may stay taken)."""

    cluster_ips: ClusterIPAllocator
    now: str
    dry_run: bool = False


@dataclass(frozen=True)
class UpdateContext:
    """What update hooks may need besides the objects: the time, and the subresource written ("" for
    the main resource, "status", or "binding")."""

    now: str
    subresource: str = ""


class Strategy:
    """One kind's REST strategy, in the order the store calls its hooks on each write.

    The base class is what every kind does; a kind that does more overrides the hook it needs.
    Hooks that take the store run after the write is stored and emitted, and may write in turn.
    """

    # -- create ------------------------------------------------------------------------------------

    def validate_create(self, obj: dict[str, Any]) -> None:
        """Refuse an object this kind cannot store, before any default is set."""

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        """Defaults and the status a freshly created object starts with."""

    def after_create(self, obj: dict[str, Any], store: Store) -> None:
        """What a stored new object sets off."""

    # -- update ------------------------------------------------------------------------------------

    def validate_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        """Refuse an update this kind cannot store."""

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        """Carry over (or refuse changes to) what an update may not change; recompute what follows."""

    def after_update(self, obj: dict[str, Any], store: Store) -> None:
        """What a stored change sets off."""

    # -- delete ------------------------------------------------------------------------------------

    def graceful_deletion_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        """Seconds the object stays with `deletionTimestamp` before it is removed; 0 removes it at once."""
        return 0

    def removes_at_once(self, obj: dict[str, Any], grace: int) -> bool:
        """Whether a delete removes the object without first marking it (nothing to wait for)."""
        return not obj["metadata"].get("finalizers") and grace == 0

    def prepare_delete(self, marked: dict[str, Any]) -> None:
        """Changes the object carries once marked for deletion."""

    def after_delete_marked(self, marked: dict[str, Any], store: Store) -> None:
        """Work the mark starts, which the object's removal may wait for."""

    def ready_to_remove(self, marked: dict[str, Any], store: Store) -> bool:
        """Whether an object marked for deletion may go now: no finalizers left and no grace period."""
        meta = marked["metadata"]
        return not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds")

    def after_delete(self, removed: dict[str, Any], store: Store) -> None:
        """What the object's removal sets off, and what it gives back."""


class PodStrategy(Strategy):
    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        _default_pod(obj)

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        old_node = (old.get("spec") or {}).get("nodeName")
        if old_node and (new.get("spec") or {}).get("nodeName") != old_node:
            new.setdefault("spec", {})["nodeName"] = old_node

    def graceful_deletion_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        """Pods bound to a node are deleted gracefully (the kubelet finishes the deletion); others at once."""
        if not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in _TERMINAL_POD_PHASES:
            return 0
        if requested is not None:
            return max(0, requested)
        return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))


class ServiceStrategy(Strategy):
    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        _default_service(obj, context.cluster_ips)
        if context.dry_run:
            context.cluster_ips.release(obj["spec"].get("clusterIP"))

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP")
            spec["clusterIPs"] = old_spec.get("clusterIPs")
        elif spec["clusterIP"] != old_spec.get("clusterIP"):
            raise ApiError(422, "spec.clusterIP: Invalid value: field is immutable")

    def after_delete(self, removed: dict[str, Any], store: Store) -> None:
        store.cluster_ips.release((removed.get("spec") or {}).get("clusterIP"))


class PersistentVolumeClaimStrategy(Strategy):
    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        _default_pvc(obj)


class NamespaceStrategy(Strategy):
    """A deleted namespace turns Terminating, deletes its content, and goes once the last of it has gone
    (the store re-checks a namespace whenever an object in it is removed)."""

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}

    def removes_at_once(self, obj: dict[str, Any], grace: int) -> bool:
        return False  # the spec finalizer "kubernetes": its content goes first

    def prepare_delete(self, marked: dict[str, Any]) -> None:
        marked["status"] = {"phase": "Terminating"}

    def after_delete_marked(self, marked: dict[str, Any], store: Store) -> None:
        namespace = marked["metadata"]["name"]
        for resource in store.registry:
            if not resource.namespaced or resource.storage_version not in ("", resource.version):
                continue
            for obj in store.list_objects(resource, namespace):
                if not obj["metadata"].get("deletionTimestamp"):
                    store.delete_at_once(resource, namespace, obj["metadata"]["name"])

    def ready_to_remove(self, marked: dict[str, Any], store: Store) -> bool:
        return not store.holds_objects_in(marked["metadata"]["name"])


class NodeStrategy(Strategy):
    """Pod garbage collection: pods bound to a node that no longer exists are deleted."""

    def after_delete(self, removed: dict[str, Any], store: Store) -> None:
        pods = store.registry.get("", "v1", "pods")
        if pods is None:
            return
        node = removed["metadata"]["name"]
        for pod in store.list_objects(pods, None, lambda p: (p.get("spec") or {}).get("nodeName") == node):
            store.delete_at_once(pods, pod["metadata"]["namespace"], pod["metadata"]["name"])


class CustomResourceDefinitionStrategy(Strategy):
    """A CRD is validated and established on every write of its spec; its types are served while it is
    stored, and their objects go with it."""

    def validate_create(self, obj: dict[str, Any]) -> None:
        validation.validate_crd(obj)

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        _default_crd(obj)
        obj["status"] = crd_status(obj, context.now)

    def after_create(self, obj: dict[str, Any], store: Store) -> None:
        store.registry.register_crd(obj)

    def validate_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        if context.subresource != "status":
            validation.validate_crd(new)

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        if context.subresource != "status":
            new["status"] = crd_status(new, context.now)

    def after_update(self, obj: dict[str, Any], store: Store) -> None:
        store.registry.register_crd(obj)

    def after_delete(self, removed: dict[str, Any], store: Store) -> None:
        for resource in store.registry.unregister_crd(removed["metadata"]["name"]):
            store.remove_all(resource)


class CustomResourceStrategy(Strategy):
    """Custom resources with a status subresource start without status (only /status writes it)."""

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        obj.pop("status", None)


class SecretStrategy(Strategy):
    """`stringData` is write-only: merged into `data` (base64) on every write; the type defaults to Opaque
    and cannot change."""

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        obj.setdefault("type", "Opaque")
        _merge_string_data(obj)

    def prepare_update(self, old: dict[str, Any], new: dict[str, Any], context: UpdateContext) -> None:
        new.setdefault("type", old.get("type", "Opaque"))
        if new["type"] != old.get("type", "Opaque"):
            raise ApiError(422, f'Secret "{old["metadata"]["name"]}" is invalid: type: Invalid value: '
                                f'"{new["type"]}": field is immutable')
        _merge_string_data(new)


def _merge_string_data(secret: dict[str, Any]) -> None:
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


class WorkloadStrategy(Strategy):
    """Deployments and ReplicaSets: one replica unless asked, status written only by their controller."""

    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        obj["status"] = {}


class DeploymentStrategy(WorkloadStrategy):
    def prepare_create(self, obj: dict[str, Any], context: CreateContext) -> None:
        super().prepare_create(obj, context)
        spec = obj["spec"]
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})


_BASE = Strategy()
_STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "pods"): PodStrategy(),
    ("", "services"): ServiceStrategy(),
    ("", "persistentvolumeclaims"): PersistentVolumeClaimStrategy(),
    ("", "namespaces"): NamespaceStrategy(),
    ("", "nodes"): NodeStrategy(),
    ("", "secrets"): SecretStrategy(),
    ("apps", "deployments"): DeploymentStrategy(),
    ("apps", "replicasets"): WorkloadStrategy(),
    ("apiextensions.k8s.io", "customresourcedefinitions"): CustomResourceDefinitionStrategy(),
}
_CUSTOM = CustomResourceStrategy()


def strategy_for(resource: ResourceType) -> Strategy:
    """The strategy of a served type: its own, the custom-resource one, or the base."""
    if resource.is_custom:
        return _CUSTOM if resource.has_status else _BASE
    return _STRATEGIES.get((resource.group, resource.plural), _BASE)
