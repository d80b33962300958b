"""One-shot GPU check of the trainer: a Llama-style model of about 1 B parameters, LoRA and full fine-tune.

    bash bench/gpu.sh [--json bench/results/gpu.json]        # on a machine with a CUDA GPU
    bash bench/gpu.sh --tiny --json /tmp/gpu-tiny.json        # CPU fallback: the same path, a tiny model

The model is built here from a config with random weights (TinyLlama-1.1B's shape: 22 layers, width
2048, grouped-query attention, 32 000-token vocabulary) and saved as a Hugging Face directory, so nothing
is downloaded; its corpus is the trainer's default (the Python stdlib sources, byte tokens). Each mode
runs the trainer as the operator does, one torchrun agent (`--nproc-per-node=1`; nccl + bf16 autocast
on a GPU, gloo on CPU), with periodic async checkpoints:

throughput   samples/s and tokens/s between progress-log steps WARMUP and WARMUP + MEASURE;
MFU          model FLOPs per token / (tokens/s x the GPU's peak bf16 dense FLOP/s). FLOPs per token
             (PaLM, appendix B): full fine-tune 6 N + 12 L d T (N non-embedding parameters, L layers,
             width d, T tokens per sample); LoRA does no weight gradients for the frozen base, 2/3 of it;
peak memory  the largest nvidia-smi memory.used seen while the agent ran (CUDA context included);
checkpoint   blocking: the mean time the training loop waited for periodic saves (the trainer's
             elasticft_checkpoint_save_seconds, read from its /metrics); total: seconds from handing
             a save to the writer thread to its commit (the trainer's "written in the background" line);
SIGTERM      the agent gets SIGTERM mid-run (the spot notice); emergency_checkpoint_s is SIGTERM -> the
             agent's exit (finish the step, blocking save, exit 0); a new agent then starts and
             resume_s is its start -> its first step done; steps_lost = last step trained before the
             SIGTERM - step the new agent resumed from.

Targets (GPU): MFU >= 35 % for the full fine-tune; emergency checkpoint within a 30 s notice (GKE) with
0 steps lost. Writes the JSON and a Markdown table beside it; exit 1 when a GPU target is missed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elasticft_trainer.localrun import (
    Agent,
    LocalJob,
    free_loopback_address,
    job_environment,
    running_store,
    wait_until,
)
from elasticft_trainer.summary import RunSummary
from trainer import log_line_time, sample_log_steps

#: Peak dense bf16 FLOP/s by GPU name (vendor data sheets, SXM parts, no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
WARMUP, MEASURE = 10, 30
NOTICE_S = 30.0  # GKE's spot termination notice
MFU_TARGET = 0.35


@dataclass(frozen=True)
class Shape:
    """A Llama config, and the batch each mode trains with."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    seq_len: int
    global_batch: int
    micro_batch: int

    def llama_config(self) -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=self.vocab, hidden_size=self.hidden, intermediate_size=self.intermediate,
                           num_hidden_layers=self.layers, num_attention_heads=self.heads,
                           num_key_value_heads=self.kv_heads, max_position_embeddings=self.seq_len)


GPU_SHAPE = Shape(hidden=2048, intermediate=5632, layers=22, heads=32, kv_heads=4, vocab=32000, seq_len=1024,
                  global_batch=16, micro_batch=8)
TINY_SHAPE = Shape(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, vocab=256, seq_len=64,
                   global_batch=8, micro_batch=8)


def save_random_llama(shape: Shape, directory: Path) -> tuple[int, int]:
    """Build the model with random weights (on the GPU when there is one), save it in bf16; returns
    (all parameters, non-embedding parameters)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(shape.llama_config())
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    model.to(torch.bfloat16).save_pretrained(directory)
    del model
    return total, total - embeddings


class MemoryPeak:
    """Polls nvidia-smi's memory.used (MiB) in a thread; None without nvidia-smi."""

    def __init__(self) -> None:
        self.peak_mib: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> MemoryPeak:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            used = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True).stdout.split()
            if used:
                self.peak_mib = max(self.peak_mib or 0, max(int(value) for value in used))


