"""Field ownership and server-side apply, as much of `structured-merge-diff` as kubectl and Helm use.

Every write records who set which fields in `metadata.managedFields` (`FieldsV1`): an apply
(`PATCH` with `application/apply-patch+yaml`) as operation `Apply` of its field manager, other writes as
`Update` of theirs. An apply:

1. fails with 409 for each field of the applied configuration that another manager owns with a different
   value, unless `force=true`, which takes the field over;
2. removes the fields this manager applied last time and no longer applies, unless another manager also
   owns them;
3. merges the configuration into the live object: maps recursively, lists whose schema names a merge key
   item by item, every other list and scalar replaced as a whole;
4. makes the applied fields this manager's set (shared with managers whose value is the same).

Fields are paths of `f:NAME` (a map key) and `k:{"KEY":VALUE}` (a keyed list item) elements, as in FieldsV1.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from . import core_schemas
from .errors import ApiError, FieldCause
from .patch import property_schema
from .resources import ResourceType

Path = tuple[str, ...]
Obj = dict[str, Any]

APPLY, UPDATE = "Apply", "Update"
# Identity and bookkeeping, which no manager owns.
_UNOWNED_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                     "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName")


def schema_of(resource: ResourceType) -> Obj:
    if resource.schema is not None:
        return resource.schema
    return core_schemas.kind_schema(resource.group, resource.version, resource.kind) or {}


def manager_name(query_manager: str | None, user_agent: str) -> str:
    """The fieldManager query parameter, else the client's name from its User-Agent, as the server does."""
    if query_manager:
        return query_manager
    return user_agent.split("/", 1)[0] or "unknown"


def _merge_key(schema: Obj) -> str | None:
    if "merge" in str(schema.get("x-kubernetes-patch-strategy") or "").split(","):
        key = schema.get("x-kubernetes-patch-merge-key")
        if key:
            return str(key)
    keys = schema.get("x-kubernetes-list-map-keys") or []
    return str(keys[0]) if schema.get("x-kubernetes-list-type") == "map" and keys else None


def _item_element(item: Obj, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"))


def _items_schema(schema: Obj) -> Obj:
    return core_schemas.resolve(dict(core_schemas.resolve(schema).get("items") or {}))


def _paths(value: Any, schema: Obj, prefix: Path) -> set[Path]:
    schema = core_schemas.resolve(schema)
    if isinstance(value, dict) and value:
        found: set[Path] = set()
        for key, child in value.items():
            found |= _paths(child, property_schema(schema, key), (*prefix, f"f:{key}"))
        return found
    merge_key = _merge_key(schema) if isinstance(value, list) else None
    if merge_key and all(isinstance(item, dict) and merge_key in item for item in value):
        found = {prefix} if not value else set()
        for item in value:
            element = (*prefix, _item_element(item, merge_key))
            found |= {element} | _paths(item, _items_schema(schema), element)
        return found
    return {prefix}


def owned_paths(obj: Obj, resource: ResourceType) -> set[Path]:
    """Every field path of an object a manager can own (identity, kind and status excluded)."""
    schema = schema_of(resource)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")
            and not (k == "status" and resource.has_status)}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _UNOWNED_METADATA}
    if metadata:
        body["metadata"] = metadata
    return _paths(body, schema, ()) - {()}


def _lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    value = obj
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f" and isinstance(value, dict) and name in value:
            value = value[name]
        elif kind == "k" and isinstance(value, list):
            key, wanted = next(iter(json.loads(name).items()))
            value = next((item for item in value if isinstance(item, dict) and item.get(key) == wanted), None)
            if value is None:
                return False, None
        else:
            return False, None
    return True, value


def _remove(obj: Obj, path: Path) -> None:
    found, parent = _lookup(obj, path[:-1])
    if not found:
        return
    kind, _, name = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        key, wanted = next(iter(json.loads(name).items()))
        parent[:] = [item for item in parent if not (isinstance(item, dict) and item.get(key) == wanted)]


def merge(live: Any, applied: Any, schema: Obj) -> Any:
    """Step 3: the applied configuration merged into the live value."""
    schema = core_schemas.resolve(schema)
    if isinstance(live, dict) and isinstance(applied, dict):
        result = dict(live)
        for key, value in applied.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = merge(live.get(key), value, property_schema(schema, key))
        return result
    merge_key = _merge_key(schema)
    if merge_key and isinstance(live, list) and isinstance(applied, list):
        result_list = list(live)
        for item in applied:
            index = next((i for i, existing in enumerate(result_list) if isinstance(existing, dict)
                          and isinstance(item, dict) and existing.get(merge_key) == item.get(merge_key)), None)
            if index is None:
                result_list.append(copy.deepcopy(item))
            else:
                result_list[index] = merge(result_list[index], item, _items_schema(schema))
        return result_list
    return copy.deepcopy(applied)


