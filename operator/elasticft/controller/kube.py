"""The one Kubernetes client wrapper of the operator: plain dicts in and out, idempotent writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from elasticft.api.models import GROUP, PLURAL, VERSION

# An object as the API server returns it or takes it (the builders call the ones they make Manifest).
ApiObject = dict[str, Any]


class Conflict(Exception):
    """The object changed since it was read; the caller tries again on its next look."""


class Refused(Exception):
    """The API server refused to create an object (a ResourceQuota, an admission webhook, validation);
    the message is the server's, prefixed with the object's kind and name."""


# Refusals that a retry may get past once something changes (a quota freed, a webhook fixed).
_REFUSED = (400, 403, 422)


def load_config() -> None:
    """In-cluster credentials in a pod, else the current kubeconfig (kind, the sandbox, a laptop)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def _json(response: Any) -> Any:
    return json.loads(response.data)


def pooled_client(connections: int) -> client.ApiClient:
    """An API client keeping up to `connections` connections open: one per thread that may call at once
    (the default, 5 per CPU, is fewer than kopf's workers, and every call beyond it opens and drops a
    connection of its own)."""
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


class Kube:
    """Reads and writes the objects the operator owns; AlreadyExists and NotFound are success."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def get_job(self, namespace: str, name: str) -> ApiObject | None:
        try:
            return _json(self.custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_job_status(self, namespace: str, name: str, resource_version: str, status: ApiObject) -> None:
        """Merge-patch status, guarded by resourceVersion so two looks never both apply a decision."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed meanwhile") from exc
            raise

    def mark_launched(self, namespace: str, name: str, world: int) -> None:
        """Record that every pod of `world` was created (status.launchedGeneration). Unguarded: only the
        operator writes the field, and the world it names only moves forward."""
        body = {"status": {"launchedGeneration": world}}
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body)

    def list_pods(self, namespace: str, label_selector: str) -> list[ApiObject]:
        response = self.core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False)
        return list(_json(response)["items"])

    def list_nodes(self) -> list[ApiObject]:
        return list(_json(self.core.list_node(_preload_content=False))["items"])

    def service_cluster_ip(self, namespace: str, name: str) -> str | None:
        try:
            service = _json(self.core.read_namespaced_service(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        ip = service.get("spec", {}).get("clusterIP")
        return ip if ip and ip != "None" else None

    def claim_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_persistent_volume_claim(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            cm = _json(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.get("data") or {})

    def create(self, manifest: ApiObject) -> bool:
        """Create a Pod, Service or PersistentVolumeClaim; False when it already existed."""
        namespace = manifest["metadata"]["namespace"]
        creators: dict[str, Callable[..., Any]] = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
        }
        create = creators[manifest["kind"]]
        try:
            create(namespace, manifest, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status in _REFUSED:
                raise Refused(f"{manifest['kind']} {manifest['metadata']['name']}: {_server_message(exc)}") from exc
            raise
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        """Graceful delete: the kubelet sends SIGTERM and waits the pod's grace period."""
        try:
            self.core.delete_namespaced_pod(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _server_message(exc: ApiException) -> str:
    """The Status message of an API error (`exceeded quota: ...`), else its HTTP reason."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
