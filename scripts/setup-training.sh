#!/usr/bin/env bash
# Optional, for the training tools only (fine-tuning, exits, learned LTP): .venv-train, a venv with
# PyPI's torch, transformers, pyarrow and safetensors. Not part of the README's setup path: PyPI's
# torch is a ~3 GB download (its CUDA libraries come along even on a CPU machine). It pays for itself
# here: one MiniLM-L6 training step (32 x 15 tokens, 1 thread) takes 3.0 s with PyPI torch 2.15 vs
# 6.7 s with Debian's torch 1.13 on OpenBLAS (and 70 s on Debian's reference BLAS), measured
# 2026-12-01 on the 2-core project machine (README, "Training").
#   bash scripts/setup-training.sh && .venv-train/bin/python tools/finetune_classifier.py ...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-train"
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, transformers, pyarrow, safetensors" 2>/dev/null; then
  echo "==> .venv-train already works ($("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
  exit 0
fi
echo "==> .venv-train: PyPI torch + transformers 4.40.2 (a few minutes; ~3 GB)"
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch>=2.4" transformers==4.40.2 pyarrow safetensors
echo "==> .venv-train ready ($("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
