"""Where the trainer runs: device, collective backend, and the torchrun-provided world.

The decisions (`select_device`, `gloo_environment`) are pure and unit-tested; `start_process_group`
is the thin shell that applies them.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePlan:
    """Device of this rank, the process-group backend string, and the autocast dtype (None = fp32)."""

    device: str
    backend: str
    autocast_dtype: torch.dtype | None

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def select_device(cuda_available: bool, local_rank: int, precision: str) -> DevicePlan:
    """GPU: one CUDA device per local rank, nccl for tensors plus gloo for CPU collectives (async DCP
    staging needs a CPU backend). CPU: gloo. bf16 means autocast on either device."""
    autocast = torch.bfloat16 if precision == "bf16" else None
    if cuda_available:
        return DevicePlan(f"cuda:{local_rank}", "cpu:gloo,cuda:nccl", autocast)
    return DevicePlan("cpu", "gloo", autocast)


def cpu_thread_count(configured: int, environ: Mapping[str, str]) -> int:
    """Intra-op threads for a CPU rank.

    Several workers (pods, or ranks of one pod) usually share a machine's cores, and oversubscribed
    OpenMP threads spin against each other: measured here, 2 threads per rank on a busy 2-core
    machine made steps 10x slower than 1. So the default is torchrun's OMP_NUM_THREADS, else 1.
    """
    if configured > 0:
        return configured
    return max(1, int(environ.get("OMP_NUM_THREADS", "1") or "1"))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def gloo_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Env to add so gloo binds where peers can reach it.

    gloo binds to the address its host name resolves to. When the pods are processes on one machine
    with loopback pod IPs (the sandbox), that address may be an external interface or unresolvable,
    so a loopback rendezvous address pins gloo to the loopback interface instead. An explicit
    GLOO_SOCKET_IFNAME always wins.
    """
    if "GLOO_SOCKET_IFNAME" in environ:
        return {}
    addresses = [environ.get(name, "") for name in ("POD_IP", "MASTER_ADDR")]
    if any(_is_loopback(address) for address in addresses if address):
        return {"GLOO_SOCKET_IFNAME": "lo"}
    return {}


@dataclass(frozen=True)
class World:
    """This process's place in the torchrun world."""

    rank: int
    local_rank: int
    world_size: int


def world_from_environ(environ: Mapping[str, str]) -> World:
    """Read torchrun's env; without torchrun the process is a world of one."""
    return World(
        rank=int(environ.get("RANK", "0")),
        local_rank=int(environ.get("LOCAL_RANK", "0")),
        world_size=int(environ.get("WORLD_SIZE", "1")),
    )


def die_with_agent() -> None:
    """Have the kernel SIGKILL this worker when its torchrun agent dies.

    torchrun starts workers in their own sessions, so killing the agent (or its process group)
    leaves them running, orphaned and still holding the world's collectives. In a container the
    runtime kills them all; as plain processes (the sandbox, tests) nothing would. Linux only.
    """
    if sys.platform == "linux" and "TORCHELASTIC_RUN_ID" in os.environ:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def start_process_group(plan: DevicePlan, world: World) -> None:
    """Join the default process group (torchrun's env:// rendezvous, or a private store alone)."""
    extra_env = gloo_environment(os.environ)
    if extra_env:
        log.info("loopback addresses detected; setting %s", extra_env)
        os.environ.update(extra_env)
    if plan.device_type == "cuda":
        torch.cuda.set_device(plan.device)
    if "MASTER_ADDR" in os.environ:
        dist.init_process_group(plan.backend)
    else:
        alone = dist.HashStore()  # type: ignore[attr-defined]  # public, but torch's stubs do not re-export it
        dist.init_process_group(plan.backend, store=alone, rank=0, world_size=1)
    if dist.get_world_size() != world.world_size:
        raise RuntimeError(f"process group has {dist.get_world_size()} ranks, env says {world.world_size}")
