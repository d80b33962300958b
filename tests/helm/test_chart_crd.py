"""The chart ships the generated CRD unchanged and installs the release the package builds."""

from __future__ import annotations

import tomllib

import yaml
from helm_chart import CHART_DIR, REPO_ROOT


def test_chart_crds_are_byte_identical_to_the_generated_crds() -> None:
    generated = {path.name: path.read_bytes() for path in (REPO_ROOT / "crds").glob("*.yaml")}
    shipped = {path.name: path.read_bytes() for path in (CHART_DIR / "crds").glob("*.yaml")}
    assert "finetunejobs.elasticft.io.yaml" in generated, "run `make crd` to generate crds/"
    assert sorted(shipped) == sorted(generated), "chart crds/ and crds/ hold different files"
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert stale == [], f"chart CRDs differ from crds/ (run `make crd`): {stale}"


def test_chart_app_version_is_the_package_version() -> None:
    package = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == package
