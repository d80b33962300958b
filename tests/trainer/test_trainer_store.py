"""The standalone rendezvous store that torchrun agents use as clients."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from elasticft_trainer.localrun import RendezvousStore


def test_store_serves_clients_and_exits_cleanly_on_sigterm(rendezvous_store: RendezvousStore) -> None:
    writer = dist.TCPStore(rendezvous_store.address, rendezvous_store.port, is_master=False,
                           timeout=timedelta(seconds=10))
    reader = dist.TCPStore(rendezvous_store.address, rendezvous_store.port, is_master=False,
                           timeout=timedelta(seconds=10))
    writer.set("generation", "7")
    assert reader.get("generation") == b"7"

    rendezvous_store.process.send_signal(signal.SIGTERM)
    try:
        assert rendezvous_store.process.wait(timeout=10) == 0
    except subprocess.TimeoutExpired:
        raise AssertionError("store ignored SIGTERM") from None


def test_store_keeps_serving_after_bare_tcp_readiness_probes(rendezvous_store: RendezvousStore) -> None:
    # The rendezvous pod's readinessProbe is a tcpSocket probe: connect, then close without a word.
    for _ in range(20):
        socket.create_connection((rendezvous_store.address, rendezvous_store.port), timeout=5).close()
    client = dist.TCPStore(rendezvous_store.address, rendezvous_store.port, is_master=False,
                           timeout=timedelta(seconds=10))
    client.set("after-probes", "yes")
    assert client.get("after-probes") == b"yes"
    assert rendezvous_store.process.poll() is None


def test_two_stores_share_a_port_on_different_addresses(rendezvous_store: RendezvousStore, tmp_path: Path) -> None:
    """Two rendezvous pods on one machine (two sandboxes, host networking) each serve their own clients."""
    *network, host = rendezvous_store.address.split(".")
    other_address = ".".join([*network, str(int(host) % 250 + 2)])
    with open(tmp_path / "other-store.log", "wb") as log:
        other = subprocess.Popen([sys.executable, "-m", "elasticft_trainer.store", "--host", other_address,
                                  "--port", str(rendezvous_store.port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        first = dist.TCPStore(rendezvous_store.address, rendezvous_store.port, is_master=False,
                              timeout=timedelta(seconds=10))
        first.set("owner", "first")
        second = dist.TCPStore(other_address, rendezvous_store.port, is_master=False, timeout=timedelta(seconds=30))
        second.set("owner", "second")
        assert first.get("owner") == b"first"
        assert second.get("owner") == b"second"
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
