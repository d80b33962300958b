"""The chart lints, renders for every documented scenario, and renders only schema-valid Kubernetes objects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_chart import CHART_DIR, RELEASE, RELEASE_NAMESPACE, REPO_ROOT, SCENARIO_DIR, HelmChart

# kubernetes-validate bundles the schemas of Kubernetes' own kinds only. A PodMonitor's schema comes with the
# Prometheus Operator's CRDs, which are not available here: its fields are checked one by one in
# test_chart_operator.py instead. Any other kind without a bundled schema fails the test.
NOT_SCHEMA_VALIDATED = {("monitoring.coreos.com/v1", "PodMonitor")}


def oldest_supported_kubernetes() -> str:
    """The minimum of Chart.yaml's kubeVersion constraint (">=1.27.0-0" → "1.27.0")."""
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", constraint)
    assert match, f"unexpected kubeVersion constraint {constraint!r}"
    return match.group(1)


def test_chart_passes_helm_lint_strict_in_every_scenario(chart: HelmChart, scenario: Path | None) -> None:
    values = ["--values", str(scenario)] if scenario else []
    result = chart.run("lint", "--strict", str(CHART_DIR), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", [oldest_supported_kubernetes(), kubernetes_validate.latest_version()])
def test_every_rendered_object_is_valid_for_kubernetes(
    chart: HelmChart, scenario: Path | None, kube_version: str
) -> None:
    rendered = chart.template(scenario, kube_version=kube_version, include_crds=True)
    kinds = {(obj["apiVersion"], obj["kind"]) for obj in rendered}
    assert ("apiextensions.k8s.io/v1", "CustomResourceDefinition") in kinds
    assert ("apps/v1", "Deployment") in kinds
    for obj in rendered:
        if (obj["apiVersion"], obj["kind"]) in NOT_SCHEMA_VALIDATED:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} is invalid for Kubernetes {kube_version}: {error.message} at {list(error.path)}")


def leaf_options(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every option: mappings are walked, anything else (lists, {} defaults) is a leaf."""
    options: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            options |= leaf_options(value, f"{path}.")
        else:
            options.add(path)
    return options


def test_every_documented_option_is_set_by_some_scenario() -> None:
    documented = leaf_options(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))
    exercised: set[str] = set()
    for values_file in SCENARIO_DIR.glob("*.yaml"):
        exercised |= leaf_options(yaml.safe_load(values_file.read_text()))
    # An option whose default is {} (nodeSelector) is exercised by setting any key beneath it.
    unexercised = {
        option for option in documented if not any(o == option or o.startswith(f"{option}.") for o in exercised)
    }
    assert unexercised == set(), "options that no scenario in tests/helm/values/ renders"


@pytest.mark.parametrize(
    ("assignment", "expected_message"),
    [
        ("watchNamespaces=team-a", "at '/watchNamespaces': got string, want array"),
        ("podMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("podSecurity.runAsUser=0", "at '/podSecurity/runAsUser': minimum: got 0, want 1"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("metrics.service.port=http", "at '/metrics/service/port': got string, want integer"),
    ],
    ids=["string-for-list", "misspelt-option", "root-user", "unknown-pull-policy", "string-for-port"],
)
def test_values_schema_rejects_wrong_values_with_a_clear_message(
    chart: HelmChart, assignment: str, expected_message: str
) -> None:
    result = chart.run("template", RELEASE, str(CHART_DIR), "--set", assignment)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert expected_message in result.stderr


@pytest.mark.parametrize(
    ("values", "apply_command"),
    [
        ([], "kubectl apply -f examples/finetunejob.yaml"),
        (["--set", "watchNamespaces={team-a}"], "kubectl apply --namespace team-a -f examples/finetunejob.yaml"),
    ],
    ids=["all-namespaces", "namespaced"],
)
def test_install_notes_tell_the_next_step(chart: HelmChart, values: list[str], apply_command: str) -> None:
    result = chart.run(
        "install", RELEASE, str(CHART_DIR), "--dry-run=client", "--namespace", RELEASE_NAMESPACE, *values
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert apply_command in notes
    assert f"kubectl --namespace {RELEASE_NAMESPACE} rollout status deployment/{RELEASE}" in notes
    assert (REPO_ROOT / "examples" / "finetunejob.yaml").is_file(), "NOTES point at a missing example"
