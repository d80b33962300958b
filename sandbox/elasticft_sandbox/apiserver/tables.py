"""Server-side printing: `Accept: application/json;as=Table` responses that `kubectl get` renders.

Custom resources get their CRD's additionalPrinterColumns; core types get the columns kubectl users
know (a subset of the real server's printers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

Row = list[Any]
Column = dict[str, Any]


def human_duration(seconds: float) -> str:
    """kubectl's age format (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`)."""
    if seconds < -1:
        return "<invalid>"
    total = max(0, int(seconds))
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        moment = datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - moment).total_seconds())


_JSONPATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    values = [obj]
    for match in _JSONPATH_STEP.finditer(path):
        key, index, filter_key, filter_value = match.groups()
        found: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                found.append(value[key])
            elif index == "*" and isinstance(value, list):
                found.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                found.extend(item for item in value if isinstance(item, dict)
                             and [str(v) for v in jsonpath(item, "." + filter_key)][:1] == [filter_value])
        values = found
    return values


def _column(name: str, kind: str = "string", fmt: str = "", priority: int = 0, description: str = "") -> Column:
    return {"name": name, "type": kind, "format": fmt, "description": description or name, "priority": priority}


NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE = _column("Age", description="CreationTimestamp is a timestamp representing the server time when this object "
                                 "was created.")


def _pod_status(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            reason = terminated.get("reason") or (
                f"Signal:{terminated['signal']}" if terminated.get("signal") else
                f"ExitCode:{terminated.get('exitCode', 0)}")
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: dict[str, Any]) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", _pod_status(pod), restarts,
            age(pod["metadata"].get("creationTimestamp")), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", "<none>", "<none>"]


def _node_row(node: dict[str, Any]) -> Row:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "<none>")
    return [node["metadata"]["name"], state, ",".join(roles) or "<none>",
            age(node["metadata"].get("creationTimestamp")), info.get("kubeletVersion", ""), internal]


def _service_row(service: dict[str, Any]) -> Row:
    spec = service.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
    return [service["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", "<none>",
            ports, age(service["metadata"].get("creationTimestamp"))]


def _event_row(event: dict[str, Any]) -> Row:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    return [age(last), event.get("type", ""), event.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}", event.get("message", "")]


def _status(obj: dict[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field, 0))


def _named(extra: Callable[[dict[str, Any]], list[Any]]) -> Callable[[dict[str, Any]], Row]:
    return lambda obj: [obj["metadata"]["name"], *extra(obj), age(obj["metadata"].get("creationTimestamp"))]


_CORE_PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any]], Row]]] = {
    "pods": ([NAME, _column("Ready"), _column("Status"), _column("Restarts", "string"), AGE,
              _column("IP", priority=1), _column("Node", priority=1), _column("Nominated Node", priority=1),
              _column("Readiness Gates", priority=1)], _pod_row),
    "nodes": ([NAME, _column("Status"), _column("Roles"), AGE, _column("Version"),
               _column("Internal-IP", priority=1)], _node_row),
    "services": ([NAME, _column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)"), AGE],
                 _service_row),
    "events": ([_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"), _column("Message")],
               _event_row),
    "namespaces": ([NAME, _column("Status"), AGE], _named(lambda o: [(o.get("status") or {}).get("phase", "")])),
    "configmaps": ([NAME, _column("Data", "integer"), AGE], _named(lambda o: [len(o.get("data") or {})])),
    "persistentvolumeclaims": (
        [NAME, _column("Status"), _column("Volume"), _column("Capacity"), _column("Access Modes"), AGE],
        _named(lambda o: [(o.get("status") or {}).get("phase", ""), (o.get("spec") or {}).get("volumeName", ""),
                          ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
                          ",".join((o.get("status") or {}).get("accessModes") or [])])),
    "leases": ([NAME, _column("Holder"), AGE], _named(lambda o: [(o.get("spec") or {}).get("holderIdentity", "")])),
    "secrets": ([NAME, _column("Type"), _column("Data", "integer"), AGE],
                _named(lambda o: [o.get("type", ""), len(o.get("data") or {})])),
    "serviceaccounts": ([NAME, _column("Secrets", "integer"), AGE], _named(lambda o: [len(o.get("secrets") or [])])),
    "deployments": ([NAME, _column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer"), AGE],
                    _named(lambda o: [f"{_status(o, 'readyReplicas')}/{(o.get('spec') or {}).get('replicas', 0)}",
                                      _status(o, "updatedReplicas"), _status(o, "availableReplicas")])),
    "replicasets": ([NAME, _column("Desired", "integer"), _column("Current", "integer"), _column("Ready", "integer"),
                     AGE], _named(lambda o: [(o.get("spec") or {}).get("replicas", 0), _status(o, "replicas"),
                                             _status(o, "readyReplicas")])),
}


def _custom_cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    values = jsonpath(obj, column.get("jsonPath", ""))
    if not values:
        return None
    value = values[0]
    if column.get("type") == "date" and isinstance(value, str):
        return age(value)
    if isinstance(value, dict | list):
        return str(value)
    return value


def _custom_printer(resource: ResourceType) -> tuple[list[Column], Callable[[dict[str, Any]], Row]]:
    declared = list(resource.printer_columns) or [{"name": "Age", "type": "date",
                                                   "jsonPath": ".metadata.creationTimestamp"}]
    columns = [NAME] + [_column(c["name"], c.get("type", "string"), c.get("format", ""), int(c.get("priority", 0)),
                                c.get("description", "")) for c in declared]
    return columns, lambda obj: [obj["metadata"]["name"], *(_custom_cell(obj, c) for c in declared)]


def table(resource: ResourceType, objects: Iterable[dict[str, Any]], resource_version: str,
          include_object: str = "Metadata", continue_token: str = "") -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of `objects` with the resource's printer columns."""
    if resource.is_custom:
        columns, row_of = _custom_printer(resource)
    else:
        columns, row_of = _CORE_PRINTERS.get(resource.plural, ([NAME, AGE], _named(lambda _: [])))
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_of(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns,
            "rows": rows}
