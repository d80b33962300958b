"""Real torchrun agents and a real rendezvous store, on private loopback addresses.

Every pod of the contract becomes a process here: a store on one 127.x address, each torchrun agent
on its own (`--local-addr`), as the sandbox runs them. Addresses are drawn at random from 127/8 so that
other test suites running on the same machine never collide with these ports.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from elasticft_trainer.summary import RunSummary, parse_summary_line

EPOCH_SAMPLES = 96
SEQ_LEN = 64


def free_loopback_address() -> tuple[str, int]:
    """A random 127.x.y.z address with a port that is free on it."""
    rng = random.Random()
    while True:
        address = f"127.{rng.randint(100, 250)}.{rng.randint(1, 250)}.{rng.randint(1, 250)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
            return address, probe.getsockname()[1]


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _accepts(address: str, port: int) -> bool:
    with socket.socket() as client:
        client.settimeout(0.5)
        return client.connect_ex((address, port)) == 0


@dataclass
class RendezvousStore:
    address: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@pytest.fixture
def rendezvous_store(tmp_path: Path) -> Iterator[RendezvousStore]:
    """`python -m elasticft_trainer.store` as the job's rendezvous pod would run it."""
    address, port = free_loopback_address()
    with open(tmp_path / "store.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "elasticft_trainer.store", "--host", address, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _accepts(address, port) or process.poll() is not None, 30, "the store to listen")
        assert process.poll() is None, (tmp_path / "store.log").read_text()
        yield RendezvousStore(address, port, process)
    finally:
        process.kill()
        process.wait()


@dataclass
class Agent:
    """One worker pod: a torchrun agent with its own loopback address and termination log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    termination_log: Path

    def terminate(self) -> None:
        """What the kubelet does to a reclaimed pod: SIGTERM to the container's main process."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout} s:\n{self.output()[-4000:]}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def summary(self) -> RunSummary:
        """The termination message, cross-checked against the summary line on stdout."""
        assert self.termination_log.exists(), f"{self.name} wrote no termination log:\n{self.output()[-4000:]}"
        from_file = parse_summary_line("ELASTICFT_SUMMARY " + self.termination_log.read_text())
        from_stdout = [s for line in self.output().splitlines() if (s := parse_summary_line(line))]
        assert from_stdout == [from_file]
        assert from_file is not None
        return from_file


@dataclass
class Cluster:
    """Starts agents for one job; stops every process it started when the test ends."""

    tmp_path: Path
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
        address, _ = free_loopback_address()
        log_path = self.tmp_path / f"{name}.log"
        termination_log = self.tmp_path / f"{name}.termination-log"
        full_env = {
            **self.base_env,
            "POD_IP": address,
            "ELASTICFT_TERMINATION_LOG": str(termination_log),
            **(env or {}),
        }
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "torch.distributed.run",
                    f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
                    f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}", f"--local-addr={address}",
                    *extra_args, "-m", "elasticft_trainer",
                ],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        agent = Agent(name, process, log_path, termination_log)
        self.agents.append(agent)
        return agent

    def stop_all(self) -> None:
        """SIGKILL each agent's whole session: workers outlive a dead agent if something went wrong."""
        for agent in self.agents:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.process.pid, signal.SIGKILL)
            agent.process.wait()


def trainer_env(tmp_path: Path, **overrides: object) -> dict[str, str]:
    """Environment of a small, fast job; keyword names are ELASTICFT_* suffixes in lower case."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ELASTICFT_")}
    settings: dict[str, object] = {
        "job_name": "test-job",
        "seq_len": SEQ_LEN,
        "global_batch_size": 8,
        "micro_batch_size": 4,
        "metrics_port": -1,
        "checkpoint_dir": tmp_path / "checkpoints",
        **overrides,
    }
    env.update({"ELASTICFT_" + key.upper(): str(value) for key, value in settings.items()})
    return env


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path, trainer_env(tmp_path))
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A text file of exactly EPOCH_SAMPLES windows, so an epoch is a handful of steps."""
    words = ["spot", "node", "resume", "gradient", "token", "epoch", "preempt", "shard"]
    rng = random.Random(7)
    text = " ".join(rng.choice(words) for _ in range(4000))
    path = tmp_path / "corpus.txt"
    path.write_text(text[: EPOCH_SAMPLES * (SEQ_LEN + 1)])
    return path
