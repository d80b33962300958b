"""`helm install` of the chart into the sandbox: the operator runs as the chart deploys it.

The real helm and kubectl against `elasticft sandbox`: the operator is the chart's Deployment (a
ReplicaSet's pod, run by the sandbox kubelet from the operator image's entrypoint), with in-cluster
configuration from its mounted ServiceAccount token, and only the RBAC the chart grants. It runs a job
through a spot reclaim to Succeeded and deletes it; `helm upgrade` replaces the operator pod and
`helm uninstall` removes what the install created, the CRD aside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import RELEASE, RELEASE_NAMESPACE, HelmChart

from elasticft_sandbox.sandbox import Sandbox

OPERATOR_ACCOUNT = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
POOLS = {
    "seconds_per_tick": 5,
    "reclaim_notice_s": 3,
    "pools": [
        {"name": "spot", "capacity_type": "spot", "nodes": 2, "gpus_per_node": 1, "price_per_hour": 0.918,
         "labels": {"karpenter.sh/capacity-type": "spot"}},
        {"name": "on-demand", "capacity_type": "on-demand", "nodes": 2, "gpus_per_node": 1,
         "price_per_hour": 3.06, "labels": {"karpenter.sh/capacity-type": "on-demand"}},
    ],
}
JOB = {
    "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "tiny", "namespace": "team-a"},
    "spec": {
        "model": "builtin:gpt-tiny", "totalSteps": 200, "globalBatchSize": 8, "learningRate": 0.002,
        # at least 0.1 s a step, so the reclaim below lands while the job is still training
        "args": ["--step-delay-s", "0.1"],
        "resources": {"requests": {"nvidia.com/gpu": 1}},
        "elastic": {"minWorkers": 1, "maxWorkers": 2, "rescaleCooldown": "10s"},
        "objective": {"maxDuration": "30m"},
        "throughputPrior": {"samplesPerSecond": 60, "serialFraction": 0.3},
        "capacity": {"spot": {"pricePerHour": 0.918}, "onDemand": {"pricePerHour": 3.06}},
        "checkpoint": {"volume": {"size": "1Gi"}, "intervalSteps": 20},
    },
}


class Cli:
    """helm and kubectl against one sandbox, with their caches and config kept in the test's directory."""

    def __init__(self, helm: Path, sandbox: Sandbox, home: Path) -> None:
        self.sandbox = sandbox
        kubeconfig = sandbox.kubeconfig
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.fail("kubectl not found on PATH")
        self.helm_binary, self.kubectl_binary = str(helm), kubectl
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(home / "kube-cache"),
                        HELM_CACHE_HOME=str(home / "helm-cache"), HELM_CONFIG_HOME=str(home / "helm-config"),
                        HELM_DATA_HOME=str(home / "helm-data"))

    def _run(self, binary: str, args: tuple[str, ...], stdin: str | None, timeout_s: float) -> str:
        result = subprocess.run([binary, *args], input=stdin, env=self.env, capture_output=True, text=True,
                                timeout=timeout_s, check=False)
        assert result.returncode == 0, f"{Path(binary).name} {' '.join(args)}: {result.stderr}"
        return result.stdout

    def helm(self, *args: str, timeout_s: float = 180) -> str:
        return self._run(self.helm_binary, args, None, timeout_s)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self._run(self.kubectl_binary, args, stdin, 60)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))