def step_times(output: str) -> dict[int, float]:
    """Wall time of each progress-log step line of rank 0 (`step N/T loss L`)."""
    times = {}
    for line in output.splitlines():
        found = re.search(r"rank=0 INFO elasticft_trainer: step (\d+)/", line)
        if found:
            times[int(found.group(1))] = log_line_time(line)
    return times


def background_save_seconds(output: str) -> list[float]:
    return [float(s) for s in re.findall(r"written in the background in ([0-9.]+) s", output)]


def blocking_save_seconds(metrics_url: str) -> float | None:
    """Mean of the trainer's elasticft_checkpoint_save_seconds histogram (seconds training waited)."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    values = dict(re.findall(r"^elasticft_checkpoint_save_seconds_(sum|count)\{[^}]*\} ([0-9.e+-]+)$", text, re.M))
    count = float(values.get("count", 0))
    return float(values["sum"]) / count if count else None


def flops_per_token(shape: Shape, non_embedding: int, lora: bool) -> float:
    full = 6 * non_embedding + 12 * shape.layers * shape.hidden * shape.seq_len
    return full * 2 / 3 if lora else full


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def run_mode(work_dir: Path, model_dir: Path, shape: Shape, lora: bool, non_embedding: int) -> dict[str, Any]:
    """One mode: throughput and a checkpoint, then SIGTERM, then a resumed agent's first step."""
    mode = "lora" if lora else "full"
    work_dir.mkdir(parents=True)
    sample_log = work_dir / "samples.log"
    metrics_host, metrics_port = free_loopback_address()
    env = job_environment({
        "job_name": f"gpu-{mode}", "model": model_dir, "seq_len": shape.seq_len, "total_steps": 100000,
        "global_batch_size": shape.global_batch, "micro_batch_size": shape.micro_batch, "learning_rate": 1e-4,
        "precision": "bf16", "lora_rank": 16 if lora else 0, "lora_targets": "q_proj,k_proj,v_proj,o_proj",
        "checkpoint_dir": work_dir / "checkpoints", "checkpoint_interval_steps": WARMUP + MEASURE,
        "checkpoint_keep": 2, "metrics_host": metrics_host, "metrics_port": metrics_port, "sample_log": sample_log,
    })
    job = LocalJob(work_dir, env)
    try:
        with running_store(work_dir / "store.log") as store, MemoryPeak() as memory:
            first = job.start_agent("g1", store.endpoint, f"gpu-{mode}-g1", "1:1")
            wait_until(lambda: bool(background_save_seconds(first.output())) or first.process.poll() is not None,
                     600, f"{mode}: a periodic checkpoint to commit")
            if first.process.poll() is not None:
                raise RuntimeError(f"{mode}: the trainer exited:\n{first.output()[-4000:]}")
            blocking_s = blocking_save_seconds(f"http://{metrics_host}:{metrics_port}/metrics")
            emergency_s, last_trained, stopped = sigterm(first, sample_log)
            second = job.start_agent("g2", store.endpoint, f"gpu-{mode}-g2", "1:1")
            started = time.monotonic()
            trained_before = len(sample_log_steps(sample_log))
            wait_until(lambda: len(sample_log_steps(sample_log)) > trained_before or second.process.poll() is not None,
                     600, f"{mode}: the resumed agent's first step")
            resume_s = time.monotonic() - started
            resumed_from = sample_log_steps(sample_log)[trained_before] - 1
            second.terminate()
            second.wait(300)
    finally:
        job.stop_all()
    times = step_times(first.output())
    tokens_per_s = MEASURE * shape.global_batch * shape.seq_len / (times[WARMUP + MEASURE] - times[WARMUP])
    peak = peak_flops()
    return {
        "mode": mode,
        "samples_per_s": tokens_per_s / shape.seq_len,
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * flops_per_token(shape, non_embedding, lora) / peak if peak else None,
        "peak_gpu_memory_mib": memory.peak_mib,
        "ckpt_save_blocking_s": blocking_s,
        "ckpt_save_total_s": background_save_seconds(first.output())[0],
        "emergency_checkpoint_s": emergency_s,
        "emergency_checkpoint_step": stopped.step,
        "sigterm_stop_reason": stopped.reason,
        "resume_s": resume_s,
        "steps_lost": last_trained - resumed_from,
    }


