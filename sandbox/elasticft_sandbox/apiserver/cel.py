"""CRD validation rules (`x-kubernetes-validations`), evaluated with cel-python as the API server does.

Each rule is a CEL expression over `self`, the value of the schema node that carries it (after
defaulting). A rule that is not true is a cause `PATH: Invalid value: "TYPE": MESSAGE`, with the
rule's `message` (else `failed rule: RULE`), its `reason` and `fieldPath`. Transition rules (those
using `oldSelf`) apply to updates only, as on a real server; on a create they are skipped.
"""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from .errors import FieldCause

_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


@functools.cache
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(rule: dict[str, Any], value: Any, old: Any, path: str) -> FieldCause | None:
    expression = str(rule.get("rule", ""))
    transition = "oldSelf" in expression
    if transition and old is None:
        return None
    activation = {"self": json_to_cel(value)}
    if transition:
        activation["oldSelf"] = json_to_cel(old)
    try:
        result = _program(expression).evaluate(activation)
    except CELParseError as error:
        return FieldCause(path, f"Invalid value: {expression!r}: compilation failed: {error}")
    if isinstance(result, celtypes.BoolType) and bool(result):
        return None
    field = path + str(rule.get("fieldPath") or "")
    reason = str(rule.get("reason") or "FieldValueInvalid")
    if isinstance(result, CELEvalError):
        return FieldCause(field, f'Invalid value: "{_type_name(value)}": rule evaluation error: {result.args[0]}',
                          reason if reason in _REASONS else "FieldValueInvalid")
    message = rule.get("message") or f"failed rule: {expression}"
    return FieldCause(field, f'Invalid value: "{_type_name(value)}": {message}',
                      reason if reason in _REASONS else "FieldValueInvalid")


def rule_violations(value: Any, schema: dict[str, Any], old: Any = None, path: str = "") -> list[FieldCause]:
    """Every violated validation rule in `value` (and below it), `old` being the stored value on updates."""
    causes = [cause for rule in schema.get("x-kubernetes-validations") or ()
              if (cause := _check(rule, value, old, path)) is not None]
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            child_schema = properties.get(key) or (additional if isinstance(additional, dict) else None)
            if child_schema:
                child_old = old.get(key) if isinstance(old, dict) else None
                causes += rule_violations(child, child_schema, child_old, _join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            causes += rule_violations(item, schema["items"], None, f"{path}[{index}]")
    return causes
