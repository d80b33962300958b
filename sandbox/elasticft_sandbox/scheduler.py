"""The sandbox's kube-scheduler: binds pending pods to nodes chosen by `scheduling.place_pod`."""

from __future__ import annotations

import logging
from decimal import Decimal

from elasticft_sandbox.kubeapi import (
    ApiError,
    Controller,
    Informer,
    KubeApi,
    Obj,
    now_rfc3339,
    pod_path,
    record_event,
)
from elasticft_sandbox.scheduling import Resources, needs_scheduling, place_pod, pod_requests, usage_by_node

log = logging.getLogger(__name__)

COMPONENT = "default-scheduler"


def _scheduling_order(pod: Obj) -> tuple[int, str, str]:
    """Higher priority first, then first come first served, as the scheduling queue orders them."""
    meta = pod["metadata"]
    return (-int(pod["spec"].get("priority") or 0), meta.get("creationTimestamp", ""), meta["name"])


class Scheduler(Controller):
    """Watches pods and nodes; binds what fits and marks the rest PodScheduled=False/Unschedulable."""

    def __init__(self, api: KubeApi, pods: Informer, nodes: Informer) -> None:
        super().__init__()
        self.api = api
        self.pods = pods
        self.nodes = nodes
        # Pods bound but not yet seen bound through the watch, so the next pass neither rebinds them
        # nor forgets the resources they take (kube-scheduler's "assumed pods").
        self._assumed: dict[str, tuple[str, Resources]] = {}
        # Last Unschedulable message written per pod uid: the watch may not have echoed it back yet.
        self._reported: dict[str, str] = {}
        pods.subscribe(self.wake)
        nodes.subscribe(self.wake)

    async def reconcile(self) -> None:
        await self.pods.synced.wait()
        await self.nodes.synced.wait()
        pods = list(self.pods.objects.values())
        self._forget_confirmed(pods)
        pending = sorted(
            (p for p in pods if needs_scheduling(p) and p["metadata"].get("uid") not in self._assumed),
            key=_scheduling_order,
        )
        if not pending:
            return
        nodes = sorted(self.nodes.objects.values(), key=lambda node: node["metadata"]["name"])
        usage = usage_by_node(pods)
        for node_name, requests in self._assumed.values():
            _add(usage.setdefault(node_name, {}), requests)
        for pod in pending:
            placement = place_pod(pod, nodes, usage)
            if placement.node is None:
                await self._mark_unschedulable(pod, placement.message)
            elif await self._bind(pod, placement.node):
                requests = pod_requests(pod)
                self._assumed[pod["metadata"]["uid"]] = (placement.node, requests)
                _add(usage.setdefault(placement.node, {}), requests)

    def _forget_confirmed(self, pods: list[Obj]) -> None:
        waiting = {p["metadata"].get("uid") for p in pods if not p["spec"].get("nodeName")}
        for uid in list(self._assumed):
            if uid not in waiting:
                del self._assumed[uid]
        for uid in list(self._reported):
            if uid not in waiting:
                del self._reported[uid]

    async def _bind(self, pod: Obj, node_name: str) -> bool:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            await self.api.create(pod_path(meta["namespace"], meta["name"], "binding"), binding)
        except ApiError as error:
            log.info("binding %s/%s to %s failed: %s", meta["namespace"], meta["name"], node_name, error)
            return False
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}"
        await record_event(self.api, pod, "Scheduled", message, COMPONENT)
        return True

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        conditions = pod.get("status", {}).get("conditions") or []
        current: Obj = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        uid = pod["metadata"].get("uid", "")
        if self._reported.get(uid) == message or (
            current.get("reason") == "Unschedulable" and current.get("message") == message
        ):
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": current.get("lastTransitionTime") or now_rfc3339(),
        }
        meta = pod["metadata"]
        try:
            await self.api.patch(
                pod_path(meta["namespace"], meta["name"], "status"),
                {"status": {"phase": "Pending", "conditions": [condition]}},
            )
        except ApiError as error:
            log.info("could not mark %s/%s unschedulable: %s", meta["namespace"], meta["name"], error)
            return
        self._reported[uid] = message
        await record_event(self.api, pod, "FailedScheduling", message, COMPONENT, "Warning")


def _add(total: Resources, extra: Resources) -> None:
    for name, amount in extra.items():
        total[name] = total.get(name, Decimal(0)) + amount
