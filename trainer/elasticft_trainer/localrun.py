"""Run a job's pods as local processes: the rendezvous store and torchrun agents on loopback addresses.

This is how the tests and the benchmark drive real torchrun workers on one machine, mirroring the
worker pod contract: each agent gets its own 127.x address (`--local-addr`, `POD_IP`) and its own
termination-log file; the store runs on a third address. Addresses are drawn at random from 127/8,
so other jobs on the same machine never collide with these ports.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .summary import RunSummary, parse_summary_line


def free_loopback_address() -> tuple[str, int]:
    """A random 127.x.y.z address and a port that is free on it."""
    rng = random.Random()
    while True:
        address = f"127.{rng.randint(100, 250)}.{rng.randint(1, 250)}.{rng.randint(1, 250)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            return address, port


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll `predicate` until true; returns the time it took, raises TimeoutError naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def _accepts_connections(address: str, port: int) -> bool:
    with socket.socket() as client:
        client.settimeout(0.5)
        return client.connect_ex((address, port)) == 0


@dataclass
class RendezvousStore:
    """A running `python -m elasticft_trainer.store`."""

    address: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@contextlib.contextmanager
def running_store(log_path: Path) -> Iterator[RendezvousStore]:
    """Start the job's rendezvous store, as its rendezvous pod would; killed on exit."""
    address, port = free_loopback_address()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "elasticft_trainer.store", "--host", address, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _accepts_connections(address, port) or process.poll() is not None, 30, "the store")
        if process.poll() is not None:
            raise RuntimeError(f"rendezvous store exited:\n{log_path.read_text()}")
        yield RendezvousStore(address, port, process)
    finally:
        process.kill()
        process.wait()


@dataclass
class Agent:
    """One worker pod: a torchrun agent in its own session, with its own address and termination log."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    termination_log: Path

    def terminate(self) -> None:
        """What the kubelet does to a reclaimed pod: SIGTERM to the container's main process."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Exit code of the agent; raises TimeoutError with the log tail if it is still running."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout} s:\n{self.output()[-4000:]}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def summary(self) -> RunSummary:
        """The termination message, checked against the summary line the agent printed."""
        if not self.termination_log.exists():
            raise RuntimeError(f"{self.name} wrote no termination log:\n{self.output()[-4000:]}")
        from_file = parse_summary_line("ELASTICFT_SUMMARY " + self.termination_log.read_text())
        printed = [s for line in self.output().splitlines() if (s := parse_summary_line(line))]
        if from_file is None or not printed or printed[-1] != from_file:
            raise RuntimeError(f"{self.name}: termination log and printed summary differ")
        return from_file


@dataclass
class LocalJob:
    """Starts agents of one job and stops every process it started."""

    work_dir: Path
    base_env: dict[str, str]
    agents: list[Agent] = field(default_factory=list)

    def start_agent(
        self,
        name: str,
        rdzv_endpoint: str,
        rdzv_id: str,
        nnodes: str,
        env: dict[str, str] | None = None,
        nproc: int = 1,
        extra_args: tuple[str, ...] = (),
    ) -> Agent:
        """`torchrun ... -m elasticft_trainer` exactly as the worker pod contract runs it."""
        address, _ = free_loopback_address()
        log_path = self.work_dir / f"{name}.log"
        termination_log = self.work_dir / f"{name}.termination-log"
        full_env = {
            **self.base_env,
            "POD_IP": address,
            "ELASTICFT_TERMINATION_LOG": str(termination_log),
            **(env or {}),
        }
        command = [
            sys.executable, "-m", "torch.distributed.run",
            f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}", f"--local-addr={address}",
            *extra_args, "-m", "elasticft_trainer",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        agent = Agent(name, address, process, log_path, termination_log)
        self.agents.append(agent)
        return agent

    def stop_all(self) -> None:
        """SIGKILL each agent's whole session: workers outlive a dead agent if something went wrong."""
        for agent in self.agents:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.process.pid, signal.SIGKILL)
            agent.process.wait()


def job_environment(settings: dict[str, object]) -> dict[str, str]:
    """This process's environment without stray ELASTICFT_* values, plus `settings` as ELASTICFT_<NAME>."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ELASTICFT_")}
    env.update({"ELASTICFT_" + key.upper(): str(value) for key, value in settings.items()})
    return env
