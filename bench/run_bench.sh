#!/usr/bin/env bash
# Dense latency, Sieve (fp32, and bf16 GEMMs) vs ONNX Runtime vs PyTorch eager, in one run per model on the same inputs:
# all-MiniLM-L6-v2 and a BERT-base-sized model with random weights (12 layers, 768 hidden, 12 heads),
# sequence lengths 32/128/384, batch 1 and 8, 2 threads. Writes out/bench/<model>.json.
# Run it on an otherwise idle machine: the ratio column is what to read, the absolute times move.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SIEVE="$ROOT/build/sieve"
[[ -x "$SIEVE" && -x "$PY" ]] || { echo "run scripts/setup.sh first" >&2; exit 1; }
REPEATS="${REPEATS:-20}"

"$PY" tools/make_random_bert.py --out models/bert-base-random
mkdir -p out/bench
for model in all-MiniLM-L6-v2 bert-base-random; do
  "$SIEVE" bench --model "models/$model" --seq 32,128,384 --batch 1,8 --threads 2 --precision "${PRECISION:-fp32,bf16}" \
    --repeats "$REPEATS" --baselines ort,torch --json "out/bench/$model.json"
done
