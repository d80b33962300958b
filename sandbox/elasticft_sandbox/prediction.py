"""What the simulator predicts for a sandbox run: the same job, pools and trace window, replayed by
`sim.replay` under the operator's own sizing (`controller.replay`) and under two references, all
on-demand and a fixed gang under *Can't Be Late*'s uniform progress.

The sandbox's spot pool follows its trace at `seconds_per_tick`; the prediction replays that very
node count second by second (the operator decides about once a second). Throughput is the simulated
device's true curve (`elasticft_trainer.simulated_device`): *simulated device time*, not a GPU figure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from elasticft.api.models import FineTuneJobSpec
from elasticft.api.validation import feasible_world_sizes
from elasticft.controller.replay import operator_policy, sim_job
from elasticft.controller.status import deadline_of
from elasticft.policy.decision import useful_max_workers
from elasticft.policy.throughput import fit_throughput
from elasticft.sim.baselines import on_demand, uniform_progress
from elasticft.sim.replay import RunResult, replay
from elasticft.sim.trace import SpotTrace
from elasticft.types import Prices
from elasticft_sandbox.nodepools import NodePool, PoolsConfig, load_trace, trace_target
from elasticft_trainer.simulated_device import SimulatedDevice

#: Decisions per second of the replay: the sandbox's operator reconciles every second.
RESOLUTION_S = 1.0


def spot_pool(config: PoolsConfig) -> NodePool:
    """The trace-driven spot pool of a pools file."""
    for pool in config.pools:
        if pool.capacity_type == "spot" and pool.trace is not None:
            return pool
    raise ValueError("the pools file has no trace-driven spot pool to predict from")


def availability(config: PoolsConfig, seconds: float) -> SpotTrace:
    """The spot pool's node count second by second, as the sandbox's pool driver follows its trace."""
    pool = spot_pool(config)
    assert pool.trace is not None
    counts = load_trace(pool.trace)
    ticks = int(seconds / RESOLUTION_S) + 1
    series = [trace_target(counts, pool.trace, i * RESOLUTION_S, config.seconds_per_tick) for i in range(ticks)]
    return SpotTrace(f"{pool.name}@{pool.trace.start_tick}", RESOLUTION_S, np.array(series, dtype=np.int64))


def device_curve(device: SimulatedDevice, spec: FineTuneJobSpec, gradient_bytes: int) -> dict[int, float]:
    """True samples/s of the job on `device` at every size up to maxWorkers."""
    return {n: device.throughput(spec.global_batch_size, n, gradient_bytes)
            for n in range(1, spec.elastic.max_workers + 1)}


@dataclass(frozen=True)
class Prediction:
    operator: RunResult
    on_demand: RunResult
    gang_up: RunResult
    gang_size: int


def gang_size(spec: FineTuneJobSpec, curve: dict[int, float]) -> int:
    """The gang a non-elastic job would run: the largest size worth paying for on the true curve
    (the same `minScalingEfficiency` rule), restricted to sizes that split the batch evenly."""
    useful = useful_max_workers(fit_throughput(tuple(curve.items())), spec.elastic.min_workers,
                                spec.elastic.max_workers, spec.objective.min_scaling_efficiency)
    return max((n for n in feasible_world_sizes(spec) if n <= useful), default=spec.elastic.min_workers)


def predict(spec: FineTuneJobSpec, pools: PoolsConfig, device: SimulatedDevice, gradient_bytes: int,
            restart_overhead_s: float, prices: Prices) -> Prediction:
    """Replay the sandbox run under the operator's sizing and the two references."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    deadline = deadline_of(spec, start)
    if deadline is None:
        raise ValueError("predicting a sandbox run needs a job with a deadline or maxDuration")
    deadline_s = (deadline - start).total_seconds()
    curve = device_curve(device, spec, gradient_bytes)
    trace = availability(pools, deadline_s * 3)
    job = sim_job(spec, curve, restart_overhead_s, deadline_s, prices)
    operated = replay(job, trace, 0, operator_policy(spec, curve, restart_overhead_s, start, prices))
    size = gang_size(spec, curve)
    gang = replace(job, speedup=job.speedup[: size + 1])
    return Prediction(operated, replay(gang, trace, 0, on_demand), replay(gang, trace, 0, uniform_progress), size)


