"""Discovery documents: `/version`, `/api`, `/apis` and the per-group-version resource lists."""

from __future__ import annotations

from typing import Any

from .core_schemas import KUBERNETES_VERSION
from .resources import Registry, ResourceType

_SUBRESOURCE_KINDS = {
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "status": (None, None, None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}


def version_info() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    return {"major": major, "minor": minor, "gitVersion": f"v{KUBERNETES_VERSION}", "gitCommit": "elasticft-sandbox",
            "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
            "platform": "linux/amd64"}


def core_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def group_document(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def group_list(registry: Registry) -> dict[str, Any]:
    groups = [group_document(g, versions) for g, versions in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": resource.plural, "singularName": resource.singular,
                             "namespaced": resource.namespaced, "kind": resource.kind, "verbs": list(resource.verbs)}
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    entries = []
    for resource in sorted(resources, key=lambda r: r.plural):
        entries.append(_resource_entry(resource))
        for sub in resource.subresources:
            sub_group, sub_version, sub_kind, verbs = _SUBRESOURCE_KINDS[sub]
            entry: dict[str, Any] = {"name": f"{resource.plural}/{sub}", "singularName": "",
                                     "namespaced": resource.namespaced, "kind": sub_kind or resource.kind,
                                     "verbs": list(verbs)}
            if sub_group is not None:
                entry.update(group=sub_group, version=sub_version)
            entries.append(entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}
