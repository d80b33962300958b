"""The operator's sizing replayed on availability traces: when an elastic job grows, where it stops.

The throughput is a simulated device's true curve (`elasticft_trainer.simulated_device`), learned by
the replayed operator only at the sizes it has run, as the real operator learns it from measurement.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from elasticft.api.durations import parse_duration
from elasticft.api.models import FineTuneJobSpec
from elasticft.api.validation import feasible_world_sizes
from elasticft.controller.replay import operator_policy, sim_job
from elasticft.policy.decision import useful_max_workers
from elasticft.policy.throughput import fit_throughput, predict_throughput
from elasticft.sim.replay import SimObservation, replay
from elasticft.sim.trace import SpotTrace
from elasticft.types import Prices, Size
from elasticft_trainer.simulated_device import SimulatedDevice

V100 = SimulatedDevice(name="V100 (simulated)", sample_seconds=0.04, latency_seconds=0.01)
PRICES = Prices(spot_per_hour=0.918, on_demand_per_hour=3.06)
START = datetime(2026, 1, 1, tzinfo=UTC)
GRADIENT_BYTES = 49152


def spec(steps: int = 220, max_workers: int = 6, max_duration: str = "280s", efficiency: float = 0.5,
         prior: float = 30.0) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate({
        "totalSteps": steps, "globalBatchSize": 48,
        "elastic": {"minWorkers": 1, "maxWorkers": max_workers, "rescaleCooldown": "10s"},
        "objective": {"maxDuration": max_duration, "mode": "MinCost", "minScalingEfficiency": efficiency},
        "throughputPrior": {"samplesPerSecond": prior, "serialFraction": 0.1, "restartSeconds": 12},
        "capacity": {"spot": {"pricePerHour": 0.918}, "onDemand": {"pricePerHour": 3.06}},
    })


def availability(*runs: tuple[int, int]) -> SpotTrace:
    """(spot nodes, seconds) runs, one tick a second."""
    counts = [count for count, seconds in runs for _ in range(seconds)]
    return SpotTrace("test", 1.0, np.array(counts, dtype=np.int64))


def sizes_run(job: FineTuneJobSpec, curve: dict[int, float], trace: SpotTrace) -> tuple[list[Size], bool]:
    """The configurations the replayed operator chose, in order, and whether it met the deadline."""
    chosen: list[Size] = []
    policy = operator_policy(job, curve, 12.0, START, PRICES)

    def recording(observation: SimObservation) -> Size:
        config = policy(observation)
        if not chosen or chosen[-1] != config:
            chosen.append(config)
        return config

    deadline_s = parse_duration(job.objective.max_duration or "0s")
    result = replay(sim_job(job, curve, 12.0, deadline_s, PRICES), trace, 0, recording)
    return chosen, result.deadline_met


def v100_curve(job: FineTuneJobSpec) -> dict[int, float]:
    return {n: V100.throughput(job.global_batch_size, n, GRADIENT_BYTES) for n in range(1, job.elastic.max_workers + 1)}


def test_device_curve_is_sublinear_and_a_usl_fit_recovers_it() -> None:
    curve = {n: V100.throughput(48, n, GRADIENT_BYTES) for n in (1, 2, 3, 4, 6, 8)}
    assert curve[1] == 25.0  # 1 / sample_seconds
    assert all(curve[a] < curve[b] < curve[a] * b / a for a, b in [(1, 2), (2, 4), (4, 8)])
    fitted = fit_throughput(tuple(curve.items()))
    assert max(abs(predict_throughput(fitted, n) - x) / x for n, x in curve.items()) < 0.05


def test_job_grows_when_measured_throughput_says_it_is_behind_and_spot_returns() -> None:
    # The prior (30 samples/s a worker) is optimistic: 2 workers look enough. Measured at 2 (49 samples/s,
    # not the 54.5 assumed), the deadline needs 3, which the job takes once spot capacity allows.
    job = spec(max_duration="250s")
    chosen, met = sizes_run(job, v100_curve(job), availability((2, 40), (6, 400)))
    assert chosen[0] == (2, 0)
    assert any(spot >= 3 and on_demand == 0 for spot, on_demand in chosen[1:])
    assert met


def test_job_stops_growing_where_a_measured_worker_adds_less_than_min_scaling_efficiency() -> None:
    # 8 spot nodes, a deadline only a large world can make, the device measured at 2, 4 and 8 workers:
    # the fit sees the all-reduce latency flatten the curve, and the 7th and 8th workers add less than
    # half a worker's share, so the job re-forms at 6 however much spot there is; with no efficiency
    # floor the same job takes all 8.
    def size_after_measuring(efficiency: float) -> int:
        job = spec(steps=300, max_workers=8, max_duration="150s", efficiency=efficiency)
        curve = v100_curve(job)
        policy = operator_policy(job, curve, 12.0, START, PRICES)
        for size in (2, 4, 8):  # what the operator has measured so far: a replay that ran those sizes
            policy(observation(job, curve, current=(size, 0), spot_available=8))
        return sum(policy(observation(job, curve, current=(8, 0), spot_available=8, preempted=True)))

    job = spec(max_workers=8)
    measured = {n: v100_curve(job)[n] for n in (2, 4, 8)}
    assert useful_max_workers(fit_throughput(tuple(measured.items())), 1, 8, 0.5) == 6
    assert size_after_measuring(0.5) == 6
    assert size_after_measuring(0.0) == 8


def observation(job: FineTuneJobSpec, curve: dict[int, float], current: Size, spot_available: int,
                preempted: bool = False) -> SimObservation:
    return SimObservation(sim_job(job, curve, 12.0, 150.0, PRICES), 1 / 3600, 0.0, 0.0, current,
                          spot_available, PRICES.spot_per_hour, 0.0, 1.0, 1.0, preempted)


def test_job_with_a_flat_curve_stays_at_min_workers() -> None:
    # Workers sharing one CPU: adding one adds nothing, so no second worker is ever worth paying for.
    job = spec(steps=100, max_duration="600s")
    flat = dict.fromkeys(range(1, 7), 25.0)
    chosen, met = sizes_run(job, flat, availability((6, 1200)))
    assert {spot + on_demand for spot, on_demand in chosen} <= {0, job.elastic.min_workers}
    assert met
    assert feasible_world_sizes(job)[0] == job.elastic.min_workers