def eventually(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    raise AssertionError(f"{what} not reached within {timeout_s:.0f} s")


@pytest.fixture
def cli(chart: HelmChart, tmp_path: Path) -> Iterator[Cli]:
    pools = tmp_path / "pools.yaml"
    pools.write_text(yaml.safe_dump(POOLS))
    with Sandbox(tmp_path / "sandbox", pools, shutdown_grace_s=5.0) as sandbox:
        yield Cli(chart.helm, sandbox, tmp_path)


def job_phase(cli: Cli) -> str:
    job = cli.kubectl_json("get", "ftj", "tiny", "-n", "team-a")
    return str((job.get("status") or {}).get("phase", ""))


def operator_pods(cli: Cli) -> list[dict[str, Any]]:
    listing = cli.kubectl_json("get", "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=elasticft")
    return [pod for pod in listing["items"] if not pod["metadata"].get("deletionTimestamp")]


def test_chart_installs_the_operator_which_runs_a_job_through_a_reclaim_with_only_the_chart_rbac(
    chart: HelmChart, cli: Cli
) -> None:
    cli.helm("install", RELEASE, str(chart.path), "-n", RELEASE_NAMESPACE, "--create-namespace", "--wait",
             "--timeout", "150s")
    assert "successfully rolled out" in cli.kubectl("rollout", "status", f"deployment/{RELEASE}", "-n",
                                                     RELEASE_NAMESPACE, "--timeout=10s")
    (pod,) = operator_pods(cli)
    assert pod["spec"]["serviceAccountName"] == RELEASE
    releases = json.loads(cli.helm("list", "-n", RELEASE_NAMESPACE, "-o", "json"))
    assert [(r["name"], r["status"], r["revision"]) for r in releases] == [(RELEASE, "deployed", "1")]

    # The chart's least privilege, as the API server enforces it for the operator's token.
    can = lambda *request: cli.kubectl("auth", "can-i", *request, f"--as={OPERATOR_ACCOUNT}").strip()  # noqa: E731
    assert can("list", "pods", "-n", "team-a") == "yes"
    assert can("patch", "finetunejobs.elasticft.io", "--subresource=status", "-n", "team-a") == "yes"
    for refused in (("get", "secrets", "-n", RELEASE_NAMESPACE), ("list", "secrets", "-A"),
                    ("delete", "nodes"), ("update", "finetunejobs.elasticft.io", "-n", "team-a")):
        result = subprocess.run([cli.kubectl_binary, "auth", "can-i", *refused, f"--as={OPERATOR_ACCOUNT}"],
                                env=cli.env, capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stdout.strip()) == (1, "no"), refused

    cli.kubectl("create", "namespace", "team-a")
    cli.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(JOB))
    running = eventually(lambda: [p for p in cli.kubectl_json("get", "pods", "-n", "team-a", "-l",
                                                                 "elasticft.io/role=worker")["items"]
                                  if (p.get("status") or {}).get("phase") == "Running"], 120, "a running worker")
    spot = {n["metadata"]["name"] for n in cli.kubectl_json("get", "nodes", "-l",
                                                             "karpenter.sh/capacity-type=spot")["items"]}
    reclaimed = next((p["spec"]["nodeName"] for p in running if p["spec"]["nodeName"] in spot), None)
    assert reclaimed is not None, "the job starts on spot capacity"
    cli.sandbox.reclaim(reclaimed, notice_s=2)
    eventually(lambda: job_phase(cli) == "Succeeded", 300, "the job's Succeeded")
    done = cli.kubectl_json("get", "ftj", "tiny", "-n", "team-a")
    assert done["status"]["step"] == JOB["spec"]["totalSteps"]
    events = cli.kubectl_json("get", "events", "-n", "team-a", "--field-selector", "involvedObject.name=tiny")
    assert {"Preempted", "Completed"} <= {e["reason"] for e in events["items"]}

    cli.kubectl("delete", "ftj", "tiny", "-n", "team-a", "--timeout=60s")
    eventually(lambda: not cli.kubectl_json("get", "pods", "-n", "team-a")["items"], 60, "the job's pods gone")
    operator_log = cli.kubectl("logs", "-n", RELEASE_NAMESPACE, f"deployment/{RELEASE}")
    assert "Forbidden" not in operator_log and "403" not in operator_log, operator_log[-3000:]


def test_helm_upgrade_replaces_the_operator_pod_and_uninstall_removes_the_release(chart: HelmChart, cli: Cli) -> None:
    cli.helm("install", RELEASE, str(chart.path), "-n", RELEASE_NAMESPACE, "--create-namespace", "--wait",
             "--timeout", "150s")
    (first,) = operator_pods(cli)
    cli.helm("upgrade", RELEASE, str(chart.path), "-n", RELEASE_NAMESPACE, "--set", "operator.extraArgs={--verbose}",
             "--wait", "--timeout", "150s")
    (second,) = operator_pods(cli)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert "--verbose" in second["spec"]["containers"][0]["args"]
    releases = json.loads(cli.helm("list", "-n", RELEASE_NAMESPACE, "-o", "json"))
    assert [(r["name"], r["revision"]) for r in releases] == [(RELEASE, "2")]

    cli.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "60s")
    assert json.loads(cli.helm("list", "-A", "-o", "json")) == []
    for kind in ("deployments", "replicasets", "services", "serviceaccounts", "secrets"):
        left = [o["metadata"]["name"] for o in cli.kubectl_json("get", kind, "-n", RELEASE_NAMESPACE)["items"]]
        assert left in ([], ["default"]), (kind, left)
    for kind in ("clusterroles", "clusterrolebindings"):
        assert [o for o in cli.kubectl_json("get", kind)["items"] if o["metadata"]["name"] == RELEASE] == []
    assert cli.kubectl_json("get", "crd", "finetunejobs.elasticft.io")["metadata"]["name"]
