"""The resource types the emulator serves: the built-in core types plus every established CRD."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One served group/version/resource, with what discovery, tables and validation need."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    subresources: tuple[str, ...] = ()
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    storage_version: str = ""
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    #: answered at once and never stored (access and identity reviews): only `create` is served
    review: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def storage_key(self) -> str:
        """All versions of one resource share storage, as with a CRD served at several versions."""
        return f"{self.group}/{self.plural}"

    @property
    def is_custom(self) -> bool:
        return self.schema is not None

    @property
    def qualified(self) -> str:
        """`pods` or `finetunejobs.elasticft.io`, as the real server names resources in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(plural: str, kind: str, namespaced: bool, short: tuple[str, ...] = (), status: bool = False,
          categories: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> ResourceType:
    subresources = (("status",) if status else ()) + extra
    return ResourceType("", "v1", plural, kind, namespaced, short, categories, status, subresources)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("pods", "Pod", True, ("po",), True, ("all",),
          ("attach", "binding", "eviction", "exec", "log", "portforward")),
    _core("services", "Service", True, ("svc",), True, ("all",)),
    _core("nodes", "Node", False, ("no",), True),
    _core("events", "Event", True, ("ev",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), True),
    _core("configmaps", "ConfigMap", True, ("cm",)),
    _core("namespaces", "Namespace", False, ("ns",), True),
    _core("secrets", "Secret", True),
    _core("serviceaccounts", "ServiceAccount", True, ("sa",), extra=("token",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("all",), True, ("status", "scale")),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",), True, ("status", "scale")),
    *(ResourceType("rbac.authorization.k8s.io", "v1", plural, kind, namespaced)
      for plural, kind, namespaced in (("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                       ("clusterroles", "ClusterRole", False),
                                       ("clusterrolebindings", "ClusterRoleBinding", False))),
    *(ResourceType(group, "v1", plural, kind, namespaced, verbs=("create",), review=True)
      for group, plural, kind, namespaced in (
          ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
          ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
          ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
          ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
          ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
      )),
    ResourceType(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        ("crd", "crds"), ("api-extensions",), True, ("status",),
    ),
)


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition makes servable, one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), spec["versions"][0]["name"])
    types = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        has_status = "status" in (version.get("subresources") or {})
        subresources: tuple[str, ...] = ("status",) if has_status else ()
        if "scale" in (version.get("subresources") or {}):
            subresources += ("scale",)
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True
        }
        types.append(ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            has_status=has_status,
            subresources=subresources,
            schema=schema,
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            storage_version=storage,
        ))
    return types


class Registry:
    """Lookup of served resource types by group/version/plural, kind, or any name kubectl may use."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        self.generation = 0  # bumped whenever the served set changes, so cached documents can be rebuilt
        for resource in BUILTIN_TYPES:
            self._types[(resource.group, resource.version, resource.plural)] = resource

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return next((r for r in self._types.values()
                     if r.group == group and r.version == version and r.kind == kind), None)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, the built-in preferred version first."""
        groups: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._types.values() if r.group == group and r.version == version]

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve (or re-serve after an update) the CRD's resources; returns the new types."""
        self.unregister_crd(crd["metadata"]["name"])
        types = crd_resource_types(crd)
        for resource in types:
            self._types[(resource.group, resource.version, resource.plural)] = resource
        self._crd_types[crd["metadata"]["name"]] = types
        self.generation += 1
        return types

    def unregister_crd(self, crd_name: str) -> list[ResourceType]:
        types = self._crd_types.pop(crd_name, [])
        for resource in types:
            self._types.pop((resource.group, resource.version, resource.plural), None)
        self.generation += 1
        return types
