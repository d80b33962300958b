"""A whole local ElasticFT installation: the sandbox, the CRD, and the real operator process.

    with LocalCluster(state_dir) as cluster:
        cluster.kubectl("apply", "-f", "examples/finetunejob.yaml")
        cluster.wait_for_job("default", "gpt-tiny-lora", lambda job: phase(job) == "Succeeded", 300)

Used by `elasticft sandbox run`, the end-to-end tests and the benchmarks, so all three start the
operator the same way a user does: `elasticft run` as its own process, talking to the API over HTTP,
and the CRD installed with the real kubectl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from elasticft.api.crd import render as render_crd
from elasticft_sandbox.sandbox import Sandbox

Job = dict[str, Any]
OPERATOR_STOP_GRACE_S = 10.0


def phase(job: Job | None) -> str:
    return str(((job or {}).get("status") or {}).get("phase", ""))


class OperatorProcess:
    """`elasticft run` in a child process, logging to a file; restartable (to test restart safety)."""

    def __init__(self, kubeconfig: Path, log_path: Path, interval_s: float = 1.0,
                 namespaces: list[str] | None = None, metrics_port: int = 0) -> None:
        self.kubeconfig = kubeconfig
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.interval_s = interval_s
        self.namespaces = namespaces or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        scope = [f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]
        command = [sys.executable, "-m", "elasticft.cli", "run", *scope, "--interval", str(self.interval_s),
                   "--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self, hard: bool = False) -> None:
        """SIGTERM and wait (or SIGKILL at once with hard=True, like a crashed pod)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.process.wait(OPERATOR_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def restart(self, hard: bool = True) -> None:
        self.stop(hard=hard)
        self.start()


class LocalCluster:
    """Sandbox + FineTuneJob CRD + operator; `stop()` ends every process it started."""

    def __init__(self, state_dir: Path, pools_file: Path | None = None, interval_s: float = 1.0,
                 namespaces: list[str] | None = None, metrics_port: int = 0) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.sandbox = Sandbox(self.state_dir, pools_file, shutdown_grace_s=5.0)
        self.operator = OperatorProcess(self.state_dir / "kubeconfig", self.state_dir / "operator.log",
                                        interval_s, namespaces, metrics_port)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def kubeconfig(self) -> Path:
        return self.sandbox.kubeconfig

    def start(self) -> LocalCluster:
        self.sandbox.start()
        try:
            crd = self.state_dir / "finetunejobs.elasticft.io.yaml"
            crd.write_text(render_crd())
            self.kubectl("apply", "-f", str(crd))
            self.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                         "crd/finetunejobs.elasticft.io")
            self.operator.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.operator.stop()
        self.sandbox.stop()

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        """Run the real kubectl against the sandbox and return its stdout; a failure raises with its stderr."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.state_dir / "kube-cache")}
        result = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, input=input_text,
                                timeout=60, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def get_job(self, namespace: str, name: str) -> Job | None:
        out = self.kubectl("get", "ftj", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def pods(self, namespace: str, selector: str) -> list[Job]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
        return list(json.loads(out)["items"])

    def wait_for_job(self, namespace: str, name: str, predicate: Callable[[Job | None], bool],
                     timeout_s: float, poll_s: float = 1.0) -> Job | None:
        """Poll the job until predicate(job) holds; TimeoutError with the last status otherwise."""
        deadline = time.monotonic() + timeout_s
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(namespace, name)
            if predicate(job):
                return job
            time.sleep(poll_s)
        status = json.dumps((job or {}).get("status"), indent=1)[:3000]
        raise TimeoutError(f"{namespace}/{name} did not reach the expected state in {timeout_s:.0f} s; "
                           f"last status: {status}")
