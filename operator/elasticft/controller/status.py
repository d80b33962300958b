"""Pure status bookkeeping: conditions, progress, cost accrual, ETA and deadline slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from elasticft.api.durations import format_duration, parse_duration
from elasticft.api.models import Condition, FineTuneJobSpec, FineTuneJobStatus, SpotRun, ThroughputPoint

# Spot availability runs kept in status: enough for the policy's outage statistics, bounded in size.
SPOT_HISTORY_LIMIT = 64
# How much a new throughput measurement moves the stored curve point (exponential moving average).
CURVE_SMOOTHING = 0.5
# The latest moment status arithmetic produces; a day short of datetime.max so that any time zone
# conversion of it stays in range. A finish or deadline further out is shown as this.
LATEST_MOMENT = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def set_condition(
    status: FineTuneJobStatus, kind: str, ok: bool, reason: str, message: str, now: datetime, generation: int
) -> None:
    """Set a condition, keeping lastTransitionTime when its status does not change (API conventions)."""
    value = "True" if ok else "False"
    for index, condition in enumerate(status.conditions):
        if condition.type == kind:
            since = condition.last_transition_time if condition.status == value else now
            status.conditions[index] = Condition(
                type=kind, status=value, reason=reason, message=message,
                last_transition_time=since, observed_generation=generation,
            )
            return
    status.conditions.append(
        Condition(type=kind, status=value, reason=reason, message=message,
                  last_transition_time=now, observed_generation=generation)
    )


def condition_is(status: FineTuneJobStatus, kind: str, value: str) -> bool:
    return any(c.type == kind and c.status == value for c in status.conditions)


def moment_after(moment: datetime, seconds: float) -> datetime:
    """`moment` + `seconds`, saturating at LATEST_MOMENT instead of overflowing."""
    if seconds >= (LATEST_MOMENT - moment).total_seconds():
        return LATEST_MOMENT
    return moment + timedelta(seconds=seconds)


def deadline_of(spec: FineTuneJobSpec, created: datetime) -> datetime | None:
    """The absolute deadline: `deadline`, or creation + `maxDuration`, or none."""
    objective = spec.objective
    if objective.deadline is not None:
        return objective.deadline
    if objective.max_duration is not None:
        return moment_after(created, parse_duration(objective.max_duration))
    return None


def accrue_cost(status: FineTuneJobStatus, now: datetime, running_rate_per_hour: float) -> None:
    """accrued += rate × (now − last update): pay for what ran since the last look."""
    if status.cost.updated_time is not None and now > status.cost.updated_time:
        hours = (now - status.cost.updated_time).total_seconds() / 3600
        status.cost.accrued = round(status.cost.accrued + running_rate_per_hour * hours, 6)
    status.cost.updated_time = now


def record_throughput(status: FineTuneJobStatus, workers: int, samples_per_second: float) -> None:
    """Blend a measurement into the curve point for this world size (EMA), keeping points sorted."""
    status.throughput.current = round(samples_per_second, 3)
    for point in status.throughput.curve:
        if point.workers == workers:
            blended = (1 - CURVE_SMOOTHING) * point.samples_per_second + CURVE_SMOOTHING * samples_per_second
            point.samples_per_second = round(blended, 3)
            return
    status.throughput.curve.append(ThroughputPoint(workers=workers, samples_per_second=round(samples_per_second, 3)))
    status.throughput.curve.sort(key=lambda p: p.workers)


def update_progress(
    status: FineTuneJobStatus,
    spec: FineTuneJobSpec,
    now: datetime,
    deadline: datetime | None,
    rate_per_hour: float,
) -> None:
    """progress, ETA, projected cost and deadline slack from step, throughput and the current rate."""
    total = status.total_steps
    status.progress = f"{100 * status.step // total}%" if total else "0%"
    remaining_steps = max(total - status.step, 0)
    steps_per_second = status.throughput.current / spec.global_batch_size
    if steps_per_second > 0 and total:
        # Saturated: a rate near zero or a huge step count projects past any date there is.
        seconds_left = min(remaining_steps / steps_per_second, (LATEST_MOMENT - now).total_seconds())
        status.eta = format_duration(seconds_left)
        finish = moment_after(now, seconds_left)
        status.estimated_completion_time = finish.replace(microsecond=0)
        status.cost.projected_total = round(status.cost.accrued + rate_per_hour * seconds_left / 3600, 4)
        if deadline is not None:
            slack = (deadline - finish).total_seconds()
            status.deadline_slack = format_duration(slack) if slack >= 0 else f"-{format_duration(-slack)}"
    status.cost.rate_per_hour = round(rate_per_hour, 4)


def workers_summary(ready: int, desired: int, spot: int, on_demand: int) -> str:
    """`2/3 (2 spot + 1 on-demand)` for `kubectl get ftj`."""
    return f"{ready}/{desired} ({spot} spot + {on_demand} on-demand)"


def observe_spot(status: FineTuneJobStatus, available: int | None, now: datetime) -> None:
    """Record the obtainable spot count: when it changes, the finished run (count, duration) joins
    the history the policy estimates outage lengths from."""
    spot = status.spot
    if available is None or available == spot.available:
        return
    if spot.available is not None and spot.since is not None:
        spot.history.append(SpotRun(workers=spot.available, seconds=round((now - spot.since).total_seconds(), 1)))
        del spot.history[:-SPOT_HISTORY_LIMIT]
    spot.available, spot.since = available, now
