"""The chart's CRD installs into the sandbox's API emulator with the real kubectl, and the examples apply."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helm_chart import REPO_ROOT, HelmChart

from elasticft_sandbox.apiserver import ApiServerThread, write_kubeconfig

EXAMPLES = REPO_ROOT / "examples"


class Kubectl:
    """The real kubectl, pointed at one API server through its own kubeconfig and discovery cache."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        binary = shutil.which("kubectl")
        if binary is None:
            pytest.fail("kubectl not found on PATH")
        self.binary = binary
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(cache_dir))

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], input=stdin, env=self.env, capture_output=True, text=True, timeout=60,
            check=False,
        )


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    """kubectl against a fresh API emulator, stopped after the test."""
    with ApiServerThread(logs_dir=tmp_path / "logs") as server:
        yield Kubectl(write_kubeconfig(server.url, tmp_path / "kubeconfig"), tmp_path / "kube-cache")


def test_rendered_crd_installs_and_example_jobs_apply_with_kubectl(chart: HelmChart, kubectl: Kubectl) -> None:
    crds = chart.template(include_crds=True).of_kind("CustomResourceDefinition")
    assert [crd["metadata"]["name"] for crd in crds] == ["finetunejobs.elasticft.io"]

    installed = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    assert installed.returncode == 0, installed.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/finetunejobs.elasticft.io created" in installed.stdout
    established = kubectl("wait", "--for=condition=Established", "crd/finetunejobs.elasticft.io", "--timeout=30s")
    assert established.returncode == 0, established.stderr

    applied = kubectl("apply", "-f", str(EXAMPLES))
    assert applied.returncode == 0, applied.stderr
    example_names = {
        document["metadata"]["name"]
        for path in EXAMPLES.glob("*.yaml")
        for document in yaml.safe_load_all(path.read_text())
        if document
    }
    listed = kubectl("get", "finetunejobs", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    jobs = {item["metadata"]["name"]: item for item in json.loads(listed.stdout)["items"]}
    assert set(jobs) == example_names
    written = yaml.safe_load((EXAMPLES / "finetunejob.yaml").read_text())
    assert jobs["gpt-tiny-lora"]["spec"]["totalSteps"] == written["spec"]["totalSteps"]

    table = kubectl("get", "ftj")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split()[:3] == ["NAME", "PHASE", "WORKERS"]


def test_installed_crd_makes_the_api_reject_a_malformed_job(chart: HelmChart, kubectl: Kubectl) -> None:
    crds = chart.template(include_crds=True).of_kind("CustomResourceDefinition")
    assert kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(crds)).returncode == 0
    malformed = {
        "apiVersion": "elasticft.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "malformed"},
        "spec": {"totalSteps": "many", "globalBatchSize": 8},
    }
    rejected = kubectl("apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(malformed))
    assert rejected.returncode != 0
    assert "totalSteps" in rejected.stderr
