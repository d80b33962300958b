"""Simulated node pools: the YAML model, spot-availability traces and the Node objects they become.

Pure: parsing, trace lookup and planning. `pooldriver.py` is the shell that writes Nodes to the API.

A pools file looks like::

    seconds_per_tick: 5          # one trace tick (300 s on AWS) lasts 5 s in the sandbox
    reclaim_notice_s: 10         # spot interruption notice before the pods are deleted (AWS: 120 s)
    pools:
      - name: spot
        capacity_type: spot
        trace: {file: availability/16-node/aws-08-27-2023/us-east-2b_v100_1.json, peak_nodes: 4}
        labels: {karpenter.sh/capacity-type: spot}
        gpus_per_node: 1
        price_per_hour: 0.92
      - name: on-demand
        capacity_type: on-demand
        nodes: 2
        labels: {karpenter.sh/capacity-type: on-demand}
        gpus_per_node: 1
        price_per_hour: 3.06
        device: {name: A100 (simulated), sample_seconds: 0.02, latency_seconds: 0.005}
    script:
      - {at_s: 30, pool: spot, action: reclaim, nodes: 1}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from elasticft.sim.trace import SPOT_TRACES_DIR
from elasticft_trainer.simulated_device import SIMULATED_DEVICE_ANNOTATION, SimulatedDevice

POOLS_DIR = Path(__file__).resolve().parent / "pools"
DEFAULT_POOLS_FILE = POOLS_DIR / "default.yaml"

SPOT_TERMINATION_TAINT = "aws-node-termination-handler/spot-itn"
POOL_LABEL = "elasticft.io/pool"
PRICE_ANNOTATION = "elasticft.io/price-per-hour"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Taint(_Model):
    """A node taint, as in `Node.spec.taints`."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class TraceSource(_Model):
    """Spot availability from a trace: the pool holds the trace's node count at each (compressed) tick."""

    file: str = Field(description="path under the packaged spot-traces folder, or an absolute path")
    start_tick: int = Field(0, ge=0, description="trace index the sandbox starts at")
    peak_nodes: int | None = Field(
        None, ge=1, description="scale the trace so that its peak is this many nodes (16-node traces are big)"
    )


class NodePool(_Model):
    """One group of identical simulated nodes."""

    name: str = Field(pattern=_DNS_LABEL, max_length=40)
    capacity_type: Literal["spot", "on-demand"]
    nodes: int = Field(0, ge=0, description="node count at start (ignored when a trace drives the pool)")
    trace: TraceSource | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    gpus_per_node: int = Field(0, ge=0, description="`nvidia.com/gpu` capacity of each node")
    cpus_per_node: int = Field(8, ge=1)
    memory_per_node: str = "32Gi"
    max_pods_per_node: int = Field(110, ge=1)
    price_per_hour: float = Field(ge=0, description="USD per node-hour")
    instance_type: str = "p3.2xlarge"
    device: SimulatedDevice | None = Field(
        None, description="simulated accelerator of each node: trainers on it pad steps to its time")


class ScriptStep(_Model):
    """A scripted change: at `at_s` seconds after start, reclaim or add `nodes` nodes of `pool`."""

    at_s: float = Field(ge=0)
    pool: str
    action: Literal["reclaim", "add"]
    nodes: int = Field(1, ge=1)


class PoolsConfig(_Model):
    """The whole pools file."""

    seconds_per_tick: float = Field(10.0, gt=0, description="sandbox seconds per trace tick")
    reclaim_notice_s: float = Field(120.0, ge=0, description="spot interruption notice (AWS gives 120 s)")
    pools: list[NodePool]
    script: list[ScriptStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> PoolsConfig:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        unknown = sorted({step.pool for step in self.script} - set(names))
        if unknown:
            raise ValueError(f"script names unknown pools {unknown}; pools are {names}")
        return self

    def pool(self, name: str) -> NodePool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"no node pool named {name!r}")


def load_pools(path: Path) -> PoolsConfig:
    """Read and validate a pools YAML file."""
    return PoolsConfig.model_validate(yaml.safe_load(path.read_text()))


