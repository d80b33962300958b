"""Checking FineTuneJob documents: schema errors (pydantic) and semantic rules, each naming the field.

`validate_document` is pure: the caller passes `now` (the CLI uses the clock, the operator uses the
object's creationTimestamp so a deadline that passes mid-run does not invalidate a running job).

A document is checked as the API server sees it: as JSON, with JSON's types taken strictly, so a quoted
`"600"` is not an integer and `"no"` is not a boolean, exactly as the CRD's schema decides.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from elasticft.api.durations import format_duration, parse_duration
from elasticft.api.kubernetes import PATTERN_RULES
from elasticft.api.models import CapacityPool, FineTuneJob, FineTuneJobSpec, PricingSource, Task

RESERVED_ENV_PREFIX = "ELASTICFT_"
#: A model or dataset shipped inside an installed Python package (the trainer reads its files offline).
PACKAGE_PREFIX = "package:"
GPU_RESOURCE = "nvidia.com/gpu"
# A job shorter than this cannot even start its first world; one longer than this is a typo.
SHORTEST_JOB_S = 60.0
LONGEST_DURATION_S = 10 * 366 * 24 * 3600.0
# More values than any real FineTuneJob holds: a YAML alias bomb expands far past it and is cut short
# before anything walks, prints or serialises the expansion.
MOST_DOCUMENT_VALUES = 100_000
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxdict, _SHORT_REPR.maxlist, _SHORT_REPR.maxstring = 2, 4, 4, 50
#: How a rule reports a broken field: fail(path below spec, message).
Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class FieldError:
    """One broken rule: the field path as a user writes it and the rule, e.g.
    `spec.elastic.minWorkers: must be <= maxWorkers (4 > 2)`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _path(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _shown(value: Any) -> str:
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_message(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (not part of the FineTuneJob API)"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        symbol, key = bounds[kind]
        return f"must be {symbol} {ctx[key]} (got {_shown(error['input'])})"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_RULES:
        return f"{PATTERN_RULES[ctx['pattern']]} (got {_shown(error['input'])})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{message[0].lower()}{message[1:]} (got {_shown(error['input'])})"


def schema_errors(exc: ValidationError) -> list[FieldError]:
    """The pydantic errors of a document, one FieldError per broken field."""
    errors = []
    for error in exc.errors():
        loc, message = error["loc"], _schema_message(error)
        if loc and loc[-1] == "[key]":  # a map key, not its value
            loc, message = loc[:-1], f"key {message}"
        errors.append(FieldError(_path(loc), message))
    return errors


def feasible_world_sizes(spec: FineTuneJobSpec) -> list[int]:
    """Worker counts w in [minWorkers, maxWorkers] for which globalBatchSize splits evenly over
    w × nprocPerWorker processes, so every rescale keeps the exact same optimisation."""
    per_worker = spec.nproc_per_worker
    return [
        w
        for w in range(spec.elastic.min_workers, spec.elastic.max_workers + 1)
        if spec.global_batch_size % (w * per_worker) == 0
    ]


def _cheapest_price(spec: FineTuneJobSpec) -> float | None:
    pools = [spec.capacity.spot, spec.capacity.on_demand]
    prices = [p.price_per_hour for p in pools if p.enabled and p.price_per_hour is not None]
    return min(prices) if prices else None


def semantic_errors(job: FineTuneJob, now: datetime) -> list[FieldError]:
    """Rules that span fields or depend on time; each error names the field a user must change."""
    errors: list[FieldError] = []

    def fail(path: str, message: str) -> None:
        errors.append(FieldError(f"spec.{path}", message))

    spec = job.spec
    _check_references(spec, fail)
    _check_sizes(spec, fail)
    _check_times(spec, now, fail)
    _check_capacity(spec, fail)
    _check_budget(spec, fail)
    _check_checkpoint_and_env(spec, fail)
    _check_processes(spec, fail)
    return errors


def _check_references(spec: FineTuneJobSpec, fail: Fail) -> None:
    """The model and dataset references, and the classification block with its task."""
    if (spec.task == Task.CLASSIFICATION) != (spec.classification is not None):
        fail("classification", "set it exactly when task is classification")
    for name, reference in (("model", spec.model), ("dataset", spec.dataset or "")):
        module = reference.removeprefix(PACKAGE_PREFIX).partition("/")[0]
        if reference.startswith(PACKAGE_PREFIX) and not module.isidentifier():
            fail(name, f"package:MODULE[/PATH] needs an importable module name (got {module!r})")


def _check_sizes(spec: FineTuneJobSpec, fail: Fail) -> None:
    """Worker counts, steps, and the global batch against the processes of the smallest and largest size."""
    elastic = spec.elastic
    if elastic.min_workers > elastic.max_workers:
        fail("elastic.minWorkers", f"must be <= maxWorkers ({elastic.min_workers} > {elastic.max_workers})")
    if (spec.total_steps is None) == (spec.epochs is None):
        fail("totalSteps", "exactly one of totalSteps and epochs must be set")
    ranks_at_max = elastic.max_workers * spec.nproc_per_worker
    if spec.global_batch_size < ranks_at_max:
        fail(
            "globalBatchSize",
            f"must be >= maxWorkers × nprocPerWorker = {ranks_at_max} so every process gets a sample "
            f"(got {spec.global_batch_size})",
        )
    elif elastic.min_workers <= elastic.max_workers:
        for bound, workers in (("minWorkers", elastic.min_workers), ("maxWorkers", elastic.max_workers)):
            ranks = workers * spec.nproc_per_worker
            if spec.global_batch_size % ranks:
                fail(
                    "globalBatchSize",
                    f"must be divisible by the {ranks} processes of {bound}={workers} "
                    f"({spec.global_batch_size} % {ranks} = {spec.global_batch_size % ranks})",
                )



def _check_times(spec: FineTuneJobSpec, now: datetime, fail: Fail) -> None:
    """Durations and the deadline (which must lie far enough in the future)."""
    objective = spec.objective
    if objective.max_duration is not None:
        _check_duration(fail, "objective.maxDuration", objective.max_duration, SHORTEST_JOB_S)
    _check_duration(fail, "elastic.rescaleCooldown", spec.elastic.rescale_cooldown, 0.0)
    _check_duration(fail, "elastic.readyTimeout", spec.elastic.ready_timeout, 1.0)
    if objective.deadline is not None and objective.max_duration is not None:
        fail("objective.deadline", "set either deadline or maxDuration, not both")
    if objective.deadline is not None:
        deadline = objective.deadline
        if deadline.tzinfo is None:
            fail("objective.deadline", "must be an RFC 3339 time with a zone, e.g. 2026-12-01T18:00:00Z")
        elif deadline <= now:
            fail("objective.deadline", f"must be in the future (it is {deadline.isoformat()}, now {now.isoformat()})")
        elif (deadline - now).total_seconds() < SHORTEST_JOB_S:
            fail("objective.deadline", f"must leave the job at least {format_duration(SHORTEST_JOB_S)} "
                 f"(it is {deadline.isoformat()}, now {now.isoformat()})")


def _check_capacity(spec: FineTuneJobSpec, fail: Fail) -> None:
    """The capacity pools, telling them apart, and where prices come from."""
    capacity = spec.capacity
    if not capacity.spot.enabled and not capacity.on_demand.enabled:
        fail("capacity", "at least one of spot and onDemand must be enabled")
    if (
        capacity.spot.enabled
        and capacity.on_demand.enabled
        and capacity.spot.node_selector == capacity.on_demand.node_selector
    ):
        fail("capacity.onDemand.nodeSelector", "must differ from spot's, or spot and on-demand cannot be told apart")
    for pool_name, pool in (("spot", capacity.spot), ("onDemand", capacity.on_demand)):
        _check_tolerations(fail, f"capacity.{pool_name}", pool)
    pricing = capacity.pricing
    if pricing.source == PricingSource.CONFIG_MAP and not pricing.config_map_name:
        fail("capacity.pricing.configMapName", "required when source is ConfigMap")
    if pricing.source == PricingSource.PROMETHEUS:
        if not (pricing.spot_query and pricing.on_demand_query):
            fail("capacity.pricing.spotQuery", "spotQuery and onDemandQuery are required when source is Prometheus")
        if not spec.metrics.prometheus_url:
            fail("metrics.prometheusURL", "required when capacity.pricing.source is Prometheus")
    if spec.metrics.prometheus_url and not spec.metrics.prometheus_url.startswith(("http://", "https://")):
        fail("metrics.prometheusURL", f"must be an http(s) URL (got {spec.metrics.prometheus_url!r})")


def _check_budget(spec: FineTuneJobSpec, fail: Fail) -> None:
    """A budget the cheapest possible rate or run already exceeds."""
    objective, elastic = spec.objective, spec.elastic
    cheapest = _cheapest_price(spec)
    budget = objective.budget
    if budget.max_cost_per_hour is not None and cheapest is not None:
        floor = cheapest * elastic.min_workers
        if budget.max_cost_per_hour < floor:
            fail(
                "objective.budget.maxCostPerHour",
                f"is below the cheapest possible rate: minWorkers={elastic.min_workers} × {cheapest}/h = {floor:.2f}/h",
            )
    prior = spec.throughput_prior
    if budget.max_total_cost is not None and cheapest is not None and prior and spec.total_steps:
        # One worker is the most cost-efficient size under a sublinear curve, so this is a lower bound.
        hours = spec.total_steps * spec.global_batch_size / prior.samples_per_second / 3600
        floor = hours * cheapest
        if budget.max_total_cost < floor:
            fail(
                "objective.budget.maxTotalCost",
                f"is below the cheapest possible run ({hours:.2f} worker-hours × {cheapest}/h = {floor:.2f})",
            )


def _check_checkpoint_and_env(spec: FineTuneJobSpec, fail: Fail) -> None:
    """The checkpoint volume and interval, and the user's environment variables."""
    volume = spec.checkpoint.volume
    chosen = [name for name, on in (("claimName", volume.claim_name), ("emptyDir", volume.empty_dir),
                                      ("hostPath", volume.host_path)) if on]
    if len(chosen) > 1:
        fail("checkpoint.volume", f"set at most one of claimName, emptyDir, hostPath (got {', '.join(chosen)})")
    if spec.checkpoint.interval_steps is None and spec.checkpoint.interval_seconds is None:
        fail("checkpoint.intervalSteps", "set intervalSteps or intervalSeconds (or both)")
    seen: set[str] = set()
    for index, var in enumerate(spec.env):
        if var.name.startswith(RESERVED_ENV_PREFIX):
            fail(f"env[{index}].name", f"names starting with {RESERVED_ENV_PREFIX} are set by the operator")
        if var.name in seen:
            fail(f"env[{index}].name", f"duplicate variable {var.name}")
        seen.add(var.name)


def _check_processes(spec: FineTuneJobSpec, fail: Fail) -> None:
    """Processes per worker against its GPUs, and the micro-batch against the global batch."""
    gpus = spec.resources.limits.get(GPU_RESOURCE, spec.resources.requests.get(GPU_RESOURCE))
    if gpus is not None and str(gpus) != str(spec.nproc_per_worker):
        fail("nprocPerWorker", f"must equal the {GPU_RESOURCE} per worker ({spec.nproc_per_worker} != {gpus})")
    if spec.micro_batch_size is not None and spec.micro_batch_size > spec.global_batch_size:
        fail("microBatchSize", f"must be <= globalBatchSize ({spec.micro_batch_size} > {spec.global_batch_size})")


def _holds_more_values(document: object, limit: int) -> bool:
    """Whether `document`, with aliases expanded, has more than `limit` values; stops at the limit."""
    pending, seen = [document], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _timestamp_text(value: object) -> str:
    """YAML reads unquoted timestamps as dates; kubectl sends them to the API server as text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _check_duration(fail: Fail, path: str, text: str, shortest_s: float) -> None:
    """A duration between `shortest_s` and ten years (date arithmetic on it then never overflows)."""
    seconds = parse_duration(text)
    if seconds < shortest_s:
        fail(path, f"must be at least {format_duration(shortest_s)} (got {text})")
    elif seconds > LONGEST_DURATION_S:
        fail(path, f"must be at most {format_duration(LONGEST_DURATION_S)} (ten years; got {text})")


def _check_tolerations(fail: Fail, path: str, pool: CapacityPool) -> None:
    """The rules Kubernetes applies to a Pod's tolerations, which these are copied into."""
    for index, toleration in enumerate(pool.tolerations):
        where = f"{path}.tolerations[{index}]"
        if toleration.operator == "Exists" and toleration.value:
            fail(f"{where}.value", "must be empty when operator is Exists")
        if not toleration.key and toleration.operator != "Exists":
            fail(f"{where}.operator", "must be Exists when key is empty")
        if toleration.toleration_seconds is not None and toleration.effect != "NoExecute":
            fail(f"{where}.effect", "must be NoExecute when tolerationSeconds is set")


def validate_document(document: object, now: datetime) -> tuple[FineTuneJob | None, list[FieldError]]:
    """A parsed FineTuneJob and no errors, or None and every error found (schema first, then
    semantics, which only run on a schema-valid document)."""
    job, errors = parse_document(document)
    if job is None:
        return None, errors
    errors = semantic_errors(job, now)
    return (None, errors) if errors else (job, [])


def parse_document(document: object) -> tuple[FineTuneJob | None, list[FieldError]]:
    """The schema stage alone: what the CRD's schema decides, plus the map-key rules it leaves to CEL."""
    if not isinstance(document, dict):
        kind = "empty" if document is None else type(document).__name__
        return None, [FieldError("(document)", f"must be a mapping (a Kubernetes object), got {kind}")]
    if _holds_more_values(document, MOST_DOCUMENT_VALUES):
        return None, [FieldError("(document)", f"holds more than {MOST_DOCUMENT_VALUES} values "
                                 "(YAML aliases expanding?); not a FineTuneJob")]
    try:
        as_json = json.dumps(document, default=_timestamp_text, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return None, [FieldError("(document)", f"cannot be sent to the API server as JSON: {exc}")]
    try:
        return FineTuneJob.model_validate_json(as_json, strict=True), []
    except ValidationError as exc:
        return None, schema_errors(exc)

