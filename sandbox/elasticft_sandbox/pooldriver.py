"""The cloud behind the simulated node pools: creates nodes, follows traces and scripts, reclaims spot nodes.

A reclaim does what AWS does to a spot instance when Node Termination Handler runs in the cluster:
- notice: the node gets the `aws-node-termination-handler/spot-itn` NoSchedule taint, and each pod on it
  the condition `DisruptionTarget=True`, reason `TerminationByKubelet` (the reason the kubelet uses
  when it shuts a node down, which is what a reclaimed instance amounts to);
- after the notice period the pods are deleted gracefully (the kubelet sends SIGTERM, then SIGKILL after
  each pod's `terminationGracePeriodSeconds`);
- once they are gone (or their grace has run out) the node is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from elasticft_sandbox.addresses import AddressBlock
from elasticft_sandbox.kubeapi import (
    MERGE,
    ApiError,
    Informer,
    KubeApi,
    Obj,
    node_path,
    now_rfc3339,
    pod_path,
    record_event,
)
from elasticft_sandbox.nodepools import (
    POOL_LABEL,
    NodePool,
    PoolsConfig,
    due_script_steps,
    load_trace,
    node_manifest,
    node_name,
    node_status,
    plan_pool_change,
    trace_target,
    with_termination_taint,
)

log = logging.getLogger(__name__)

COMPONENT = "sandbox-cloud"
DISRUPTION_REASON = "TerminationByKubelet"
CHECK_INTERVAL_S = 0.5
# How long past the longest grace period a reclaim waits for pods before deleting the node anyway.
GRACE_MARGIN_S = 5.0


class PoolDriver:
    """Owns the Node objects of every pool and changes them as the trace, the script or a test says."""

    def __init__(self, api: KubeApi, config: PoolsConfig, pods: Informer, nodes: Informer,
                 addresses: AddressBlock) -> None:
        self.api = api
        self.addresses = addresses
        self.config = config
        self.pods = pods
        self.nodes = nodes
        self.traces = {pool.name: load_trace(pool.trace) for pool in config.pools if pool.trace is not None}
        self._members: dict[str, list[str]] = {pool.name: [] for pool in config.pools}
        self._next_index: dict[str, int] = {pool.name: 0 for pool in config.pools}
        self._next_address = 0
        self._seen: set[str] = set()
        self._reclaims: set[asyncio.Task[None]] = set()
        self._started_at = 0.0

    def elapsed_s(self) -> float:
        return asyncio.get_running_loop().time() - self._started_at

    async def start(self) -> None:
        """Create every pool's initial nodes (from the trace's first tick where there is one)."""
        self._started_at = asyncio.get_running_loop().time()
        for pool in self.config.pools:
            await self.add_nodes(pool.name, self._target(pool, 0.0))

    def _target(self, pool: NodePool, elapsed_s: float) -> int:
        if pool.trace is None:
            return pool.nodes
        return trace_target(self.traces[pool.name], pool.trace, elapsed_s, self.config.seconds_per_tick)

    async def run(self) -> None:
        """Apply the script's steps when due and follow the traces, until cancelled."""
        checked_s = -1.0
        while True:
            now_s = self.elapsed_s()
            for step in due_script_steps(self.config.script, checked_s, now_s):
                if step.action == "add":
                    await self.add_nodes(step.pool, step.nodes)
                else:
                    for name in self.live_nodes(step.pool)[: step.nodes]:
                        await self.reclaim(name)
            checked_s = now_s
            self._forget_deleted_nodes()
            for pool in self.config.pools:
                if pool.trace is None:
                    continue
                change = plan_pool_change(pool.name, self._target(pool, now_s), self.live_nodes(pool.name))
                if change is not None and change.add:
                    await self.add_nodes(pool.name, change.add)
                for name in change.reclaim if change is not None else ():
                    await self.reclaim(name)
            await asyncio.sleep(CHECK_INTERVAL_S)

    def live_nodes(self, pool: str) -> list[str]:
        """The pool's nodes that are not being reclaimed, oldest first."""
        return list(self._members[pool])

    def _forget_deleted_nodes(self) -> None:
        """Nodes deleted by someone else (`kubectl delete node`) leave their pool."""
        self._seen |= {name for _, name in self.nodes.objects}
        present = {name for _, name in self.nodes.objects}
        for pool, names in self._members.items():
            self._members[pool] = [n for n in names if n in present or n not in self._seen]

    async def add_nodes(self, pool_name: str, count: int) -> list[str]:
        """Create `count` Ready nodes in the pool; returns their names."""
        pool = self.config.pool(pool_name)
        created = []
        for _ in range(count):
            name = node_name(pool, self._next_index[pool.name])
            self._next_index[pool.name] += 1
            address = self.addresses.node_address(self._next_address)
            self._next_address += 1
            await self.api.create("/api/v1/nodes", node_manifest(pool, name))
            await self.api.patch(
                node_path(name, "status"), {"status": node_status(pool, name, address, now_rfc3339())}, MERGE
            )
            self._members[pool.name].append(name)
            created.append(name)
        if created:
            log.info("pool %s: added %s", pool.name, ", ".join(created))
        return created

    async def reclaim(self, name: str, notice_s: float | None = None) -> None:
        """Give the node a spot interruption notice now; its pods and the node go after `notice_s`.

        Returns once the notice is visible in the API (taint and DisruptionTarget conditions).
        """
        notice = self.config.reclaim_notice_s if notice_s is None else notice_s
        for names in self._members.values():
            if name in names:
                names.remove(name)
        node = await self.api.get(node_path(name))
        taints = with_termination_taint(node.get("spec", {}).get("taints") or [], now_rfc3339())
        await self.api.patch(node_path(name), {"spec": {"taints": taints}}, MERGE)
        message = f"spot instance {name} is reclaimed by the cloud provider in {notice:g}s"
        node["kind"] = "Node"
        await record_event(self.api, node, "SpotInterruption", message, COMPONENT, "Warning")
        for pod in await self._pods_on(name):
            await self._mark_disruption_target(pod, message)
        task = asyncio.create_task(self._finish_reclaim(name, notice))
        self._reclaims.add(task)
        task.add_done_callback(self._reclaims.discard)
        log.info("pool %s: reclaiming %s in %gs", node["metadata"]["labels"].get(POOL_LABEL), name, notice)

    async def _pods_on(self, node: str) -> list[Obj]:
        listing = await self.api.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"})
        pods: list[Obj] = listing.get("items", [])
        return [pod for pod in pods if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")]

    async def _mark_disruption_target(self, pod: Obj, message: str) -> None:
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": DISRUPTION_REASON,
            "message": message,
            "lastTransitionTime": now_rfc3339(),
        }
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            path = pod_path(meta["namespace"], meta["name"], "status")
            await self.api.patch(path, {"status": {"conditions": [condition]}})

    async def _finish_reclaim(self, name: str, notice_s: float) -> None:
        try:
            await asyncio.sleep(notice_s)
            pods = await self._pods_on(name)
            for pod in pods:
                meta = pod["metadata"]
                with contextlib.suppress(ApiError):
                    await self.api.delete(pod_path(meta["namespace"], meta["name"]))
            graces = [float(pod["spec"].get("terminationGracePeriodSeconds", 30)) for pod in pods]
            longest_grace = max(graces, default=0.0)
            deadline = self.elapsed_s() + longest_grace + GRACE_MARGIN_S
            while self.elapsed_s() < deadline and any(
                pod.get("spec", {}).get("nodeName") == name for pod in self.pods.objects.values()
            ):
                await asyncio.sleep(CHECK_INTERVAL_S / 2)
            await self.api.delete(node_path(name))
            log.info("node %s reclaimed", name)
        except (ApiError, aiohttp.ClientError) as error:
            log.warning("reclaim of %s did not complete: %s", name, error)

    async def stop(self) -> None:
        for task in list(self._reclaims):
            task.cancel()
