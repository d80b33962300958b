"""The committed CRD is the generator's output, and its schema judges objects like an API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator

from elasticft.api.crd import PRINTER_COLUMNS, custom_resource_definition, render

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "finetunejobs.elasticft.io.yaml"

# Invalid files whose fault is visible to the structural schema alone (types, enums, bounds,
# required fields); semantic rules are the operator's (Valid=False) and `elasticft validate`'s.
SCHEMA_REJECTS = [
    "batch-string", "bad-mode", "bad-precision", "zero-steps", "negative-price", "keep-zero",
    "missing-batch", "bad-toleration-effect", "lora-rank-zero", "missing-spec", "spec-is-list",
    "bad-pricing-source", "negative-budget", "efficiency-above-one", "zero-min-workers",
    "bad-cooldown", "bad-max-duration", "deadline-not-a-time",
]


def schema_validator() -> Draft4Validator:
    # Kubernetes' openAPIV3Schema follows draft 4 semantics (boolean exclusiveMinimum); like the API
    # server it checks formats (date-time).
    crd = yaml.safe_load(CRD_FILE.read_text())
    return Draft4Validator(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
                           format_checker=Draft4Validator.FORMAT_CHECKER)


def test_committed_crd_equals_generator_output() -> None:
    assert CRD_FILE.read_text() == render(), "run `make crd` and commit crds/"


def test_crd_is_structural() -> None:
    text = CRD_FILE.read_text()
    for forbidden in ("$ref", "anyOf", "type: 'null'", "additionalProperties: false", "title:"):
        assert forbidden not in text


def test_crd_names_status_and_columns() -> None:
    crd = custom_resource_definition()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["ftj"] and "all" in names["categories"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Workers", "Progress", "Samples/s", "Cost", "ETA", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for column in PRINTER_COLUMNS:
        path = column["jsonPath"].split(".")[1:]
        if path[0] == "status":
            node = status[path[1]]
            for part in path[2:]:
                node = node["properties"][part]
            assert node["type"] == column["type"] or column["type"] == "date"


@pytest.mark.parametrize("name", ["finetunejob.yaml", "finetunejob-minimal.yaml"])
def test_schema_accepts_examples(name: str) -> None:
    document = yaml.safe_load((REPO / "examples" / name).read_text())
    assert list(schema_validator().iter_errors(document)) == []


@pytest.mark.parametrize("stem", SCHEMA_REJECTS)
def test_schema_rejects_invalid_objects(stem: str) -> None:
    document = yaml.safe_load((REPO / "tests" / "data" / "invalid" / f"{stem}.yaml").read_text())
    assert list(schema_validator().iter_errors(document)), f"{stem} passed the CRD schema"
