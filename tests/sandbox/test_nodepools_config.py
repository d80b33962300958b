"""Node pools: the YAML model, trace replay and the Node objects a pool becomes (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from elasticft_sandbox.nodepools import (
    DEFAULT_POOLS_FILE,
    POOLS_DIR,
    PoolChange,
    PoolsConfig,
    ScriptStep,
    TraceSource,
    due_script_steps,
    load_pools,
    load_trace,
    node_manifest,
    node_status,
    plan_pool_change,
    trace_target,
)
from elasticft_trainer.simulated_device import SIMULATED_DEVICE_ANNOTATION, SimulatedDevice


@pytest.mark.parametrize("pools_file", sorted(POOLS_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_pool_files_load_and_their_traces_exist(pools_file: Path) -> None:
    config = load_pools(pools_file)
    assert {pool.capacity_type for pool in config.pools} == {"spot", "on-demand"}
    for pool in config.pools:
        if pool.trace is not None:
            assert len(load_trace(pool.trace)) > 100


def test_default_pools_label_capacity_type_like_karpenter() -> None:
    config = load_pools(DEFAULT_POOLS_FILE)
    for pool in config.pools:
        labels = node_manifest(pool, f"{pool.name}-0")["metadata"]["labels"]
        assert labels["karpenter.sh/capacity-type"] == pool.capacity_type


def test_script_must_name_existing_pools() -> None:
    with pytest.raises(ValidationError, match="unknown pools"):
        PoolsConfig.model_validate(
            {
                "pools": [{"name": "spot", "capacity_type": "spot", "price_per_hour": 1}],
                "script": [{"at_s": 1, "pool": "gpu", "action": "reclaim"}],
            }
        )


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="gpus"):
        PoolsConfig.model_validate(
            {"pools": [{"name": "spot", "capacity_type": "spot", "price_per_hour": 1, "gpus": 2}]}
        )


def test_trace_is_time_compressed_and_holds_its_last_value() -> None:
    trace = [3, 3, 1, 0, 2]
    source = TraceSource(file="unused.json", start_tick=1)
    targets = [trace_target(trace, source, t, seconds_per_tick=2.0) for t in (0, 1.9, 2, 4, 6, 60)]
    assert targets == [3, 3, 1, 0, 2, 2]


def test_trace_scaled_to_a_peak_keeps_its_dips() -> None:
    trace = [16, 6, 11, 0]
    source = TraceSource(file="unused.json", peak_nodes=4)
    assert [trace_target(trace, source, tick, 1.0) for tick in range(4)] == [4, 2, 3, 0]


def test_real_trace_file_is_read_from_the_packaged_traces() -> None:
    source = TraceSource(file="availability/16-node/aws-08-27-2023/us-east-2b_v100_1.json")
    trace = load_trace(source)
    assert max(trace) == 16 and min(trace) == 0


def test_absolute_trace_path(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"metadata": {"gap_seconds": 300}, "data": [1, 0, 1]}))
    assert load_trace(TraceSource(file=str(path))) == [1, 0, 1]


def test_pool_change_adds_or_reclaims_the_oldest_nodes() -> None:
    assert plan_pool_change("spot", 3, ["spot-0"]) == PoolChange("spot", add=2)
    assert plan_pool_change("spot", 1, ["spot-0", "spot-1", "spot-2"]) == PoolChange(
        "spot", reclaim=("spot-0", "spot-1")
    )
    assert plan_pool_change("spot", 1, ["spot-4"]) is None


def test_script_steps_fire_once_in_their_interval() -> None:
    script = [ScriptStep(at_s=0, pool="p", action="add"), ScriptStep(at_s=5, pool="p", action="reclaim")]
    assert due_script_steps(script, -1, 0.5) == [script[0]]
    assert due_script_steps(script, 0.5, 4.9) == []
    assert due_script_steps(script, 4.9, 5.0) == [script[1]]


def test_node_is_ready_with_gpu_capacity_price_and_taints() -> None:
    config = PoolsConfig.model_validate(
        {
            "pools": [
                {
                    "name": "gpu-spot",
                    "capacity_type": "spot",
                    "gpus_per_node": 4,
                    "price_per_hour": 0.92,
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                }
            ]
        }
    )
    pool = config.pools[0]
    node = node_manifest(pool, "gpu-spot-0")
    status = node_status(pool, "gpu-spot-0", "127.2.0.1", "2026-01-01T00:00:00Z")
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "", "effect": "NoSchedule"}]
    assert node["metadata"]["annotations"]["elasticft.io/price-per-hour"] == "0.92"
    assert status["allocatable"]["nvidia.com/gpu"] == "4"
    assert status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"


def test_a_pools_simulated_device_reaches_its_nodes_and_a_bad_one_names_the_rule() -> None:
    device = {"name": "A100 (simulated)", "sample_seconds": 0.02, "latency_seconds": 0.005}
    config = PoolsConfig.model_validate({"pools": [
        {"name": "od", "capacity_type": "on-demand", "price_per_hour": 4.1, "device": device},
        {"name": "cpu", "capacity_type": "spot", "price_per_hour": 1.0},
    ]})
    with_device, without = (node_manifest(pool, f"{pool.name}-0") for pool in config.pools)
    annotation = with_device["metadata"]["annotations"][SIMULATED_DEVICE_ANNOTATION]
    assert SimulatedDevice.from_json(annotation) == SimulatedDevice(**device)
    assert SIMULATED_DEVICE_ANNOTATION not in without["metadata"]["annotations"]
    with pytest.raises(ValidationError, match="sample_seconds must be > 0"):
        PoolsConfig.model_validate({"pools": [{"name": "x", "capacity_type": "spot", "price_per_hour": 1,
                                               "device": {"name": "x", "sample_seconds": -1}}]})
