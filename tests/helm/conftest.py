"""Fixtures for the Helm chart tests (see helm_chart.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_chart import CHART_DIR, SCENARIOS, HelmChart, find_helm


@pytest.fixture(scope="session")
def chart() -> HelmChart:
    helm = find_helm()
    if helm is None:
        pytest.fail(
            "helm not found: run `bash scripts/install.sh` (installs .tools/bin/helm) or put helm on PATH"
        )
    return HelmChart(helm=helm, path=CHART_DIR)


@pytest.fixture(params=SCENARIOS, ids=lambda path: "default" if path is None else path.stem)
def scenario(request: pytest.FixtureRequest) -> Path | None:
    """A values file of the scenarios (None: the chart's defaults)."""
    values_file: Path | None = request.param
    return values_file