# -- managedFields ---------------------------------------------------------------------------------


def _to_fields_v1(paths: Iterable[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return tree


def _from_fields_v1(tree: Obj, prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    for element, child in tree.items():
        if element == ".":
            continue
        path = (*prefix, element)
        if not child or "." in child:
            found.add(path)
        found |= _from_fields_v1(child, path)
    return found


def _entries(obj: Obj) -> list[Obj]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], now: str) -> Obj:
    return {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
            "fieldsType": "FieldsV1", "fieldsV1": _to_fields_v1(paths)}


def _set_entries(obj: Obj, owners: dict[tuple[str, str], set[Path]], previous: list[Obj], api_version: str,
                 now: str) -> None:
    """Write the managers' sets back, keeping an unchanged entry (and its time) as it was."""
    kept = {(e["manager"], e["operation"]): e for e in previous}
    entries = []
    for (manager, operation), paths in owners.items():
        if not paths:
            continue
        old = kept.get((manager, operation))
        if old is not None and _from_fields_v1(old.get("fieldsV1") or {}) == paths:
            entries.append(old)
        else:
            entries.append(_entry(manager, operation, api_version, paths, now))
    obj.setdefault("metadata", {})["managedFields"] = entries


def _owners(obj: Obj | None) -> dict[tuple[str, str], set[Path]]:
    return {(e["manager"], e["operation"]): _from_fields_v1(e.get("fieldsV1") or {})
            for e in _entries(obj or {}) if e.get("manager")}


def record_update(resource: ResourceType, old: Obj | None, new: Obj, manager: str, now: str) -> None:
    """A non-apply write: `manager` (operation Update) takes every field it added or changed."""
    new_paths = owned_paths(new, resource)
    if old is None:
        changed = new_paths
    else:
        old_obj = old
        changed = {path for path in new_paths if _lookup(old_obj, path) != _lookup(new, path)}
    owners = _owners(old)
    for key in owners:
        owners[key] = (owners[key] - changed) & new_paths
    owners[(manager, UPDATE)] = owners.get((manager, UPDATE), set()) | changed
    _set_entries(new, owners, _entries(old or {}), resource.api_version, now)


def _conflict_error(conflicts: dict[str, list[Path]], api_version: str) -> ApiError:
    causes = [FieldCause(_dotted(path), f'conflict with "{manager}" using {api_version}', "FieldManagerConflict")
              for manager, paths in conflicts.items() for path in paths]
    if len(causes) == 1:
        summary = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        lines = "\n".join(f"- {cause.field}" for cause in causes)
        managers = ", ".join(f'"{m}"' for m in conflicts)
        summary = f"Apply failed with {len(causes)} conflicts: conflicts with {managers} using {api_version}:\n{lines}"
    return ApiError(409, summary, causes=causes)


def _dotted(path: Path) -> str:
    return "".join(f".{e[2:]}" if e.startswith("f:") else f"[{e[2:]}]" for e in path)


def apply(resource: ResourceType, live: Obj | None, applied: Obj, manager: str, force: bool, now: str) -> Obj:
    """The object after `manager` applies `applied` to `live` (None: it does not exist yet)."""
    applied_paths = owned_paths(applied, resource)
    owners = _owners(live)
    mine = owners.pop((manager, APPLY), set())
    base = copy.deepcopy(live) if live is not None else {}
    conflicts: dict[str, list[Path]] = {}  # 1. conflicts (or, forced, fields taken over)
    for (other, _operation), paths in owners.items():
        for path in sorted(paths & applied_paths):
            if _lookup(base, path) != _lookup(applied, path) and not force:
                conflicts.setdefault(other, []).append(path)
    if conflicts:
        raise _conflict_error(conflicts, resource.api_version)
    if force:
        for key in owners:
            owners[key] = {p for p in owners[key]
                           if p not in applied_paths or _lookup(base, p) == _lookup(applied, p)}
    still_owned = set().union(*owners.values()) if owners else set()
    for path in sorted(mine - applied_paths - still_owned, key=len, reverse=True):  # 2. fields no longer applied
        _remove(base, path)
    result: Obj = merge(base, applied, schema_of(resource))  # 3. merge
    owners[(manager, APPLY)] = applied_paths  # 4. the applied fields are this manager's
    _set_entries(result, owners, _entries(live or {}), resource.api_version, now)
    return result
