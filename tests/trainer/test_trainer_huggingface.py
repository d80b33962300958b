"""Hugging Face causal LMs from a local directory, fine-tuned with LoRA, checkpointed and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed.checkpoint as dcp

from elasticft_trainer.localrun import LocalJob, RendezvousStore

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


def save_tiny_model(kind: str, directory: Path) -> None:
    """A randomly initialised model with a byte-sized vocabulary, saved like a downloaded one."""
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        )
    else:
        config = transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)


def test_lora_fine_tune_of_local_llama_checkpoints_only_adapters_and_resumes(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    save_tiny_model("llama", tmp_path / "model")
    cluster.base_env.update(lora_env(tmp_path / "model", small_corpus))
    first = cluster.start_agent("run1", rendezvous_store.endpoint, "hf-1", "1:1", env={"ELASTICFT_TOTAL_STEPS": "4"})
    assert first.wait(120) == 0, first.output()[-4000:]
    assert first.summary().completed
    assert_only_adapters_saved(tmp_path / "checkpoints" / "step-00000004")

    second = cluster.start_agent("run2", rendezvous_store.endpoint, "hf-2", "1:1", env={"ELASTICFT_TOTAL_STEPS": "8"})
    assert second.wait(120) == 0, second.output()[-4000:]
    assert "resumed at step 4" in second.output()
    summary = second.summary()
    assert summary.completed and summary.step == 8 and summary.world_sizes == [1, 1]
    assert summary.loss < summary.initial_loss


def test_lora_checkpoint_of_gpt2_leaves_out_the_head_tied_to_the_frozen_embedding(
    cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    save_tiny_model("gpt2", tmp_path / "model")
    cluster.base_env.update(lora_env(tmp_path / "model", small_corpus))
    agent = cluster.start_agent("run1", rendezvous_store.endpoint, "hf-1", "1:1", env={"ELASTICFT_TOTAL_STEPS": "2"})
    assert agent.wait(120) == 0, agent.output()[-4000:]
    assert agent.summary().completed
    assert_only_adapters_saved(tmp_path / "checkpoints" / "step-00000002")


def lora_env(model_dir: Path, corpus: Path) -> dict[str, str]:
    return {
        "ELASTICFT_MODEL": str(model_dir),
        "ELASTICFT_DATASET": str(corpus),
        "ELASTICFT_LORA_RANK": "4",
        "ELASTICFT_LORA_ALPHA": "8",
        "ELASTICFT_LEARNING_RATE": "0.01",
        "ELASTICFT_CHECKPOINT_INTERVAL_STEPS": "2",
    }


def assert_only_adapters_saved(checkpoint: Path) -> None:
    saved = dcp.FileSystemReader(checkpoint).read_metadata().state_dict_metadata
    saved_weights = [key for key in saved if key.startswith("train.model.")]
    assert saved_weights and all("lora_" in key for key in saved_weights), "frozen base weights were saved"
