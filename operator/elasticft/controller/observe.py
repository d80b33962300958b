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
    generation: int
    index: int
    capacity_type: str
    phase: str
    ready: bool
    deleting: bool
    node_name: str | None
    pod_ip: str | None
    disrupted: bool
    unschedulable: bool
    exit_code: int | None
    summary: TrainerSummary | None
    created: datetime | None

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


def pod_view(pod: Mapping[str, Any], terminating_nodes: Iterable[str] = ()) -> PodView:
    """A pod as the reconciler needs it. A pod counts as disrupted (a preemption, not a failure) when
    it carries DisruptionTarget or sits on a node tainted for termination."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {}) or {}
    labels = meta.get("labels") or {}
    disruption = _condition(pod, "DisruptionTarget")
    scheduled = _condition(pod, "PodScheduled")
    ready = _condition(pod, "Ready")
    node_name = spec.get("nodeName")
    exit_code: int | None = None
    message: str | None = None
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            exit_code = int(terminated.get("exitCode", 0))
            message = terminated.get("message")
    return PodView(
        name=meta["name"],
        role=labels.get(LABEL_ROLE, ""),
        generation=int(labels.get(LABEL_GENERATION, "0")),
        index=int(labels.get(LABEL_INDEX, "0")),
        capacity_type=labels.get(LABEL_CAPACITY, ""),
        phase=status.get("phase") or "Pending",
        ready=bool(ready and ready.get("status") == "True"),
        deleting=meta.get("deletionTimestamp") is not None,
        node_name=node_name,
        pod_ip=status.get("podIP"),
        disrupted=bool(disruption and disruption.get("status") == "True") or node_name in set(terminating_nodes),
        unschedulable=bool(scheduled and scheduled.get("status") == "False"
                           and scheduled.get("reason") == "Unschedulable"),
        exit_code=exit_code,
        summary=TrainerSummary.parse(message),
        created=_timestamp(meta.get("creationTimestamp")),
    )


def matching_nodes(nodes: Iterable[NodeView], selector: Mapping[str, str]) -> list[NodeView]:
    return [n for n in nodes if all(n.labels.get(k) == v for k, v in selector.items())]
