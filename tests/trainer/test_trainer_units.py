"""Pure decisions of the trainer: configuration, data order, device choice, gloo binding, summary."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter

import pytest
import torch

from elasticft_trainer.config import TrainerConfig, load_config
from elasticft_trainer.data import epoch_order, micro_batches, rank_samples, rank_slice
from elasticft_trainer.runtime import cpu_thread_count, gloo_environment, select_device, world_from_environ
from elasticft_trainer.simulated_device import SIMULATED_DEVICE_ENV, SimulatedDevice, pad_step
from elasticft_trainer.summary import RunSummary, parse_summary_line


def test_env_configures_the_trainer_and_cli_flags_override_it() -> None:
    env = {
        "ELASTICFT_TOTAL_STEPS": "500",
        "ELASTICFT_GLOBAL_BATCH_SIZE": "64",
        "ELASTICFT_LEARNING_RATE": "1e-4",
        "ELASTICFT_LORA_TARGETS": "q_proj, v_proj",
        "ELASTICFT_CHECKPOINT_ASYNC": "false",
        "ELASTICFT_DATASET": "",
    }
    config = load_config(["--total-steps", "700"], env)
    assert config.total_steps == 700
    assert config.global_batch_size == 64 and config.learning_rate == 1e-4
    assert config.lora_target_list == ["q_proj", "v_proj"]
    assert config.checkpoint_async is False
    assert config.dataset == "" and config.model == "builtin:gpt-tiny"


def test_invalid_configuration_is_rejected_with_the_reason() -> None:
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        load_config([], {"ELASTICFT_PRECISION": "fp8"})
    with pytest.raises(ValueError, match="total_steps"):
        TrainerConfig(total_steps=0)


def test_rank_slices_partition_the_global_batch_for_every_world_size() -> None:
    for world in range(1, 11):
        slices = [rank_slice(10, world, rank) for rank in range(world)]
        assert slices[0][0] == 0 and slices[-1][1] == 10
        assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
        sizes = [stop - start for start, stop in slices]
        assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="smaller than world size"):
        rank_slice(2, 3, 0)


def test_any_sequence_of_world_sizes_consumes_each_sample_once_per_epoch() -> None:
    num_samples, batch, seed = 50, 6, 11
    rng = random.Random(3)
    consumed, seen = 0, Counter()
    for _ in range(25):  # 25 steps x 6 samples = 3 epochs
        world = rng.choice([1, 2, 3, 4, 5, 6])
        for rank in range(world):
            seen.update(rank_samples(seed, consumed, batch, world, rank, num_samples))
        consumed += batch
    assert set(seen.values()) == {1}, "a sample was consumed twice in one epoch"
    for epoch in range(3):
        assert sorted(ref.index for ref in seen if ref.epoch == epoch) == list(range(num_samples))


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    assert epoch_order(1, 0, 100) == epoch_order(1, 0, 100)
    assert epoch_order(1, 0, 100) != epoch_order(1, 1, 100)
    assert epoch_order(1, 0, 100) != epoch_order(2, 0, 100)
    assert sorted(epoch_order(5, 3, 100)) == list(range(100))


def test_micro_batches_cover_the_share_in_order() -> None:
    share = rank_samples(0, 0, 7, 1, 0, 20)
    chunks = micro_batches(share, 3)
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [ref for chunk in chunks for ref in chunk] == share


def test_gpu_ranks_use_their_own_cuda_device_with_nccl_and_bf16_autocast() -> None:
    plan = select_device(cuda_available=True, local_rank=3, precision="bf16")
    assert plan.device == "cuda:3" and plan.device_type == "cuda"
    assert "cuda:nccl" in plan.backend and "cpu:gloo" in plan.backend
    assert plan.autocast_dtype == torch.bfloat16


def test_cpu_ranks_use_gloo_and_fp32_unless_bf16_is_asked() -> None:
    assert select_device(cuda_available=False, local_rank=1, precision="fp32") == select_device(
        False, 0, "fp32"
    )
    plan = select_device(cuda_available=False, local_rank=1, precision="fp32")
    assert (plan.device, plan.backend, plan.autocast_dtype) == ("cpu", "gloo", None)
    assert select_device(False, 0, "bf16").autocast_dtype == torch.bfloat16


def test_gloo_is_pinned_to_loopback_only_for_loopback_pod_addresses() -> None:
    assert gloo_environment({"POD_IP": "127.0.0.3", "MASTER_ADDR": "127.0.0.2"}) == {"GLOO_SOCKET_IFNAME": "lo"}
    assert gloo_environment({"MASTER_ADDR": "localhost"}) == {"GLOO_SOCKET_IFNAME": "lo"}
    assert gloo_environment({"POD_IP": "10.2.3.4", "MASTER_ADDR": "10.2.3.1"}) == {}
    assert gloo_environment({"POD_IP": "127.0.0.3", "GLOO_SOCKET_IFNAME": "eth1"}) == {}


def test_cpu_threads_default_to_one_per_rank_unless_told() -> None:
    assert cpu_thread_count(0, {}) == 1
    assert cpu_thread_count(0, {"OMP_NUM_THREADS": "4"}) == 4
    assert cpu_thread_count(2, {"OMP_NUM_THREADS": "4"}) == 2


def test_world_defaults_to_a_single_process_without_torchrun() -> None:
    world = world_from_environ({})
    assert (world.rank, world.local_rank, world.world_size) == (0, 0, 1)
    world = world_from_environ({"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "6"})
    assert (world.rank, world.local_rank, world.world_size) == (5, 1, 6)


def test_summary_line_round_trips() -> None:
    summary = RunSummary(
        completed=False, step=12, total_steps=24, samples=96, loss=2.5, initial_loss=5.5,
        world_sizes=[2, 1], reason="peer-stopped",
    )
    assert parse_summary_line("ELASTICFT_SUMMARY " + summary.to_json()) == summary
    assert parse_summary_line("step 12 loss 2.5") is None


def test_epochs_set_the_job_length_from_the_corpus() -> None:
    from elasticft_trainer.config import TrainerConfig

    assert TrainerConfig(total_steps=50).steps_for(1000) == 50
    assert TrainerConfig(epochs=2, global_batch_size=16).steps_for(1000) == 2 * 63


def test_simulated_device_profile_comes_from_the_env_the_kubelet_sets_and_bad_ones_name_the_rule() -> None:
    profile = SimulatedDevice(name="V100 (simulated)", sample_seconds=0.04, latency_seconds=0.01)
    config = load_config([], {SIMULATED_DEVICE_ENV: profile.to_json()})
    assert config.device_profile == profile
    # one rank's step: its share computed, then a ring all-reduce of 2 (n - 1) hops
    assert profile.step_seconds(12, 4, 0) == pytest.approx(12 * 0.04 + 6 * 0.01)
    assert profile.throughput(48, 1, 0) == pytest.approx(25.0)
    assert load_config([], {}).device_profile is None
    with pytest.raises(ValueError, match="sample_seconds must be > 0"):
        load_config([], {SIMULATED_DEVICE_ENV: '{"name": "x", "sample_seconds": 0}'})
    with pytest.raises(ValueError, match="ELASTICFT_SIMULATED_DEVICE is not JSON"):
        load_config([], {SIMULATED_DEVICE_ENV: "fast"})


def test_padding_sleeps_out_the_simulated_step_and_never_shortens_a_real_one() -> None:
    profile = SimulatedDevice(name="slow (simulated)", sample_seconds=0.05)
    started = time.monotonic()
    slept = pad_step(profile, started, samples=2, world_size=1, gradient_bytes=0)
    assert slept > 0 and time.monotonic() - started >= 0.1
    assert pad_step(profile, started - 10.0, samples=2, world_size=1, gradient_bytes=0) == 0.0
