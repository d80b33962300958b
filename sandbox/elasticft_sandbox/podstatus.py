"""What the sandbox kubelet reports for a pod (pure): phase, conditions, container status, restarts.

The rules are the kubelet's:
- restartPolicy Always restarts on any exit, OnFailure on a non-zero exit, Never not at all; restarts
  wait an exponential back-off (base·2^n, capped at 300 s) shown as waiting/CrashLoopBackOff;
- phase Pending until the container first starts, Running while it runs or will be restarted, then
  Succeeded (exit 0) or Failed; a deleted pod ends in the terminal phase of its last exit;
- the terminated state's message is the termination-message file (at most 4096 bytes), or with
  `FallbackToLogsOnError` the log's tail when that file is empty and the exit failed;
- Ready = ContainersReady = the container runs and its readiness probe (if any) passes.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

MAX_BACKOFF_S = 300.0
MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: str


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str


ContainerState = Waiting | Running | Terminated


@dataclass(frozen=True)
class PodReport:
    """The kubelet's view of one pod's (first) container."""

    container_name: str
    image: str
    state: ContainerState
    last_state: Terminated | None
    restart_count: int
    ready: bool
    final: bool
    pod_ip: str
    host_ip: str
    start_time: str
    process_id: int | None = None


def should_restart(restart_policy: str, exit_code: int) -> bool:
    """Whether a container that exited with `exit_code` is started again under `restart_policy`."""
    if restart_policy == "Always":
        return True
    return restart_policy == "OnFailure" and exit_code != 0


def restart_backoff_s(restart_count: int, base_s: float) -> float:
    """Wait before restart number `restart_count + 1`: base·2^restart_count, at most 300 s."""
    return float(min(base_s * 2**restart_count, MAX_BACKOFF_S))


def exit_code_of(returncode: int) -> int:
    """A container runtime reports death by signal N as exit code 128 + N (137 for SIGKILL)."""
    return 128 - returncode if returncode < 0 else returncode


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def signal_name(exit_code: int) -> str:
    """`SIGTERM` for 143 and so on; empty when the exit was not a signal."""
    if exit_code <= 128:
        return ""
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return ""


def termination_message(file_text: str, log_tail: str, policy: str, exit_code: int) -> str:
    """The message the kubelet copies into `state.terminated.message`."""
    message = file_text.encode()[:MAX_MESSAGE_BYTES].decode(errors="ignore")
    if not message.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        message = "".join(lines).encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")
    return message


def pod_phase(report: PodReport) -> str:
    state = report.state
    if report.final:
        if isinstance(state, Terminated):
            return "Succeeded" if state.exit_code == 0 else "Failed"
        return "Failed"
    if isinstance(state, Waiting) and report.restart_count == 0 and report.last_state is None:
        return "Pending"
    return "Running"


def _state_dict(state: ContainerState, container_id: str) -> Obj:
    if isinstance(state, Waiting):
        waiting: Obj = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": state.started_at}}
    terminated: Obj = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "startedAt": state.started_at,
        "finishedAt": state.finished_at,
        "containerID": container_id,
    }
    if state.message:
        terminated["message"] = state.message
    if signal_name(state.exit_code):
        terminated["signal"] = state.exit_code - 128
    return {"terminated": terminated}


def _conditions(report: PodReport, phase: str) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of the conditions the kubelet owns."""
    if report.ready:
        readiness = ("True", "", "")
    elif phase == "Succeeded":
        readiness = ("False", "PodCompleted", "")
    else:
        unready = f"containers with unready status: [{report.container_name}]"
        readiness = ("False", "ContainersNotReady", unready)
    return [
        ("PodScheduled", "True", "", ""),
        ("Initialized", "True", "" if phase != "Succeeded" else "PodCompleted", ""),
        ("ContainersReady", *readiness),
        ("Ready", *readiness),
    ]


def merge_conditions(
    existing: Sequence[Obj], owned: Sequence[tuple[str, str, str, str]], now: str
) -> list[Obj]:
    """Existing conditions with the owned ones updated; `lastTransitionTime` moves only when status does.

    Conditions written by others (DisruptionTarget from the node's termination handler, for instance)
    are kept as they are.
    """
    by_type = {condition["type"]: condition for condition in existing}
    merged = [c for c in existing if c["type"] not in {kind for kind, *_ in owned}]
    for kind, status, reason, message in owned:
        previous = by_type.get(kind, {})
        condition: Obj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": previous.get("lastTransitionTime", now)
            if previous.get("status") == status
            else now,
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        merged.append(condition)
    return merged


def pod_status(report: PodReport, existing_conditions: Sequence[Obj], now: str) -> Obj:
    """The pod's `status` as the kubelet writes it through the status subresource."""
    phase = pod_phase(report)
    container_id = f"sandbox://{report.process_id}" if report.process_id else ""
    started = isinstance(report.state, Running)
    container_status: Obj = {
        "name": report.container_name,
        "image": report.image,
        "imageID": "",
        "ready": report.ready,
        "started": started,
        "restartCount": report.restart_count,
        "state": _state_dict(report.state, container_id),
        "lastState": _state_dict(report.last_state, "") if report.last_state else {},
    }
    if container_id:
        container_status["containerID"] = container_id
    status: Obj = {
        "phase": phase,
        "conditions": merge_conditions(existing_conditions, _conditions(report, phase), now),
        "containerStatuses": [container_status],
        "startTime": report.start_time,
    }
    if report.pod_ip:
        status["podIP"] = report.pod_ip
        status["podIPs"] = [{"ip": report.pod_ip}]
    if report.host_ip:
        status["hostIP"] = report.host_ip
        status["hostIPs"] = [{"ip": report.host_ip}]
    return status


@dataclass(frozen=True)
class Readiness:
    """Readiness probe bookkeeping: the verdict flips after success/failure thresholds in a row."""

    ready: bool = False
    successes: int = 0
    failures: int = 0

    def after(self, succeeded: bool, success_threshold: int, failure_threshold: int) -> Readiness:
        if succeeded:
            successes = self.successes + 1
            return Readiness(self.ready or successes >= success_threshold, successes, 0)
        failures = self.failures + 1
        return Readiness(self.ready and failures < failure_threshold, 0, failures)
