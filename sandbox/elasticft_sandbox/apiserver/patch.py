"""The three PATCH flavours: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge patch follows the rules of `k8s.io/apimachinery/pkg/util/strategicpatch`: maps merge,
`null` deletes, lists whose schema declares `x-kubernetes-patch-strategy: merge` merge by their
`x-kubernetes-patch-merge-key` (primitive lists are unioned), other lists are replaced; the
directives `$patch`, `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…` are honoured.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from . import core_schemas
from .errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 operations (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch must be a list of operations")
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {error}") from error
    return result


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], kind_schema: dict[str, Any]) -> Any:
    """Apply a strategic merge patch to a core object whose JSON schema is `kind_schema`."""
    return _merge_map(target, patch, kind_schema)


def property_schema(schema: dict[str, Any], key: str) -> dict[str, Any]:
    resolved = core_schemas.resolve(schema)
    properties = resolved.get("properties") or {}
    if key in properties:
        return dict(properties[key])
    additional = resolved.get("additionalProperties")
    return dict(additional) if isinstance(additional, dict) else {}


def _merge_map(target: Any, patch: dict[str, Any], schema: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith(_SET_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        field_schema = property_schema(schema, key)
        if isinstance(value, dict):
            merged = _merge_map(result.get(key), value, field_schema)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, field_schema)
            order = patch.get(_SET_ORDER + key)
            if order is not None:
                result[key] = _apply_order(result[key], order, field_schema.get("x-kubernetes-patch-merge-key"))
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: Any, patch: list[Any], schema: dict[str, Any]) -> list[Any]:
    strategy = str(schema.get("x-kubernetes-patch-strategy") or "")
    if "merge" not in strategy.split(","):
        return [item for item in patch if not (isinstance(item, dict) and item.get("$patch"))]
    current = list(target) if isinstance(target, list) else []
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    if not merge_key:
        return current + [item for item in patch if item not in current]
    item_schema = dict(schema.get("items") or {})
    for item in patch:
        if not isinstance(item, dict):
            continue
        if item.get("$patch") == "replace":
            return [dict(i) for i in patch if i.get("$patch") != "replace"]
        index = next((i for i, existing in enumerate(current)
                      if isinstance(existing, dict) and existing.get(merge_key) == item.get(merge_key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
            continue
        if index is None:
            current.append(_merge_map({}, item, item_schema))
        else:
            current[index] = _merge_map(current[index], item, item_schema)
    return current


def _apply_order(items: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    """Sort `items` as `$setElementOrder` lists them; items it does not name keep their place at the end."""
    def key_of(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [key_of(entry) for entry in order]
    ranked = sorted(range(len(items)), key=lambda i: (
        wanted.index(key_of(items[i])) if key_of(items[i]) in wanted else len(wanted) + i))
    return [items[i] for i in ranked]