def trace_path(source: TraceSource) -> Path:
    """Where a trace file is: absolute as given, else under the spot traces packaged with elasticft."""
    path = Path(source.file)
    return path if path.is_absolute() else SPOT_TRACES_DIR / path


def load_trace(source: TraceSource) -> list[int]:
    """The per-tick node counts of a trace file (`data` of the skypilot-org/spot-traces format)."""
    document: dict[str, Any] = json.loads(trace_path(source).read_text())
    return [int(count) for count in document["data"]]


def trace_target(trace: Sequence[int], source: TraceSource, elapsed_s: float, seconds_per_tick: float) -> int:
    """Nodes the pool should hold `elapsed_s` into the run: the trace value at the compressed tick.

    tick = start_tick + floor(elapsed_s / seconds_per_tick) (past the trace's end the last value holds);
    with `peak_nodes` the value is scaled by peak_nodes / max(trace) and rounded half up, which keeps the
    trace's relative dips (16 → 6 becomes 4 → 2) rather than clipping them away.
    """
    tick = min(source.start_tick + math.floor(elapsed_s / seconds_per_tick), len(trace) - 1)
    count = trace[tick]
    peak = max(trace)
    if source.peak_nodes is None or peak == 0:
        return count
    return math.floor(count * source.peak_nodes / peak + 0.5)


@dataclass(frozen=True)
class PoolChange:
    """Add `add` nodes to a pool, or reclaim the named nodes."""

    pool: str
    add: int = 0
    reclaim: tuple[str, ...] = field(default_factory=tuple)


def plan_pool_change(pool: str, target: int, live_nodes: Sequence[str]) -> PoolChange | None:
    """What brings a pool from its live nodes (oldest first, leaving ones excluded) to `target` nodes.

    Clouds reclaim whichever instances they like; the sandbox reclaims the oldest nodes first because
    they are the ones most likely to run work, which makes a trace exercise preemption.
    """
    if target > len(live_nodes):
        return PoolChange(pool, add=target - len(live_nodes))
    if target < len(live_nodes):
        return PoolChange(pool, reclaim=tuple(live_nodes[: len(live_nodes) - target]))
    return None


def due_script_steps(script: Sequence[ScriptStep], after_s: float, until_s: float) -> list[ScriptStep]:
    """Script steps whose time falls in (after_s, until_s] (start with after_s < 0 to include 0 s)."""
    return [step for step in script if after_s < step.at_s <= until_s]


def node_name(pool: NodePool, index: int) -> str:
    """Names are never reused, so a replacement node is visibly a different node."""
    return f"{pool.name}-{index}"


def node_manifest(pool: NodePool, name: str) -> dict[str, Any]:
    """The Node object of a pool member, without status (written through the status subresource)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.instance_type,
        POOL_LABEL: pool.name,
        **pool.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                PRICE_ANNOTATION: f"{pool.price_per_hour:g}",
                **({SIMULATED_DEVICE_ANNOTATION: pool.device.to_json()} if pool.device else {}),
            },
        },
        "spec": {"taints": [taint.model_dump() for taint in pool.taints]},
    }


def node_status(pool: NodePool, name: str, address: str, now: str) -> dict[str, Any]:
    """A Ready node's status: capacity (cpu, memory, pods, `nvidia.com/gpu`), addresses, conditions."""
    capacity = {
        "cpu": str(pool.cpus_per_node),
        "memory": pool.memory_per_node,
        "pods": str(pool.max_pods_per_node),
        "nvidia.com/gpu": str(pool.gpus_per_node),
    }
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "sandbox kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.32.0-elasticft-sandbox",
            "containerRuntimeVersion": "sandbox-process://1",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "ElasticFT sandbox (local processes)",
            "kernelVersion": "",
            "kubeProxyVersion": "",
            "machineID": name,
            "systemUUID": name,
            "bootID": name,
        },
    }


def with_termination_taint(taints: Sequence[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """The node's taints plus the spot-interruption taint AWS Node Termination Handler adds."""
    kept = [taint for taint in taints if taint.get("key") != SPOT_TERMINATION_TAINT]
    return [*kept, {"key": SPOT_TERMINATION_TAINT, "effect": "NoSchedule", "timeAdded": now}]
