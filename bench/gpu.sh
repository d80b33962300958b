#!/usr/bin/env bash
# One-shot GPU check of the trainer (see bench/gpu.py for what it measures and how):
#   bash bench/gpu.sh                  # on a CUDA machine: ~1.1 B Llama, LoRA then full fine-tune, nccl + bf16
#   bash bench/gpu.sh --tiny --json F  # the CPU fallback (also what runs without a GPU): a tiny Llama
# Uses the Python on PATH (or $PYTHON) with torch, transformers, peft and prometheus-client, runs the
# trainer from this checkout, downloads nothing; writes bench/results/gpu.json and gpu.md by default.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
"$PYTHON" - <<'PY'
import importlib.util, sys
missing = [name for name in ("torch", "transformers", "peft", "prometheus_client") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"bench/gpu.sh: this Python lacks {', '.join(missing)}")
PY
export PYTHONPATH="$PWD/trainer:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" bench/gpu.py "$@"
