"""Where a pod may run: the default scheduler's filters, as pure functions of Pod and Node objects.

Filters (as kube-scheduler's plugins of the same names): NodeUnschedulable and node readiness,
NodeAffinity (`nodeSelector` and required node affinity), TaintToleration (NoSchedule and NoExecute
taints), NodeResourcesFit (requests against allocatable, including `nvidia.com/gpu` and `pods`).
Among feasible nodes the least allocated one wins (the default LeastAllocated score), ties by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity as _parse_quantity

Obj = dict[str, Any]
Resources = dict[str, Decimal]

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi", "1") as a number."""
    value: Decimal = _parse_quantity(quantity)  # type: ignore[no-untyped-call]
    return value
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Placement:
    """The chosen node, or None with the reason a user sees in the PodScheduled condition."""

    node: str | None
    message: str


def pod_requests(pod: Obj) -> Resources:
    """Sum of the containers' requests; a resource given only as a limit requests that limit (defaulting)."""
    total: Resources = {"pods": Decimal(1)}
    for container in pod.get("spec", {}).get("containers", []):
        resources = container.get("resources") or {}
        amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, quantity in amounts.items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(quantity)
    return total


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status", {})
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    return {name: parse_quantity(quantity) for name, quantity in allocatable.items()}


def node_is_ready(node: Obj) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    """Whether any toleration matches the taint (key, operator Equal/Exists, value, effect)."""
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        key = toleration.get("key", "")
        if toleration.get("operator", "Equal") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint of the node that the pod does not tolerate."""
    tolerations = pod.get("spec", {}).get("tolerations") or []
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            return dict(taint)
    return None


def _expression_holds(expression: Obj, values: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    wanted = expression.get("values") or []
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values[key].lstrip("-").isdigit():
        number, bound = int(values[key]), int(wanted[0])
        return number > bound if operator == "Gt" else number < bound
    return False


def matches_node_selection(pod: Obj, node: Obj) -> bool:
    """`nodeSelector` and the required node affinity (terms ORed, expressions ANDed) both hold."""
    labels: dict[str, str] = node.get("metadata", {}).get("labels") or {}
    spec = pod.get("spec", {})
    selector: dict[str, str] = spec.get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    )
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        all(_expression_holds(e, labels) for e in term.get("matchExpressions") or [])
        and all(_expression_holds(e, fields) for e in term.get("matchFields") or [])
        for term in terms
    )


def usage_by_node(pods: Iterable[Obj]) -> dict[str, Resources]:
    """Requests of the pods bound to each node that still hold resources (not yet terminal)."""
    usage: dict[str, Resources] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if not node or pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            continue
        used = usage.setdefault(node, {})
        for name, amount in pod_requests(pod).items():
            used[name] = used.get(name, Decimal(0)) + amount
    return usage


def _rejection(pod: Obj, node: Obj, requests: Resources, used: Resources) -> str | None:
    """Why the node cannot take the pod, phrased as kube-scheduler phrases it; None if it can."""
    if node.get("spec", {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if not node_is_ready(node):
        return "node(s) were not ready"
    if not matches_node_selection(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    allocatable = node_allocatable(node)
    for name, amount in sorted(requests.items()):
        if amount > 0 and used.get(name, Decimal(0)) + amount > allocatable.get(name, Decimal(0)):
            return "Too many pods" if name == "pods" else f"Insufficient {name}"
    return None


def _allocated_fraction(requests: Resources, used: Resources, allocatable: Resources) -> Decimal:
    fractions = [
        (used.get(name, Decimal(0)) + requests.get(name, Decimal(0))) / allocatable[name]
        for name in ("nvidia.com/gpu", "cpu", "memory")
        if allocatable.get(name, Decimal(0)) > 0
    ]
    return sum(fractions, Decimal(0)) / len(fractions) if fractions else Decimal(0)


def place_pod(pod: Obj, nodes: Sequence[Obj], usage: Mapping[str, Resources]) -> Placement:
    """Pick the least allocated feasible node for the pod, or explain why none fits."""
    requests = pod_requests(pod)
    feasible: list[tuple[Decimal, str]] = []
    rejections: Counter[str] = Counter()
    for node in nodes:
        name = node["metadata"]["name"]
        used = usage.get(name, {})
        reason = _rejection(pod, node, requests, used)
        if reason is None:
            feasible.append((_allocated_fraction(requests, used, node_allocatable(node)), name))
        else:
            rejections[reason] += 1
    if feasible:
        return Placement(min(feasible)[1], "")
    details = ", ".join(f"{count} {reason}" for reason, count in sorted(rejections.items()))
    summary = f"0/{len(nodes)} nodes are available" + (f": {details}." if details else ".")
    return Placement(None, summary)


def needs_scheduling(pod: Obj) -> bool:
    """Unbound, not being deleted, not finished, and meant for the default scheduler."""
    spec, meta = pod.get("spec", {}), pod.get("metadata", {})
    return (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and pod.get("status", {}).get("phase", "Pending") == "Pending"
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
    )
