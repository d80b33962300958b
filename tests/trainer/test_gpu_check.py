"""bench/gpu.sh, the one-shot GPU check, run on its CPU fallback path (a tiny Llama, gloo): the same
trainer runs, checkpoints, SIGTERM and resume that the GPU run measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.mark.slow
def test_gpu_check_cpu_fallback_reports_both_modes_and_loses_no_step_on_sigterm(tmp_path: Path) -> None:
    result_path = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(["bash", "bench/gpu.sh", "--tiny", "--json", str(result_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=400)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert result["on_gpu"] is False and result["backend"] == "gloo" and result["targets_met"] is True
    assert [mode["mode"] for mode in result["modes"]] == ["lora", "full"]
    for mode in result["modes"]:
        assert mode["steps_lost"] == 0 and mode["sigterm_stop_reason"] == "sigterm"
        assert mode["tokens_per_s"] > 0 and mode["ckpt_save_total_s"] > 0 and mode["resume_s"] > 0
        assert mode["mfu"] is None  # no GPU, so no peak FLOP/s to divide by
    assert "| lora |" in result_path.with_suffix(".md").read_text()
