"""Each live sandbox on the machine gets its own loopback address block, so two never meet.

Pods are host processes and Services are loopback listeners, so every sandbox shares the machine's one
network. A block is three /16s of 127.0.0.0/8, chosen by the block's index i:

    pods      127.{3i}.x.y     (x >= 1: block 0 keeps clear of 127.0.0.1, the host's own loopback)
    Services  127.{3i+1}.0.0/16 (cluster IPs, where the proxy listens)
    nodes     127.{3i+2}.x.y   (InternalIPs; reported, never bound)

Block 0 is 127.0 / 127.1 / 127.2, the layout of a sandbox that is alone on the machine. A sandbox claims
the lowest index that (1) no other sandbox holds — an exclusive `flock` on `block-{i}.lock` under a
machine-wide runtime directory, which the kernel drops when the holder dies, so a crashed sandbox never
leaks its index — and (2) has no listening socket on any of its addresses, which skips the blocks that
processes not holding the lock still use: pods a killed sandbox left behind, or an unrelated server.
The lock settles races between sandboxes starting at the same time; the probe alone could not, since
a sandbox that has just claimed a block has no listener yet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

RUNTIME_DIR_ENV = "ELASTICFT_SANDBOX_RUNTIME_DIR"
BLOCK_COUNT = 85  # 3 * 84 + 2 = 254: the last block's node /16 is 127.254
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


POD_ADDRESSES = 255 * 254


def _slash16(second_octet: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"127.{second_octet}.0.0/16")


def _slash24(start: ipaddress.IPv4Address) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{start}/24")


@dataclass(frozen=True)
class AddressBlock:
    """The pod, Service and node networks of one sandbox (see the module docstring)."""

    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < BLOCK_COUNT:
            raise ValueError(f"address block index {self.index} is outside 0..{BLOCK_COUNT - 1}")

    @property
    def pods(self) -> ipaddress.IPv4Network:
        return _slash16(3 * self.index)

    @property
    def services(self) -> ipaddress.IPv4Network:
        return _slash16(3 * self.index + 1)

    @property
    def nodes(self) -> ipaddress.IPv4Network:
        return _slash16(3 * self.index + 2)

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return (self.pods, self.services, self.nodes)

    def pod_address(self, serial: int) -> str:
        """The serial-th pod address (mod 255 * 254): 127.{3i}.x.y, x in 1..255, y in 1..254."""
        serial %= POD_ADDRESSES
        return str(self.pods.network_address + (serial // 254 + 1) * 256 + serial % 254 + 1)

    def node_address(self, serial: int) -> str:
        """The serial-th node InternalIP (mod 256 * 250): 127.{3i+2}.x.y, y in 1..250."""
        serial %= 256 * 250
        return str(self.nodes.network_address + (serial // 250) * 256 + serial % 250 + 1)

    def in_use_by(self, address: str) -> bool:
        """Whether a socket bound to `address` would clash with this block. The pods' 127.{3i}.0.x are
        never handed out (for block 0 they hold 127.0.0.1, where every local server listens)."""
        ip = ipaddress.ip_address(address)
        if ip in self.pods:
            return ip not in _slash24(self.pods.network_address)
        return ip in self.services or ip in self.nodes

    def describe(self) -> str:
        return f"pod IPs {self.pods}, Service IPs {self.services}, node IPs {self.nodes}"


def default_runtime_dir() -> Path:
    """Machine-wide, because addresses are: every user's sandboxes must see each other's locks."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "elasticft-sandbox-blocks"


def listening_loopback_addresses() -> set[str]:
    """Addresses in 127.0.0.0/8 that some process on the machine listens on (TCP) or has bound (UDP)."""
    found = set()
    for connection in psutil.net_connections("inet4"):
        if connection.status not in (psutil.CONN_LISTEN, psutil.CONN_NONE) or not connection.laddr:
            continue
        if ipaddress.ip_address(connection.laddr.ip) in _LOOPBACK:
            found.add(str(connection.laddr.ip))
    return found


class AddressLease:
    """A claimed block; `release()` (or the holder's death) frees it for the next sandbox."""

    def __init__(self, block: AddressBlock, lock_fd: int) -> None:
        self.block = block
        self._lock_fd: int | None = lock_fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor drops the flock
            self._lock_fd = None


def _ensure_runtime_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        directory.mkdir(parents=True)
        # Sticky and world-writable like /tmp itself, so other users' sandboxes can add their lock files.
        directory.chmod(0o1777)


def _try_lock(path: Path) -> int | None:
    """An exclusive, non-blocking flock on `path`; None when another holder has it. A read-only
    descriptor suffices for flock, so a lock file another user created can still be claimed."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def claim_address_block(runtime_dir: Path | None = None) -> AddressLease:
    """The lowest free block (held by no sandbox, no listener on its addresses), locked until released."""
    directory = runtime_dir or default_runtime_dir()
    _ensure_runtime_dir(directory)
    listening = listening_loopback_addresses()
    for index in range(BLOCK_COUNT):
        fd = _try_lock(directory / f"block-{index}.lock")
        if fd is None:
            continue
        block = AddressBlock(index)
        if any(block.in_use_by(address) for address in listening):
            os.close(fd)
            continue
        return AddressLease(block, fd)
    raise RuntimeError(f"all {BLOCK_COUNT} sandbox address blocks are in use (locks in {directory})")
