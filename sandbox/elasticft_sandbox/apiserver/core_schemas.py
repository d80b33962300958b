"""The core types' JSON schemas, as bundled by `kubernetes-validate` for the version we emulate.

They feed strategic-merge-patch metadata (merge keys and strategies), the `/openapi/v3` documents
kubectl reads, and strict validation of core objects.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

KUBERNETES_VERSION = "1.32.0"
_DEFS_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, Any]:
    """All definitions by name (`io.k8s.api.core.v1.Pod`), refs as `#/$defs/NAME`."""
    bundle = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local"
    document: dict[str, Any] = json.loads((bundle / "_definitions.json").read_text())
    return dict(document["$defs"])


@functools.cache
def _kind_index() -> dict[tuple[str, str, str], str]:
    index = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            index[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return index


def definition_name(group: str, version: str, kind: str) -> str | None:
    return _kind_index().get((group, version, kind))


def resolve(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Follow a `$ref` (possibly inside allOf/anyOf) to the definition it names."""
    if not schema:
        return {}
    ref = schema.get("$ref")
    if ref is None:
        for key in ("allOf", "anyOf", "oneOf"):
            for option in schema.get(key) or ():
                if "$ref" in option:
                    ref = option["$ref"]
                    break
    if ref and ref.startswith(_DEFS_PREFIX):
        return dict(definitions().get(ref[len(_DEFS_PREFIX):], {}))
    return schema


def kind_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None
