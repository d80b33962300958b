"""`elasticft validate` and the CRD decide alike: one corpus of mutations, both judges.

The CRD side is the sandbox API server's structural-schema check (prune with strict field validation,
then the openAPIV3Schema), which is what `kubectl apply` meets there.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from elasticft.api.crd import custom_resource_definition
from elasticft.api.documents import check_text
from elasticft.api.validation import MOST_DOCUMENT_VALUES, parse_document
from elasticft_sandbox.apiserver.errors import ApiError
from elasticft_sandbox.apiserver.resources import crd_resource_types
from elasticft_sandbox.apiserver.validation import prune, validate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "finetunejob.yaml").read_text())
FINETUNEJOB = crd_resource_types(custom_resource_definition())[0]

# (path, value): dotted path into the example, list indices as numbers.
MUTATIONS: list[tuple[str, Any]] = [
    ("spec.totalSteps", "600"), ("spec.globalBatchSize", "24"), ("spec.elastic.maxWorkers", "3"),
    ("spec.suspend", "no"), ("spec.suspend", "false"), ("spec.capacity.spot.enabled", "true"),
    ("spec.learningRate", "0.001"), ("spec.checkpoint.keep", "3"), ("spec.seed", "7"),
    ("spec.totalSteps", 2**63), ("spec.totalSteps", 2**63 - 1), ("spec.totalSteps", 0), ("spec.totalSteps", 1.5),
    ("spec.checkpoint.volume.size", "banana"), ("spec.checkpoint.volume.size", -1),
    ("spec.checkpoint.volume.size", "-1Gi"), ("spec.checkpoint.volume.size", "1.5Gi"),
    ("spec.checkpoint.volume.size", 10), ("spec.checkpoint.volume.size", "500m"),
    ("spec.checkpoint.volume.size", True), ("spec.checkpoint.volume.size", 1.5),
    ("spec.resources.requests.cpu", "lots"), ("spec.resources.requests.cpu", 2),
    ("spec.resources.requests.cpu", "250m"), ("spec.resources.limits", {"memory": "8Gi"}),
    ("spec.env", [{"name": "A=B", "value": "x"}]), ("spec.env", [{"name": "A", "value": "a\x00b"}]),
    ("spec.env", [{"name": "A", "value": "x=y"}]), ("spec.env", [{"name": "1A", "value": ""}]),
    ("spec.env", [{"name": "A", "value": 5}]),
    ("spec.capacity.spot.nodeSelector", {"pool": "a" * 64}), ("spec.capacity.spot.nodeSelector", {"pool": "a" * 63}),
    ("spec.capacity.spot.nodeSelector", {"pool": "-x"}), ("spec.capacity.spot.nodeSelector", {"pool": 3}),
    ("spec.checkpoint.volume.storageClassName", "Invalid_Name!"),
    ("spec.checkpoint.volume.storageClassName", "fast.ssd"),
    ("spec.checkpoint.volume.claimName", "UPPER"), ("spec.capacity.pricing.configMapName", "a_b"),
    ("spec.capacity.spot.tolerations.0.tolerationSeconds", -1),
    ("spec.capacity.spot.tolerations.0.tolerationSeconds", 2**63),
    ("spec.capacity.spot.tolerations.0.value", "v" * 64), ("spec.capacity.spot.tolerations.0.effect", "Sometimes"),
    ("spec.objective.maxDuration", "1 hour"), ("spec.objective.maxDuration", 30),
    ("spec.objective.deadline", "tomorrow"), ("spec.elastic.rescaleCooldown", "20"),
    ("spec.objective.mode", "Cheapest"), ("spec.precision", "fp16"), ("spec.metrics.port", 70000),
    ("spec.lora.rank", 0), ("spec.lora.alpha", "16"), ("spec.unknownField", 1), ("spec.lora.extra", 1),
    ("spec.objective.budget.maxTotalCost", "5"), ("spec.objective.budget.maxTotalCost", 0),
    ("spec.throughputPrior.samplesPerSecond", "60"), ("spec.command", "python"), ("spec.args", ["--x", 1]),
]
# Map keys: the structural schema cannot express them, the CRD checks them with a CEL rule.
CEL_ONLY: list[tuple[str, Any]] = [
    ("spec.capacity.spot.nodeSelector", {"bad key!": "x"}),
    ("spec.resources.requests", {"no spaces": 1}),
]


def mutated(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(EXAMPLE)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = document
    for part in parents:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[last] = value
    return document


def crd_admits(document: dict[str, Any]) -> bool:
    pruned = prune(document, FINETUNEJOB)
    if pruned.unknown_fields:  # kubectl apply: strict field validation
        return False
    try:
        validate(pruned.obj, FINETUNEJOB)
    except ApiError:
        return False
    return True


@pytest.mark.parametrize(("path", "value"), MUTATIONS, ids=[f"{p}={v!r}"[:60] for p, v in MUTATIONS])
def test_validate_admits_exactly_what_the_crd_admits(path: str, value: Any) -> None:
    document = mutated(path, value)
    job, errors = parse_document(document)
    assert (job is not None) == crd_admits(document), errors
    if errors:  # and the error names the field that was changed (or one inside it)
        shown = re.sub(r"\.(\d+)", r"[\1]", path)
        assert any(e.path.startswith(shown) for e in errors), errors


@pytest.mark.parametrize(("path", "value"), CEL_ONLY, ids=[p for p, _ in CEL_ONLY])
def test_map_keys_are_rejected_by_validate_and_by_a_cel_rule_of_the_crd(path: str, value: Any) -> None:
    job, errors = parse_document(mutated(path, value))
    assert job is None and errors[0].path.startswith(path)
    node = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in path.split("."):
        node = node["properties"][part]
    assert "self.all(k, k.matches(" in node["x-kubernetes-validations"][0]["rule"]


def test_the_example_is_admitted_by_both() -> None:
    assert crd_admits(copy.deepcopy(EXAMPLE))
    assert parse_document(copy.deepcopy(EXAMPLE))[0] is not None


def test_a_yaml_alias_bomb_is_reported_without_expanding_it() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )  # 10**9 strings once expanded, from under 1 KB of YAML
    (checked,) = check_text(bomb, "bomb.yaml", now=datetime.now(UTC))
    assert checked.job is None
    assert [str(e) for e in checked.errors] == [
        f"(document): holds more than {MOST_DOCUMENT_VALUES} values (YAML aliases expanding?); not a FineTuneJob"
    ]
