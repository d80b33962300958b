"""Validation of built-in objects as the API server does it, driven by the bundled Kubernetes schemas.

Walking an object along its kind's schema, each value is checked by the definition it has there:
- `Quantity` (resources, storage sizes): the API's quantity syntax (`banana` is not a size);
- `int32`/`int64` fields: within bounds (decoding into Go integers fails beyond them);
- `ObjectMeta` (the object's and every pod template's): label keys (an optional DNS-subdomain prefix
  and a name of at most 63 characters) and values (at most 63, alphanumeric at both ends);
- `EnvVar`: names without `=` (the kubelet's rule), values without NUL bytes (no process can take them).
Custom resources get the metadata checks; their bodies are checked against their CRD (`validation.py`).
"""

from __future__ import annotations

import re
from typing import Any

from . import core_schemas
from .errors import FieldCause, invalid
from .resources import ResourceType

_DEFS = "#/$defs/"
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_QUANTITY_EXACT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
LABEL_MAX = 63


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    for key in ("allOf", "anyOf", "oneOf"):
        for option in schema.get(key) or ():
            ref = ref or option.get("$ref", "")
    return str(ref[len(_DEFS):]) if ref.startswith(_DEFS) else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def label_causes(labels: Any, path: str) -> list[FieldCause]:
    """Label keys and values as `ValidateLabels` checks them."""
    causes: list[FieldCause] = []
    for key, value in (labels or {}).items():
        prefix, _, name = str(key).rpartition("/")
        if len(name) > LABEL_MAX or not _LABEL_NAME.match(name) or (
                prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or "/" in prefix:
            causes.append(FieldCause(path, f'Invalid value: "{key}": name part must consist of alphanumeric '
                                           "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                                           f"character and be no more than {LABEL_MAX} characters; an optional prefix "
                                           "must be a DNS subdomain"))
        text = "" if value is None else str(value)
        if text and (len(text) > LABEL_MAX or not _LABEL_NAME.match(text)):
            causes.append(FieldCause(path, f'Invalid value: "{text}": a valid label must be an empty string or '
                                           "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                                           f"end with an alphanumeric character (at most {LABEL_MAX} characters)"))
    return causes


def _definition_causes(name: str, value: Any, path: str) -> list[FieldCause]:
    if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
        if isinstance(value, str) and not _QUANTITY_EXACT.match(value):
            return [FieldCause(path, f'Invalid value: "{value}": quantities must match the regular expression '
                                     f"'{QUANTITY.pattern}'")]
    elif name == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" and isinstance(value, dict):
        return label_causes(value.get("labels"), _join(path, "labels"))
    elif name == "io.k8s.api.core.v1.EnvVar" and isinstance(value, dict):
        causes = []
        env_name = str(value.get("name", ""))
        if not _ENV_NAME.match(env_name):
            causes.append(FieldCause(_join(path, "name"), f'Invalid value: "{env_name}": a valid environment '
                                     "variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
                                     "and must not start with a digit"))
        if "\x00" in str(value.get("value", "")):
            causes.append(FieldCause(_join(path, "value"), "Invalid value: the value contains a NUL byte, which no "
                                                           "process environment can hold"))
        return causes
    return []


def _walk(value: Any, schema: dict[str, Any], path: str) -> list[FieldCause]:
    name = _ref_name(schema)
    causes = _definition_causes(name, value, path) if name else []
    resolved = core_schemas.resolve(schema)
    if isinstance(value, bool):
        return causes
    if isinstance(value, int) and resolved.get("format") in _BOUNDS:
        low, high = _BOUNDS[resolved["format"]]
        if not low <= value <= high:
            causes.append(FieldCause(path, f"Invalid value: {value}: must be within the {resolved['format']} range"))
    elif isinstance(value, dict):
        properties = resolved.get("properties") or {}
        additional = resolved.get("additionalProperties")
        for key, child in value.items():
            child_schema = properties.get(key) or (additional if isinstance(additional, dict) else None)
            if child_schema:
                item_path = f"{path}[{key}]" if key not in properties else _join(path, key)
                causes += _walk(child, child_schema, item_path)
    elif isinstance(value, list) and isinstance(resolved.get("items"), dict):
        for index, item in enumerate(value):
            causes += _walk(item, resolved["items"], f"{path}[{index}]")
    return causes


def validate(obj: dict[str, Any], resource: ResourceType) -> None:
    """Raise 422 Invalid listing every violation of the rules above."""
    if resource.is_custom:
        causes = label_causes((obj.get("metadata") or {}).get("labels"), "metadata.labels")
    else:
        schema = core_schemas.kind_schema(resource.group, resource.version, resource.kind)
        causes = _walk(obj, schema, "") if schema else []
    if causes:
        raise invalid(resource.kind, (obj.get("metadata") or {}).get("name", ""), causes, resource.group)
