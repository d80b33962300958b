"""OpenAPI documents for kubectl: `/openapi/v3` (per group-version) and a JSON `/openapi/v2`.

kubectl reads them to learn that PATCH accepts `fieldValidation` (so it sends `fieldValidation=Strict`
and lets the server validate), whether a kind takes strategic merge patches, and the schemas with
their patch merge keys. Core schemas come from `kubernetes-validate`; custom ones from the CRDs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import core_schemas
from .patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .resources import Registry, ResourceType

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _reverse_domain(group: str) -> str:
    return ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"


def schema_name(resource: ResourceType) -> str:
    core = core_schemas.definition_name(resource.group, resource.version, resource.kind)
    return core or f"{_reverse_domain(resource.group)}.{resource.version}.{resource.kind}"


def _rewrite_refs(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        return {k: (prefix + v[len("#/$defs/"):] if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                    else _rewrite_refs(v, prefix)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_refs(item, prefix) for item in value]
    return value


def _referenced_definitions(root: str) -> list[str]:
    definitions = core_schemas.definitions()
    seen, pending = set(), [root]
    while pending:
        name = pending.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        text = json.dumps(definitions[name])
        pending.extend(part.split('"', 1)[0] for part in text.split('"$ref": "#/$defs/')[1:])
    return sorted(seen)


def schemas_for(resources: list[ResourceType], ref_prefix: str) -> dict[str, Any]:
    """Component schemas of the given resources (and everything the core ones reference)."""
    schemas: dict[str, Any] = {}
    for resource in resources:
        gvk = [{"group": resource.group, "version": resource.version, "kind": resource.kind}]
        if resource.schema is not None:
            schemas[schema_name(resource)] = dict(resource.schema, **{"x-kubernetes-group-version-kind": gvk})
            continue
        root = core_schemas.definition_name(resource.group, resource.version, resource.kind)
        if root is None:
            continue
        for name in _referenced_definitions(root):
            schemas[name] = _rewrite_refs(core_schemas.definitions()[name], ref_prefix)
    return schemas


def _operation(resource: ResourceType, action: str, ref: str, body_types: tuple[str, ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version,
                                            "kind": resource.kind},
        "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}} for name in _QUERY_PARAMETERS],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
    }
    if body_types:
        operation["requestBody"] = {"content": {t: {"schema": {"$ref": ref}} for t in body_types}, "required": True}
    return operation


def _paths(resource: ResourceType, ref: str) -> dict[str, Any]:
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    scope = f"{prefix}/namespaces/{{namespace}}" if resource.namespaced else prefix
    patch_types = (JSON_PATCH, MERGE_PATCH) if resource.is_custom else (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
    item = {
        "get": _operation(resource, "get", ref),
        "put": _operation(resource, "put", ref, ("application/json",)),
        "patch": _operation(resource, "patch", ref, patch_types),
        "delete": _operation(resource, "delete", ref),
    }
    collection = {"get": _operation(resource, "list", ref), "post": _operation(resource, "post", ref,
                                                                                ("application/json",))}
    paths = {f"{scope}/{resource.plural}": collection, f"{scope}/{resource.plural}/{{name}}": item}
    if resource.has_status:
        paths[f"{scope}/{resource.plural}/{{name}}/status"] = {
            "get": _operation(resource, "get", ref), "put": _operation(resource, "put", ref, ("application/json",)),
            "patch": _operation(resource, "patch", ref, patch_types)}
    return paths


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    prefix = "#/components/schemas/"
    paths: dict[str, Any] = {}
    for resource in resources:
        paths.update(_paths(resource, prefix + schema_name(resource)))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{core_schemas.KUBERNETES_VERSION}"},
            "paths": paths, "components": {"schemas": schemas_for(resources, prefix)}}


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def discovery_document(registry: Registry, documents: dict[str, bytes]) -> dict[str, Any]:
    """The `/openapi/v3` index; each entry's URL carries a content hash so kubectl's cache stays fresh."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            key = _path_key(group, version)
            digest = hashlib.sha256(documents[key]).hexdigest()[:32].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def all_documents(registry: Registry) -> dict[str, bytes]:
    """Every group-version document, serialised, by its `/openapi/v3/` path."""
    documents = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = group_version_document(registry, group, version)
            if document is not None:
                documents[_path_key(group, version)] = json.dumps(document).encode()
    return documents


def swagger_v2(registry: Registry) -> dict[str, Any]:
    """A JSON OpenAPI v2 document with the same definitions, for clients that still read v2."""
    resources = list(registry)
    prefix = "#/definitions/"
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": f"v{core_schemas.KUBERNETES_VERSION}"},
            "paths": {}, "definitions": schemas_for(resources, prefix)}
