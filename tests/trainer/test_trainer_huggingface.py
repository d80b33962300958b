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


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_lora_fine_tune_of_local_hf_model_checkpoints_only_adapters_and_resumes(
    kind: str, cluster: LocalJob, rendezvous_store: RendezvousStore, small_corpus: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    save_tiny_model(kind, model_dir)
    checkpoints = tmp_path / "checkpoints"
    cluster.base_env.update(
        ELASTICFT_MODEL=str(model_dir),
        ELASTICFT_DATASET=str(small_corpus),
        ELASTICFT_LORA_RANK="4",
        ELASTICFT_LORA_ALPHA="8",
        ELASTICFT_LEARNING_RATE="0.01",
        ELASTICFT_CHECKPOINT_INTERVAL_STEPS="2",
    )
    first = cluster.start_agent("run1", rendezvous_store.endpoint, "hf-1", "1:1", env={"ELASTICFT_TOTAL_STEPS": "4"})
    assert first.wait(120) == 0, first.output()[-4000:]
    assert first.summary().completed

    saved = dcp.FileSystemReader(checkpoints / "step-00000004").read_metadata().state_dict_metadata
    saved_weights = [key for key in saved if key.startswith("train.model.")]
    assert saved_weights and all("lora_" in key for key in saved_weights), "frozen base weights were saved"

    second = cluster.start_agent("run2", rendezvous_store.endpoint, "hf-2", "1:1", env={"ELASTICFT_TOTAL_STEPS": "8"})
    assert second.wait(120) == 0, second.output()[-4000:]
    assert "resumed at step 4" in second.output()
    summary = second.summary()
    assert summary.completed and summary.step == 8 and summary.world_sizes == [1, 1]
    assert summary.loss < summary.initial_loss
