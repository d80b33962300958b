"""Trainer configuration: one typed dataclass, filled from `ELASTICFT_*` env vars, then CLI flags.

Every field has an env name (what the operator sets in the worker pod) and a CLI flag (what a person
types); the flag wins when both are given. `load_config` is a pure function of argv and environ so
that the precedence rules are unit-tested without starting a process.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .simulated_device import SimulatedDevice

ENV_PREFIX = "ELASTICFT_"
TASKS = ("causal-lm", "classification")


def _opt(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class TrainerConfig:
    """What one training run needs; world size and rank come from torchrun, not from here."""

    job_name: str = _opt("local", "FineTuneJob name, used as the `job` metrics label")
    generation: int = _opt(0, "world-membership generation the operator started this worker in")
    model: str = _opt(
        "builtin:gpt-tiny",
        "builtin:gpt-tiny | builtin:gpt-small | HF model directory | package:MODULE[/PATH] (one inside an "
        "installed Python package)",
    )
    task: str = _opt("causal-lm", "causal-lm (next-token loss on text) | classification (labelled CSV rows)")
    dataset: str = _opt(
        "",
        "text file or directory (causal-lm), CSV file (classification), or package:MODULE/PATH; "
        "empty = the Python stdlib sources",
    )
    labels: str = _opt("", "classification: comma list of the classes, in order; rows with other labels are skipped")
    text_column: str = _opt("text", "classification: CSV column holding the text")
    label_column: str = _opt("label", "classification: CSV column holding the class")
    eval_fraction: float = _opt(0.1, "classification: share of the rows held out for evaluation, never trained on")
    max_corpus_bytes: int = _opt(4 << 20, "read at most this many bytes of corpus text")
    seq_len: int = _opt(64, "tokens per training sample")
    total_steps: int = _opt(200, "optimizer steps of the whole job, across all generations")
    epochs: int = _opt(0, "passes over the corpus; when > 0 it sets the steps: ceil(samples / global batch) each")
    global_batch_size: int = _opt(16, "samples per optimizer step, constant across world sizes")
    micro_batch_size: int = _opt(8, "largest per-rank forward pass; gradient accumulation is derived")
    learning_rate: float = _opt(3e-3, "AdamW learning rate")
    cpu_threads: int = _opt(0, "intra-op threads per rank on CPU; 0 = OMP_NUM_THREADS if set, else 1")
    seed: int = _opt(1234, "seed of model initialisation and of the per-epoch data order")
    precision: str = _opt("fp32", "fp32 | bf16 (bf16 = autocast)")
    lora_rank: int = _opt(0, "LoRA rank; 0 trains all weights")
    lora_alpha: float = _opt(16.0, "LoRA alpha")
    lora_targets: str = _opt("", "comma list of module names to adapt; empty = peft's default per model")
    checkpoint_dir: str = _opt("", "directory of step-N/ checkpoints and the `latest` pointer; empty = none")
    checkpoint_interval_steps: int = _opt(50, "save every N steps (0 = never by step count)")
    checkpoint_interval_seconds: float = _opt(0.0, "also save when this many seconds passed (0 = off)")
    checkpoint_keep: int = _opt(3, "committed checkpoints to keep")
    checkpoint_async: bool = _opt(True, "write periodic checkpoints in the background")
    metrics_host: str = _opt("0.0.0.0", "bind address of /metrics and /healthz")
    metrics_port: int = _opt(9400, "port of local rank 0; local rank r uses port + r; -1 = no server")
    termination_log: str = _opt("", "file that receives the final JSON summary (terminationMessagePath)")
    sample_log: str = _opt("", "append one line per consumed sample id (exactness tests)")
    step_delay_s: float = _opt(0.0, "sleep this long in every step (demos that need a slower job)")
    simulated_device: str = _opt(
        "", "JSON device profile (elasticft_trainer.simulated_device): pad each step to that simulated "
        "device's time; set by the sandbox kubelet, never on real accelerators")

    def __post_init__(self) -> None:
        problems = validation_errors(self)
        if problems:
            raise ValueError("invalid trainer configuration: " + "; ".join(problems))

    def steps_for(self, corpus_samples: int) -> int:
        """The job's length in steps: `total_steps`, or `epochs` whole passes over the corpus."""
        if self.epochs <= 0:
            return self.total_steps
        return self.epochs * -(-corpus_samples // self.global_batch_size)

    @property
    def device_profile(self) -> SimulatedDevice | None:
        """The simulated device whose step time each step is padded to, if any."""
        return SimulatedDevice.from_json(self.simulated_device) if self.simulated_device else None

    @property
    def lora_target_list(self) -> list[str]:
        return _comma_list(self.lora_targets)

    @property
    def label_list(self) -> list[str]:
        return _comma_list(self.labels)


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def validation_errors(config: TrainerConfig) -> list[str]:
    """Problems that make a configuration unusable, as messages a user can act on."""
    problems = []
    if config.total_steps < 1:
        problems.append("total_steps must be >= 1")
    if config.epochs < 0:
        problems.append("epochs must be >= 0")
    if config.global_batch_size < 1 or config.micro_batch_size < 1:
        problems.append("global_batch_size and micro_batch_size must be >= 1")
    if config.seq_len < 2:
        problems.append("seq_len must be >= 2")
    if config.precision not in ("fp32", "bf16"):
        problems.append(f"precision must be fp32 or bf16, not {config.precision!r}")
    if config.task not in TASKS:
        problems.append(f"task must be one of {', '.join(TASKS)}, not {config.task!r}")
    if config.task == "classification" and len(config.label_list) < 2:
        problems.append("classification needs at least two labels")
    if not 0 <= config.eval_fraction < 1:
        problems.append("eval_fraction must be in [0, 1)")
    if config.lora_rank < 0:
        problems.append("lora_rank must be >= 0")
    if config.checkpoint_keep < 1:
        problems.append("checkpoint_keep must be >= 1")
    if config.simulated_device:
        try:
            SimulatedDevice.from_json(config.simulated_device)
        except ValueError as error:
            problems.append(str(error))
    return problems


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_PARSERS: dict[Any, Any] = {int: int, float: float, str: str, bool: _parse_bool}


def _field_type(config_field: dataclasses.Field[Any]) -> Any:
    # `from __future__ import annotations` leaves the annotation as a string.
    return {"int": int, "float": float, "str": str, "bool": bool}[str(config_field.type)]


def build_parser() -> argparse.ArgumentParser:
    """CLI flags mirroring the dataclass; defaults are None so that absent flags defer to env."""
    parser = argparse.ArgumentParser(
        prog="python -m elasticft_trainer",
        description="ElasticFT worker: elastic fine-tuning under torchrun. "
        "Every flag can also be set as the ELASTICFT_<NAME> environment variable.",
    )
    for config_field in dataclasses.fields(TrainerConfig):
        flag = "--" + config_field.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=config_field.name,
            type=_PARSERS[_field_type(config_field)],
            default=None,
            help=f"{config_field.metadata['help']} (env {env_name(config_field.name)}, "
            f"default {config_field.default!r})",
        )
    return parser


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> TrainerConfig:
    """Defaults, overridden by `ELASTICFT_*` env vars, overridden by CLI flags."""
    values: dict[str, Any] = {}
    for config_field in dataclasses.fields(TrainerConfig):
        raw = environ.get(env_name(config_field.name))
        if raw is not None and raw != "":
            values[config_field.name] = _PARSERS[_field_type(config_field)](raw)
    flags = vars(build_parser().parse_args(list(argv)))
    values.update({name: value for name, value in flags.items() if value is not None})
    return TrainerConfig(**values)
