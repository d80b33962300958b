"""The real kubectl against the emulator: apply, get (server-side tables), describe, logs, wait, delete."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, CoreV1Api

REPO = Path(__file__).resolve().parents[2]
KUBECTL = "kubectl"

POD_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  labels: {app: trainer, elasticft.io/role: worker}
spec:
  containers:
  - name: main
    image: python:3.11
    command: [python, -c, "print('step 1')"]
    env: [{name: A, value: "1"}]
"""


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def pod_manifest(kubeconfig: Path, tmp_path: Path) -> Path:
    path = tmp_path / "pod.yaml"
    path.write_text(POD_MANIFEST)
    return path


def test_apply_crds_and_examples_then_get_describe_delete(kubeconfig: Path) -> None:
    # As on a real cluster, a CRD must be established before kubectl can map its kind, so the CRDs
    # and the examples are applied in two steps.
    applied = kubectl("apply", "-f", str(REPO / "crds"))
    assert "customresourcedefinition.apiextensions.k8s.io/finetunejobs.elasticft.io created" in applied.stdout
    kubectl("wait", "--for=condition=Established", "crd/finetunejobs.elasticft.io", "--timeout=20s")
    assert "created" in kubectl("apply", "-f", str(REPO / "examples")).stdout
    jobs = kubectl("get", "ftj").stdout.splitlines()
    assert jobs[0].split()[:3] == ["NAME", "PHASE", "WORKERS"] and "AGE" in jobs[0]
    assert len(jobs) == 1 + len(list((REPO / "examples").glob("*.yaml")))
    name = jobs[1].split()[0]
    described = kubectl("describe", "ftj", name).stdout
    assert f"Name:         {name}" in described and "Kind:         FineTuneJob" in described
    assert "unchanged" in kubectl("apply", "-f", str(REPO / "examples")).stdout
    kubectl("delete", "-f", str(REPO / "examples"))
    assert "No resources found" in kubectl("get", "finetunejobs").stderr


def test_apply_rejects_unknown_fields_of_a_custom_resource(kubeconfig: Path, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(REPO / "crds"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: elasticft.io/v1alpha1\nkind: FineTuneJob\nmetadata: {name: bad}\n"
                   "spec: {totalSteps: 10, globalBatchSize: 4, notAField: 1}\n")
    result = kubectl("apply", "-f", str(bad), check=False)
    assert result.returncode != 0 and 'unknown field "spec.notAField"' in result.stderr


def test_apply_rejects_unknown_fields_of_a_core_object(pod_manifest: Path) -> None:
    pod_manifest.write_text(POD_MANIFEST.replace("  containers:", "  restartPolicyy: Never\n  containers:"))
    result = kubectl("apply", "-f", str(pod_manifest), check=False)
    assert result.returncode != 0 and 'unknown field "spec.restartPolicyy"' in result.stderr


def test_get_nodes_shows_readiness_from_node_status(kubeconfig: Path, k8s: ApiClient) -> None:
    core = CoreV1Api(k8s)
    core.create_node({"metadata": {"name": "spot-0", "labels": {"node-role.kubernetes.io/worker": ""}}})
    core.patch_node_status("spot-0", {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                 "nodeInfo": {"kubeletVersion": "v1.32.0-sandbox"}}},
                          _preload_content=False)
    lines = kubectl("get", "nodes").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert lines[1].split()[:3] == ["spot-0", "Ready", "worker"] and lines[1].endswith("v1.32.0-sandbox")


def test_reapplying_a_changed_pod_patches_it(pod_manifest: Path, k8s: ApiClient) -> None:
    assert "pod/trainer created" in kubectl("apply", "-f", str(pod_manifest)).stdout
    pod_manifest.write_text(POD_MANIFEST.replace('value: "1"', 'value: "2"'))
    assert "pod/trainer configured" in kubectl("apply", "-f", str(pod_manifest)).stdout
    pod = CoreV1Api(k8s).read_namespaced_pod("trainer", "default")
    assert pod.spec.containers[0].env[0].value == "2"
    assert "kubectl.kubernetes.io/last-applied-configuration" in pod.metadata.annotations


def test_server_dry_run_apply_diff_and_delete_change_nothing(pod_manifest: Path, k8s: ApiClient) -> None:
    kubectl("apply", "-f", str(pod_manifest))
    before = CoreV1Api(k8s).read_namespaced_pod("trainer", "default")
    pod_manifest.write_text(POD_MANIFEST.replace('value: "1"', 'value: "2"'))
    assert "(server dry run)" in kubectl("apply", "--dry-run=server", "-f", str(pod_manifest)).stdout
    diff = kubectl("diff", "-f", str(pod_manifest), check=False)
    assert diff.returncode == 1 and '+      value: "2"' in diff.stdout, diff.stdout + diff.stderr
    assert "(server dry run)" in kubectl("delete", "--dry-run=server", "-f", str(pod_manifest)).stdout
    after = CoreV1Api(k8s).read_namespaced_pod("trainer", "default")
    assert after.spec.containers[0].env[0].value == "1"
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.deletion_timestamp is None


def test_get_pods_by_label_logs_wait_and_delete(pod_manifest: Path, k8s: ApiClient, logs_dir: Path) -> None:
    kubectl("apply", "-f", str(pod_manifest))
    listed = kubectl("get", "pods", "-l", "elasticft.io/role=worker").stdout.splitlines()
    assert listed[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert listed[1].split()[:3] == ["trainer", "0/1", "Pending"]
    assert kubectl("get", "pods", "-l", "app!=trainer", check=False).stderr.startswith("No resources found")

    log = logs_dir / "default" / "trainer" / "main.log"
    log.parent.mkdir(parents=True)
    log.write_text("step 1\n")
    assert kubectl("logs", "trainer").stdout == "step 1\n"

    def become_ready() -> None:
        time.sleep(0.5)
        CoreV1Api(k8s).patch_namespaced_pod_status("trainer", "default", {"status": {
            "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})

    thread = threading.Thread(target=become_ready)
    thread.start()
    waited = kubectl("wait", "--for=condition=Ready", "pod/trainer", "--timeout=20s")
    thread.join()
    assert "pod/trainer condition met" in waited.stdout
    assert "Running" in kubectl("get", "pod", "trainer").stdout
    kubectl("delete", "pod", "trainer")
    assert kubectl("get", "pods", check=False).stderr.startswith("No resources found")
