"""Structural-schema handling like the real server: prune unknown fields, apply defaults, validate.

Custom resources are pruned, defaulted and validated against their CRD's openAPIV3Schema (jsonschema
Draft 4, the dialect OpenAPI v3.0 schemas follow, after translating `nullable` and
`x-kubernetes-int-or-string`) and its `x-kubernetes-validations` CEL rules (see `cel.py`).
Core objects are only pruned of unknown fields against the bundled
Kubernetes schemas, as decoding into Go structs does on a real server.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from . import cel, core_schemas
from .errors import ApiError, FieldCause, invalid
from .resources import ResourceType

_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class Pruned:
    """The object after pruning and defaulting, and the paths of the fields that were dropped."""

    obj: dict[str, Any]
    unknown_fields: list[str] = field(default_factory=list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, schema: dict[str, Any], path: str, structural: bool, unknown: list[str]) -> Any:
    schema = core_schemas.resolve(schema) if not structural else schema
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [_walk(item, items, f"{path}[{i}]", structural, unknown) for i, item in enumerate(value)]
        return value
    if not isinstance(value, dict):
        return value
    properties: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    prunes = not preserve and additional is not True and (structural or bool(properties) or additional is False)
    result: dict[str, Any] = {}
    for key, item in value.items():
        child_path = _join(path, key)
        if key in properties:
            child = properties[key]
            if item is None and not child.get("nullable") and structural:
                continue
            result[key] = _walk(item, child, child_path, structural, unknown)
        elif isinstance(additional, dict):
            result[key] = _walk(item, additional, child_path, structural, unknown)
        elif (embedded and key in _ROOT_FIELDS) or not prunes:
            result[key] = item
        else:
            unknown.append(child_path)
    if structural:
        for key, child in properties.items():
            if key not in result and "default" in child:
                result[key] = _walk(copy.deepcopy(child["default"]), child, _join(path, key), structural, unknown)
    return result


def prune(obj: dict[str, Any], resource: ResourceType) -> Pruned:
    """Drop the fields the resource's schema does not declare (recording them) and apply defaults."""
    unknown: list[str] = []
    if resource.schema is not None:
        schema, structural = resource.schema, True
    else:
        core = core_schemas.kind_schema(resource.group, resource.version, resource.kind)
        if core is None:
            return Pruned(obj)
        schema, structural = core, False
    body = {k: v for k, v in obj.items() if k not in _ROOT_FIELDS}
    walked = _walk(body, schema, "", structural, unknown)
    pruned = {k: obj[k] for k in _ROOT_FIELDS if k in obj}
    pruned.update(walked)
    if not structural and "metadata" in obj:
        metadata_schema = (core_schemas.resolve(schema).get("properties") or {}).get("metadata") or {}
        pruned["metadata"] = _walk(obj["metadata"], metadata_schema, "metadata", False, unknown)
    return Pruned(pruned, unknown)


def _to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3.0 structural schema into plain JSON Schema Draft 4."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            converted[key] = {name: _to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            converted[key] = _to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [_to_json_schema(child) for child in value]
        elif key.startswith("x-") or key in ("nullable", "default", "description", "example", "externalDocs"):
            continue
        else:
            converted[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        converted.pop("anyOf", None)
        converted["type"] = ["integer", "string"]
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


_validators: dict[int, tuple[dict[str, Any], jsonschema.protocols.Validator]] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    json_schema = _to_json_schema(schema)
    json_schema.get("properties", {}).pop("metadata", None)
    validator = jsonschema.Draft4Validator(json_schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    _validators[id(schema)] = (schema, validator)
    return validator


def _error_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


def _cause(error: jsonschema.ValidationError) -> FieldCause:
    path = _error_path(error)
    if error.validator == "required":
        missing = next((name for name in error.validator_value if name not in (error.instance or {})), "")
        return FieldCause(_join(path, missing), "Required value", "FieldValueRequired")
    if error.validator == "enum":
        supported = ", ".join(f'"{v}"' for v in error.validator_value)
        return FieldCause(path, f'Unsupported value: "{error.instance}": supported values: {supported}',
                          "FieldValueNotSupported")
    if error.validator == "type":
        return FieldCause(path, f'Invalid value: "{error.instance}": {path} in body must be of type '
                                f"{error.validator_value}", "FieldValueTypeInvalid")
    return FieldCause(path, f"Invalid value: {error.instance!r}: {error.message}")


def validate(obj: dict[str, Any], resource: ResourceType, old: dict[str, Any] | None = None) -> None:
    """Raise 422 Invalid with one cause per schema violation and per failed `x-kubernetes-validations`
    rule (custom resources only; `old` is the stored object on updates, for transition rules)."""
    if resource.schema is None:
        return
    errors = sorted(_validator(resource.schema).iter_errors(obj), key=lambda e: list(e.absolute_path))
    causes = [_cause(e) for e in errors]
    if not causes:  # rules are written for values of the schema's types: a mistyped value is refused first
        body = {k: v for k, v in obj.items() if k != "metadata"}
        old_body = None if old is None else {k: v for k, v in old.items() if k != "metadata"}
        causes += cel.rule_violations(body, resource.schema, old_body)
    if causes:
        raise invalid(resource.kind, obj["metadata"].get("name", ""), causes, resource.group)


def validate_name(obj: dict[str, Any], resource: ResourceType) -> None:
    name = obj["metadata"].get("name", "")
    pattern = _DNS_LABEL if resource.plural in ("namespaces", "services") else _DNS_SUBDOMAIN
    if not pattern.match(name) or len(name) > 253:
        raise invalid(resource.kind, name, [FieldCause(
            "metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")],
            resource.group)


def validate_crd(crd: dict[str, Any]) -> None:
    """The checks that keep a CRD servable: names present, name = plural.group, at least one version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = crd["metadata"].get("name", "")
    causes = [FieldCause(f"spec.{path}", "Required value", "FieldValueRequired")
              for path, value in (("group", spec.get("group")), ("names.plural", names.get("plural")),
                                  ("names.kind", names.get("kind")), ("versions", spec.get("versions")))
              if not value]
    if not causes and name != f"{names['plural']}.{spec['group']}":
        causes.append(FieldCause("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if causes:
        raise invalid("CustomResourceDefinition", name, causes, "apiextensions.k8s.io")


def strict_decoding_error(resource: ResourceType, unknown_fields: list[str]) -> ApiError:
    fields = ", ".join(f'unknown field "{path}"' for path in unknown_fields)
    return ApiError(400, f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                         f"{resource.kind}: strict decoding error: {fields}")