def sigterm(agent: Agent, sample_log: Path) -> tuple[float, int, RunSummary]:
    """SIGTERM the agent mid-run; (seconds to its exit, last step trained, the trainer's summary)."""
    sigterm_at = time.monotonic()
    agent.terminate()
    agent.wait(600)
    return time.monotonic() - sigterm_at, max(sample_log_steps(sample_log)), agent.summary()


def targets_met(modes: list[dict[str, Any]], on_gpu: bool) -> bool:
    """GPU targets; on the CPU fallback only the GPU-independent one (a SIGTERM stop, 0 steps lost)."""
    safe = all(m["steps_lost"] == 0 and m["sigterm_stop_reason"] == "sigterm" for m in modes)
    if not on_gpu:
        return safe
    full = next(m for m in modes if m["mode"] == "full")
    fast = full["mfu"] is not None and full["mfu"] >= MFU_TARGET
    return safe and fast and all(m["emergency_checkpoint_s"] <= NOTICE_S for m in modes)


def format_table(result: dict[str, Any]) -> str:
    def shown(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        f"{result['device']}: Llama {result['parameters'] / 1e9:.3f} B parameters, random weights "
        f"(seq {result['shape']['seq_len']}, batch {result['shape']['global_batch']})",
        "",
        "| mode | samples/s | tokens/s | MFU | peak GPU MiB | ckpt blocking s | ckpt total s | "
        "emergency ckpt s | resume s | steps lost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result["modes"]:
        lines.append(
            f"| {m['mode']} | {m['samples_per_s']:.2f} | {m['tokens_per_s']:.0f} | {shown(m['mfu'], '.1%')} | "
            f"{shown(m['peak_gpu_memory_mib'], 'd')} | {shown(m['ckpt_save_blocking_s'], '.3f')} | "
            f"{m['ckpt_save_total_s']:.2f} | {m['emergency_checkpoint_s']:.2f} | {m['resume_s']:.2f} | "
            f"{m['steps_lost']} |"
        )
    lines.append("")
    lines.append(f"targets ({'GPU' if result['on_gpu'] else 'CPU fallback: steps lost only'}): "
                 f"{'met' if result['targets_met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/gpu.json"))
    parser.add_argument("--tiny", action="store_true", help="a tiny Llama (the CPU fallback; also on a GPU)")
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    shape = TINY_SHAPE if args.tiny or not on_gpu else GPU_SHAPE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="elasticft-gpu-") as tmp:
        work_dir = Path(tmp)
        total, non_embedding = save_random_llama(shape, work_dir / "model")
        modes = [run_mode(work_dir / mode, work_dir / "model", shape, mode == "lora", non_embedding)
                 for mode in ("lora", "full")]
    result = {
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "on_gpu": on_gpu,
        "backend": "nccl" if on_gpu else "gloo",
        "precision": "bf16",
        "parameters": total,
        "non_embedding_parameters": non_embedding,
        "weights": "random (built locally from a Llama config; nothing downloaded)",
        "shape": shape.__dict__,
        "torch": torch.__version__,
        "modes": modes,
        "targets_met": targets_met(modes, on_gpu),
        "wall_s": time.monotonic() - started,
    }
    table = format_table(result)
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    args.json.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {args.json} (+ .md) in {result['wall_s']:.0f} s")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
