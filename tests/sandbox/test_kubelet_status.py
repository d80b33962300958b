"""What the sandbox kubelet reports: phase, restarts, conditions, termination messages (pure)."""

from __future__ import annotations

from dataclasses import replace

from elasticft_sandbox.podstatus import (
    PodReport,
    Readiness,
    Running,
    Terminated,
    Waiting,
    exit_code_of,
    merge_conditions,
    pod_status,
    restart_backoff_s,
    should_restart,
    termination_message,
)

NOW = "2026-01-01T00:00:10Z"
EARLIER = "2026-01-01T00:00:00Z"


def report(**changes: object) -> PodReport:
    base = PodReport(
        container_name="main",
        image="python",
        state=Waiting("ContainerCreating"),
        last_state=None,
        restart_count=0,
        ready=False,
        final=False,
        pod_ip="127.0.1.1",
        host_ip="127.2.0.1",
        start_time=EARLIER,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def exited(code: int, message: str = "") -> Terminated:
    return Terminated(code, "Completed" if code == 0 else "Error", message, EARLIER, NOW)


def test_restart_policies() -> None:
    assert should_restart("Always", 0) and should_restart("Always", 1)
    assert should_restart("OnFailure", 2) and not should_restart("OnFailure", 0)
    assert not should_restart("Never", 1)


def test_back_off_doubles_up_to_five_minutes() -> None:
    assert [restart_backoff_s(n, 10) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]


def test_signals_become_exit_codes_above_128() -> None:
    assert exit_code_of(-9) == 137
    assert exit_code_of(-15) == 143
    assert exit_code_of(3) == 3


def test_phase_goes_pending_running_succeeded() -> None:
    assert pod_status(report(), [], NOW)["phase"] == "Pending"
    running = pod_status(report(state=Running(NOW), ready=True), [], NOW)
    assert running["phase"] == "Running"
    assert {c["type"]: c["status"] for c in running["conditions"]}["Ready"] == "True"
    done = pod_status(report(state=exited(0), final=True), [], NOW)
    assert done["phase"] == "Succeeded"
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_failed_exit_is_failed_only_when_no_restart_follows() -> None:
    assert pod_status(report(state=exited(1), final=True), [], NOW)["phase"] == "Failed"
    backing_off = report(state=Waiting("CrashLoopBackOff"), last_state=exited(1), restart_count=0)
    status = pod_status(backing_off, [], NOW)
    assert status["phase"] == "Running"
    container = status["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["exitCode"] == 1


def test_terminated_state_carries_exit_code_signal_and_message() -> None:
    status = pod_status(report(state=exited(143, '{"completed": false}'), final=True), [], NOW)
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 143
    assert terminated["signal"] == 15
    assert terminated["message"] == '{"completed": false}'


def test_conditions_of_others_survive_and_transition_times_move_only_on_change() -> None:
    existing = [
        {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"},
        {"type": "Ready", "status": "True", "lastTransitionTime": EARLIER},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": EARLIER},
    ]
    merged = merge_conditions(existing, [("PodScheduled", "True", "", ""), ("Ready", "False", "x", "")], NOW)
    by_type = {c["type"]: c for c in merged}
    assert by_type["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert by_type["PodScheduled"]["lastTransitionTime"] == EARLIER
    assert by_type["Ready"]["lastTransitionTime"] == NOW


def test_termination_message_falls_back_to_the_log_tail_only_when_asked() -> None:
    log = "".join(f"line {n}\n" for n in range(200))
    assert termination_message("", log, "File", 1) == ""
    fallback = termination_message("", log, "FallbackToLogsOnError", 1)
    assert fallback.endswith("line 199\n") and "line 100\n" not in fallback
    assert termination_message("", log, "FallbackToLogsOnError", 0) == ""
    assert len(termination_message("x" * 10000, "", "File", 0)) == 4096


def test_readiness_needs_threshold_runs_in_a_row() -> None:
    readiness = Readiness()
    readiness = readiness.after(True, success_threshold=2, failure_threshold=2)
    assert not readiness.ready
    readiness = readiness.after(True, 2, 2)
    assert readiness.ready
    readiness = readiness.after(False, 2, 2)
    assert readiness.ready
    readiness = readiness.after(False, 2, 2)
    assert not readiness.ready
