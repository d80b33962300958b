"""What the operator sees of a job's pods and of the nodes, as plain frozen data (pure parsing)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticft.controller.names import LABEL_CAPACITY, LABEL_GENERATION, LABEL_INDEX, LABEL_ROLE, SPOT

# Taints that clouds and node-termination handlers put on a node about to be reclaimed.
TERMINATION_TAINTS = frozenset(
    {
        "aws-node-termination-handler/spot-itn",
        "aws-node-termination-handler/rebalance-recommendation",
        "cloud.google.com/impending-node-termination",
        "node.kubernetes.io/out-of-service",
        "karpenter.sh/disrupted",
        "karpenter.sh/disruption",
    }
)


@dataclass(frozen=True)
class TrainerSummary:
    """The trainer's last words (its termination message)."""

    completed: bool
    step: int
    loss: float | None
    reason: str

    @classmethod
    def parse(cls, message: str | None) -> TrainerSummary | None:
        """The summary JSON if the message holds one (it may be a log tail after an error)."""
        if not message:
            return None
        for line in reversed(message.strip().splitlines()):
            text = line.removeprefix("ELASTICFT_SUMMARY ").strip()
            if not text.startswith("{"):
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "completed" in data:
                loss = data.get("loss")
                return cls(
                    completed=bool(data["completed"]),
                    step=int(data.get("step", 0)),
                    loss=float(loss) if isinstance(loss, int | float) else None,
                    reason=str(data.get("reason", "")),
                )
        return None


@dataclass(frozen=True)
class PodView:
    name: str
    role: str
    world: int  # read from the pod's elasticft.io/generation label (its wire name)
    index: int
    capacity_type: str
    phase: str
    ready: bool
    deleting: bool
    node_name: str | None
    pod_ip: str | None
    disruption: str | None  # DisruptionTarget or the node's termination, as `pod_view` found it
    unschedulable: bool
    exit_code: int | None
    summary: TrainerSummary | None
    created: datetime | None
    ready_since: datetime | None = None  # when Ready last turned True (for a ready pod)
    waiting_reason: str | None = None  # the container's waiting reason: ImagePullBackOff, CrashLoopBackOff, ...
    waiting_message: str | None = None  # and the kubelet's message with it
    unschedulable_message: str | None = None  # the scheduler's: "0/5 nodes are available: ..."

    @property
    def preemption(self) -> str | None:
        """Why this pod counts as preempted (not failed), or None: DisruptionTarget, a node tainted for
        termination, or a deletion (docs/worlds.md). A deletion (a user's `kubectl delete pod`, a drain,
        the node's loss) is a preemption on spot and on on-demand alike: the job did not fail, its
        trainer checkpoints on the SIGTERM, and no restart is spent. Deletion needs no check of who
        deleted: the operator only deletes pods of a world it has already left (it moves
        `status.generation` on before it drains), or every pod when the job ends or is suspended, and
        the reconciler counts deletions among the current world's pods only."""
        if self.disruption is not None:
            return self.disruption
        if self.deleting:
            return f"deleted from its {self.capacity_type or 'unknown'} node, not by the operator"
        return None

    @property
    def disrupted(self) -> bool:
        return self.preemption is not None

    @property
    def terminated(self) -> bool:
        return self.phase in ("Succeeded", "Failed") or self.exit_code is not None

    @property
    def failed(self) -> bool:
        """Ended with an error of its own: a non-zero exit that neither a reclaim nor the trainer's own
        summary (stopped with its peers after a SIGTERM, checkpoint written) explains."""
        stopped_cleanly = self.summary is not None and self.summary.reason in ("sigterm", "peer-stopped")
        return self.terminated and not self.disrupted and not stopped_cleanly and (self.exit_code or 0) != 0

    @property
    def on_spot(self) -> bool:
        return self.capacity_type == SPOT

    def describe(self) -> str:
        """What a user would want to know of a pod that is not ready: `Pending (Unschedulable)`."""
        if self.terminated:
            return f"{self.phase} (exit {self.exit_code})" if self.exit_code is not None else self.phase
        detail = "Unschedulable" if self.unschedulable else self.waiting_reason
        explained = self.unschedulable_message if self.unschedulable else self.waiting_message
        if detail and explained:
            detail += f": {explained}"
        if self.phase == "Running" and not self.ready:
            detail = "not ready"
        where = f" on {self.node_name}" if self.node_name else ""
        return f"{self.phase}{where}" + (f" ({detail})" if detail else "")


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: Mapping[str, str]
    ready: bool
    terminating: bool


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def node_view(node: Mapping[str, Any]) -> NodeView:
    taints = node.get("spec", {}).get("taints") or []
    ready = _condition(node, "Ready")
    return NodeView(
        name=node["metadata"]["name"],
        labels=dict(node["metadata"].get("labels") or {}),
        ready=bool(ready and ready.get("status") == "True"),
        terminating=any(t.get("key") in TERMINATION_TAINTS for t in taints)
        or node["metadata"].get("deletionTimestamp") is not None,
    )


def _disruption(condition: Mapping[str, Any] | None, node_name: str | None,
                terminating_nodes: Iterable[str]) -> str | None:
    if condition and condition.get("status") == "True":
        return f"DisruptionTarget: {condition.get('reason') or 'disrupted'}"
    if node_name is not None and node_name in set(terminating_nodes):
        return f"node {node_name} is being reclaimed"
    return None


def pod_view(pod: Mapping[str, Any], terminating_nodes: Iterable[str] = ()) -> PodView:
    """A pod as the reconciler needs it (see `PodView.preemption` for what counts as a preemption)."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {}) or {}
    labels = meta.get("labels") or {}
    scheduled = _condition(pod, "PodScheduled")
    ready = _condition(pod, "Ready")
    is_ready = bool(ready and ready.get("status") == "True")
    node_name = spec.get("nodeName")
    exit_code: int | None = None
    message: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated = state.get("terminated")
        if terminated:
            exit_code = int(terminated.get("exitCode", 0))
            message = terminated.get("message")
        elif state.get("waiting"):
            waiting_reason = state["waiting"].get("reason")
            waiting_message = state["waiting"].get("message")
    unschedulable = bool(scheduled and scheduled.get("status") == "False"
                         and scheduled.get("reason") == "Unschedulable")
    return PodView(
        name=meta["name"],
        role=labels.get(LABEL_ROLE, ""),
        world=int(labels.get(LABEL_GENERATION, "0")),
        index=int(labels.get(LABEL_INDEX, "0")),
        capacity_type=labels.get(LABEL_CAPACITY, ""),
        phase=status.get("phase") or "Pending",
        ready=is_ready,
        deleting=meta.get("deletionTimestamp") is not None,
        node_name=node_name,
        pod_ip=status.get("podIP"),
        disruption=_disruption(_condition(pod, "DisruptionTarget"), node_name, terminating_nodes),
        unschedulable=unschedulable,
        exit_code=exit_code,
        summary=TrainerSummary.parse(message),
        created=_timestamp(meta.get("creationTimestamp")),
        ready_since=_timestamp(ready.get("lastTransitionTime")) if ready and is_ready else None,
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        unschedulable_message=scheduled.get("message") if unschedulable and scheduled else None,
    )


def matching_nodes(nodes: Iterable[NodeView], selector: Mapping[str, str]) -> list[NodeView]:
    return [n for n in nodes if all(n.labels.get(k) == v for k, v in selector.items())]
