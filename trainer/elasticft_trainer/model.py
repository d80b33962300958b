"""Models the trainer can fine-tune: a small built-in GPT, or a local Hugging Face causal LM.

Both are returned as an `nn.Module` whose forward maps token ids (batch, seq) to logits
(batch, seq, vocab), optionally with LoRA adapters from peft. The built-in model uses the byte-level
tokenizer, so CPU tests need nothing but the Python standard library as corpus. A Hugging Face model is
a directory, or `package:MODULE[/PATH]`, one shipped inside an installed Python package. The
classification task's encoder is in `classification.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointManager, TrainState
from .config import TrainerConfig
from .data import encode_bytes, packaged_path

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BYTE_VOCAB = 256


@dataclass(frozen=True)
class GptShape:
    """Size of the built-in decoder."""

    n_layers: int
    d_model: int
    n_heads: int
    max_seq_len: int = 256
    vocab_size: int = BYTE_VOCAB


BUILTIN_SHAPES = {
    "gpt-tiny": GptShape(n_layers=2, d_model=128, n_heads=4),
    "gpt-small": GptShape(n_layers=4, d_model=384, n_heads=6),
}
BUILTIN_LORA_TARGETS = ["qkv", "proj"]


class DecoderBlock(nn.Module):
    """Pre-norm transformer block: causal self-attention then a 4x MLP, both residual."""

    def __init__(self, shape: GptShape) -> None:
        super().__init__()
        self.n_heads = shape.n_heads
        self.ln_attn = nn.LayerNorm(shape.d_model)
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model)
        self.proj = nn.Linear(shape.d_model, shape.d_model)
        self.ln_mlp = nn.LayerNorm(shape.d_model)
        self.fc = nn.Linear(shape.d_model, 4 * shape.d_model)
        self.out = nn.Linear(4 * shape.d_model, shape.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(width, dim=2)
        q, k, v = (t.view(batch, seq, self.n_heads, width // self.n_heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, width))
        mlp: torch.Tensor = self.out(F.gelu(self.fc(self.ln_mlp(x))))
        return x + mlp


def _init_gpt2_style(module: nn.Module) -> None:
    """N(0, 0.02) weights as in GPT-2: PyTorch's N(0, 1) embeddings, tied to the head, would start
    with logits so large that the first steps only undo the initialisation."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class TinyGpt(nn.Module):
    """GPT-style decoder with learned positions and an output head tied to the token embedding."""

    def __init__(self, shape: GptShape) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(shape.vocab_size, shape.d_model)
        self.position_embedding = nn.Embedding(shape.max_seq_len, shape.d_model)
        self.blocks = nn.ModuleList(DecoderBlock(shape) for _ in range(shape.n_layers))
        self.ln_final = nn.LayerNorm(shape.d_model)
        self.apply(_init_gpt2_style)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_final(x), self.token_embedding.weight)


class HuggingFaceLogits(nn.Module):
    """Adapts a transformers causal LM (maybe peft-wrapped) to the ids -> logits interface."""

    def __init__(self, causal_lm: nn.Module) -> None:
        super().__init__()
        self.causal_lm = causal_lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.causal_lm(input_ids=input_ids).logits
        return logits


def is_builtin(model_spec: str) -> bool:
    return model_spec.startswith(BUILTIN_PREFIX)


def _builtin_shape(model_spec: str, seq_len: int) -> GptShape:
    name = model_spec.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_SHAPES:
        raise ValueError(f"unknown built-in model {name!r}; choose one of {sorted(BUILTIN_SHAPES)}")
    shape = BUILTIN_SHAPES[name]
    if seq_len > shape.max_seq_len:
        raise ValueError(f"seq_len {seq_len} exceeds {name}'s {shape.max_seq_len} positions")
    return shape


def model_directory(model_spec: str) -> Path:
    """The Hugging Face model directory a spec names: the directory itself, or for `package:MODULE` the
    shallowest folder of the package that holds a `config.json` (packages keep the model in a subfolder)."""
    path = packaged_path(model_spec)
    if (path / "config.json").exists() or not path.is_dir():
        return path
    configs = sorted(path.rglob("config.json"), key=lambda found: (len(found.parts), str(found)))
    if not configs:
        raise FileNotFoundError(f"{model_spec}: no config.json of a Hugging Face model under {path}")
    return configs[0].parent


def _has_tokenizer(model_dir: Path) -> bool:
    return any((model_dir / name).exists() for name in ("tokenizer.json", "tokenizer_config.json"))


def load_encoder(config: TrainerConfig) -> Callable[[str], list[int]]:
    """Text -> token ids for the chosen model: its own tokenizer if the directory has one, else bytes."""
    if is_builtin(config.model):
        return encode_bytes
    model_dir = model_directory(config.model)
    if _has_tokenizer(model_dir):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)

        def encode(text: str) -> list[int]:
            ids: list[int] = tokenizer(text)["input_ids"]
            return ids

        return encode
    from transformers import AutoConfig

    vocab_size = AutoConfig.from_pretrained(model_dir).vocab_size
    if vocab_size < BYTE_VOCAB:
        raise ValueError(f"{model_dir} has no tokenizer and a vocabulary of {vocab_size} < 256 bytes")
    log.info("model directory has no tokenizer; using byte-level token ids")
    return encode_bytes


def with_lora(
    model: nn.Module, config: TrainerConfig, default_targets: list[str] | None, task_type: str | None = None
) -> nn.Module:
    """`model` with peft LoRA adapters; peft's `task_type` keeps a task's new head trainable."""
    from peft import LoraConfig, get_peft_model

    targets: Any = config.lora_target_list or default_targets
    # peft annotates lora_alpha as int but computes alpha / r, so a fractional alpha works.
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,  # type: ignore[arg-type]
        lora_dropout=0.0,
        target_modules=targets,
        task_type=task_type,
    )
    peft_model: nn.Module = get_peft_model(model, lora)
    return peft_model


def build_model(config: TrainerConfig) -> nn.Module:
    """The model to train, with LoRA adapters when `lora_rank > 0` (base weights then frozen).

    Seeded, so every rank builds identical weights (DDP also broadcasts rank 0's at wrap time).
    """
    torch.manual_seed(config.seed)
    if config.task == "classification":
        from .classification import build_classifier  # imported here: it imports this module

        return build_classifier(config)
    if is_builtin(config.model):
        model: nn.Module = TinyGpt(_builtin_shape(config.model, config.seq_len))
        if config.lora_rank > 0:
            model = with_lora(model, config, BUILTIN_LORA_TARGETS)
        return model
    from transformers import AutoModelForCausalLM

    causal_lm: nn.Module = AutoModelForCausalLM.from_pretrained(model_directory(config.model), dtype=torch.float32)
    if config.lora_rank > 0:
        causal_lm = with_lora(causal_lm, config, None)
    return HuggingFaceLogits(causal_lm)


def trained_model(config: TrainerConfig) -> nn.Module:
    """The model as the newest usable checkpoint of `config.checkpoint_dir` left it, for evaluation.

    Collective like every checkpoint load: call it inside a process group (a world of one will do).
    """
    model = build_model(config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    checkpoints = CheckpointManager(config.checkpoint_dir, config.job_name, config.checkpoint_keep, async_mode=False)
    try:
        if checkpoints.load(TrainState(model, optimizer, frozen_base=config.lora_rank > 0)) is None:
            raise FileNotFoundError(f"no usable checkpoint in {config.checkpoint_dir!r}")
    finally:
        checkpoints.close()
    return model


def trainable_parameter_count(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, for the start-up log line."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
