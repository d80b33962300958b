"""Generate the FineTuneJob CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3 schema: no `$ref`, no `anyOf` of types, `nullable` instead
of a null type, boolean `exclusiveMinimum`, `x-kubernetes-int-or-string` for quantities, and no
`patternProperties`/`propertyNames` (map keys are checked by a CEL rule instead). This module
rewrites pydantic's JSON Schema into that form, so the models stay the only definition of the API.
Run `elasticft crd --output crds/finetunejobs.elasticft.io.yaml` after changing the models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from elasticft.api.models import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    FineTuneJobSpec,
    FineTuneJobStatus,
)

Schema = dict[str, Any]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Workers", "type": "string", "jsonPath": ".status.workers.summary",
     "description": "ready/desired (spot+on-demand)"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Samples/s", "type": "number", "jsonPath": ".status.throughput.current"},
    {"name": "Cost", "type": "number", "jsonPath": ".status.cost.accrued", "description": "USD so far"},
    {"name": "ETA", "type": "string", "jsonPath": ".status.eta"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Cross-field rules the API server can check itself (CEL); the operator checks them too (Valid=False).
SPEC_RULES: dict[str, list[dict[str, str]]] = {
    "elastic": [{"rule": "self.minWorkers <= self.maxWorkers", "message": "minWorkers must be <= maxWorkers"}],
}

_DROPPED = {"title", "additionalProperties"}


def _structural(node: Schema, defs: Schema) -> Schema:
    """Rewrite one pydantic JSON Schema node into Kubernetes structural OpenAPI v3."""
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if {o.get("type") for o in options} == {"integer", "string"}:
            # Each bound applies to its own type only: minimum to integers, pattern to strings.
            result = {"x-kubernetes-int-or-string": True}
            for option in options:
                result.update({k: v for k, v in option.items() if k in ("minimum", "maximum", "pattern")})
            if "description" in rest:
                result["description"] = rest["description"]
        elif len(options) == 1:
            result = _structural({**options[0], **rest}, defs)
        else:
            raise ValueError(f"no structural form for anyOf {node['anyOf']}")
        if nullable:
            result["nullable"] = True
            result.pop("default", None)
        return result
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if "patternProperties" in node or "propertyNames" in node:
        out.pop("patternProperties", None)
        out.pop("propertyNames", None)
        ((key_pattern, values),) = node.get("patternProperties", {"": {"type": "string"}}).items()
        out["additionalProperties"] = _structural(values, defs)
        out["x-kubernetes-validations"] = [_key_rule(key_pattern, node.get("propertyNames", {}))]
    return out


def _key_rule(pattern: str, bounds: Schema) -> dict[str, str]:
    """A CEL rule checking every key of a map, the structural stand-in for `propertyNames`."""
    checks = [f"k.matches(r'{pattern}')"] if pattern else []
    if "minLength" in bounds:
        checks.append(f"size(k) >= {bounds['minLength']}")
    if "maxLength" in bounds:
        checks.append(f"size(k) <= {bounds['maxLength']}")
    return {"rule": f"self.all(k, {' && '.join(checks)})",
            "message": f"every key must match {pattern} and have {bounds.get('minLength', 0)}-"
                       f"{bounds.get('maxLength', 'any')} characters"}


def _model_schema(model: type[FineTuneJobSpec] | type[FineTuneJobStatus]) -> Schema:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _structural(schema, defs)


def openapi_schema() -> Schema:
    """The CRD's openAPIV3Schema for FineTuneJob."""
    spec = _model_schema(FineTuneJobSpec)
    for field_name, rules in SPEC_RULES.items():
        spec["properties"][field_name]["x-kubernetes-validations"] = rules
    status = _model_schema(FineTuneJobStatus)
    return {
        "type": "object",
        "description": "An elastic, spot-aware fine-tuning job run by the ElasticFT operator.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }


def custom_resource_definition() -> Schema:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "elasticft", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["all", "elasticft"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render() -> str:
    """The CRD as the YAML text committed under crds/."""
    header = "# Generated by `elasticft crd` from elasticft/api/models.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="elasticft crd", description="Print or write the FineTuneJob CRD.")
    parser.add_argument("--output", "-o", type=Path, action="append",
                        help="write here instead of stdout (repeatable: crds/ and the chart's copy)")
    args = parser.parse_args(argv)
    text = render()
    if not args.output:
        sys.stdout.write(text)
    for path in args.output or []:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0
