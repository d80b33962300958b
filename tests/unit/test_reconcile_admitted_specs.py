"""Property: whatever the CRD's schema admits, the operator plans valid Kubernetes objects or says which
field is wrong, and it never raises.

Specs are the example job with a few fields replaced by adversarial values (huge and negative numbers,
odd strings, NUL bytes, overflowing durations, far deadlines); only those the CRD admits are reconciled,
since the API server never hands the operator anything else.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elasticft.api.crd import custom_resource_definition
from elasticft.api.validation import validate_document
from elasticft.controller.names import ON_DEMAND, ROLE_RENDEZVOUS, ROLE_WORKER, SPOT, rendezvous_name, worker_name
from elasticft.controller.observe import PodView
from elasticft.controller.reconcile import Measurement, Observed, plan_reconcile
from elasticft.controller.sizing import decide_size
from elasticft.types import Prices
from elasticft_sandbox.apiserver.core_schemas import KUBERNETES_VERSION
from elasticft_sandbox.apiserver.errors import ApiError
from elasticft_sandbox.apiserver.resources import crd_resource_types
from elasticft_sandbox.apiserver.validation import prune, validate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "finetunejob.yaml").read_text())
FINETUNEJOB = crd_resource_types(custom_resource_definition())[0]
CREATED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

WORDS = ["0s", "1ms", "59s", "1m", "99999999h", "87840h", "1h", "500m", "8Gi", "-1", "banana", "", "a\x00b",
         "A=B", "x" * 70, "gpu-pool", "fast.ssd", "Invalid_Name!", "/data", "x" * 52, "elasticft.io/spot"]
INTEGERS = st.one_of(st.integers(-3, 40), st.sampled_from([0, 2**31, 2**53, 10**15, 2**63 - 1, 2**63, -(2**63)]))
NUMBERS = st.one_of(INTEGERS, st.floats(-1e3, 1e20, allow_nan=False))
DURATIONS = st.sampled_from(["0s", "1ms", "59s", "1m", "20s", "1h", "87840h", "87841h", "99999999h", "1.5h",
                             "9" * 30 + "h"])
TIMES = st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-22T12:00:30Z", "2026-11-22T13:00:00Z",
                         "9999-12-31T23:59:59Z", "2026-11-22T12:00:00+14:00"])
QUANTITIES = st.one_of(st.sampled_from(["500m", "8Gi", "1", "0", "1e3", "0.5", "-1", "banana", "1.5Gi"]), INTEGERS)
LABELS = st.dictionaries(st.sampled_from(["pool", "karpenter.sh/capacity-type", "bad key!", "a" * 64]),
                         st.sampled_from(["", "x", "spot", "v" * 64, "-x", "a.b_c"]), max_size=2)
ENV = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["A", "A", "A=B", "PATH", "ELASTICFT_X", "a.b"]),
                                      "value": st.sampled_from(WORDS)}), max_size=3)
TOLERATIONS = st.lists(st.fixed_dictionaries({}, optional={
    "key": st.sampled_from(["", "elasticft.io/spot", "bad key!"]), "operator": st.sampled_from(["Exists", "Equal"]),
    "value": st.sampled_from(["", "x", "v" * 64]), "effect": st.sampled_from(["NoSchedule", "NoExecute"]),
    "tolerationSeconds": INTEGERS}), max_size=2)
ANYTHING = st.one_of(NUMBERS, st.sampled_from(WORDS), st.booleans(), st.text(max_size=12))
# Each field with values of its own type (mostly admitted by the CRD) or, sometimes, anything at all.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **{path: INTEGERS for path in (
        "spec.totalSteps", "spec.epochs", "spec.globalBatchSize", "spec.microBatchSize", "spec.seed", "spec.seqLen",
        "spec.nprocPerWorker", "spec.elastic.minWorkers", "spec.elastic.maxWorkers", "spec.elastic.maxRestarts",
        "spec.checkpoint.intervalSteps", "spec.checkpoint.intervalSeconds", "spec.checkpoint.keep",
        "spec.metrics.port")},
    **{path: NUMBERS for path in (
        "spec.learningRate", "spec.objective.budget.maxCostPerHour", "spec.objective.budget.maxTotalCost",
        "spec.objective.minScalingEfficiency", "spec.capacity.spot.pricePerHour",
        "spec.capacity.onDemand.pricePerHour", "spec.throughputPrior.samplesPerSecond")},
    **{path: st.booleans() for path in (
        "spec.capacity.spot.enabled", "spec.capacity.onDemand.enabled", "spec.checkpoint.volume.emptyDir",
        "spec.suspend")},
    **{path: QUANTITIES for path in (
        "spec.resources.requests.cpu", "spec.resources.limits.memory", "spec.resources.requests.nvidia.com/gpu",
        "spec.checkpoint.volume.size")},
    **{path: st.sampled_from(WORDS) for path in (
        "spec.capacity.pricing.configMapName", "spec.checkpoint.volume.storageClassName",
        "spec.checkpoint.volume.claimName", "spec.checkpoint.volume.hostPath", "spec.image", "spec.model",
        "spec.dataset", "metadata.name")},
    "spec.elastic.rescaleCooldown": DURATIONS, "spec.objective.maxDuration": DURATIONS,
    "spec.objective.deadline": TIMES,
    "spec.objective.mode": st.sampled_from(["MinCost", "MinTime", "Balanced"]),
    "spec.capacity.pricing.source": st.sampled_from(["Static", "ConfigMap", "Prometheus"]),
    "spec.capacity.spot.nodeSelector": LABELS, "metadata.labels": LABELS,
    "spec.capacity.spot.tolerations": TOLERATIONS, "spec.env": ENV,
    "spec.command": st.lists(st.sampled_from(WORDS), max_size=3),
    "spec.args": st.lists(st.sampled_from(WORDS), max_size=3),
}
MUTATION = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(FIELDS[path], FIELDS[path], FIELDS[path], ANYTHING)))


def crd_admits(document: dict[str, Any]) -> bool:
    pruned = prune(document, FINETUNEJOB)
    if pruned.unknown_fields:
        return False
    try:
        validate(pruned.obj, FINETUNEJOB)
    except ApiError:
        return False
    return True


def mutated(mutations: list[tuple[str, Any]]) -> dict[str, Any]:
    document = copy.deepcopy(EXAMPLE)
    document["metadata"].update(namespace="team", uid="u-1", generation=1,
                                creationTimestamp=CREATED.isoformat().replace("+00:00", "Z"))
    for path, value in mutations:
        head, _, tail = path.partition(".nvidia.com/")  # the one key with dots in it
        *parents, last = head.split(".")
        if tail:
            parents, last = [*parents, last], "nvidia.com/" + tail
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return document


def pod(name: str, role: str, capacity: str, index: int = 0, generation: int = 0) -> PodView:
    return PodView(name=name, role=role, world=generation, index=index, capacity_type=capacity,
                   phase="Running", ready=True, deleting=False, node_name=f"node-{index}", pod_ip="127.0.0.9",
                   disruption=None, unschedulable=False, exit_code=None, summary=None, created=CREATED)


def assert_valid_for_kubernetes(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_an_admitted_spec_is_planned_into_valid_objects_or_marked_invalid_naming_a_field(
    mutations: list[tuple[str, Any]],
) -> None:
    document = mutated(mutations)
    if not crd_admits(document):
        return
    job, errors = validate_document(document, now=CREATED)
    if job is None:
        assert errors and all(e.path.startswith(("spec", "metadata")) for e in errors), errors
        return
    prices = Prices(spot_per_hour=0.9, on_demand_per_hour=3.0)
    rdzv = pod(rendezvous_name(job.metadata.name), ROLE_RENDEZVOUS, ON_DEMAND)
    looks = [
        (CREATED, [], Measurement()),
        (CREATED + timedelta(seconds=5), [rdzv], Measurement()),
    ]
    for now, pods, measurement in looks:
        observed = Observed(now=now, created=CREATED, pods=pods, nodes=[], measurement=measurement, prices=prices,
                            rendezvous_host="10.0.0.9", has_claim=True)
        plan = plan_reconcile(job, observed, decide_size)
        job.status = plan.status
        assert_valid_for_kubernetes(plan.create)
    # Running, at a crawl, far into the job: status arithmetic must stay in range.
    assert job.status is not None
    generation, on_demand = job.status.generation, job.status.workers.on_demand
    workers = [pod(worker_name(job.metadata.name, generation, i), ROLE_WORKER, SPOT if i >= on_demand else ON_DEMAND,
                   i, generation) for i in range(job.status.workers.desired)]
    for seconds, rate in ((30, 1e-300), (3600 * 24 * 365 * 9, 1e9)):
        observed = Observed(now=CREATED + timedelta(seconds=seconds), created=CREATED, pods=[rdzv, *workers],
                            nodes=[], measurement=Measurement(step=1, samples_per_second=rate), prices=prices,
                            rendezvous_host="10.0.0.9", has_claim=True)
        plan = plan_reconcile(job, observed, decide_size)
        job.status = plan.status
        assert_valid_for_kubernetes(plan.create)
