#!/usr/bin/env bash
# Issue 15: the CTA CPU kernel against dense attention on the same inputs, per head (the paper's
# reading) and share=layer (one clustering and two centroid GEMMs per layer), at CTA-1 (w = 24) and
# CTA-2-like (w = 32) compression, alone and composed with SpAtten token pruning.
#   bash bench/run_cta_kernel.sh            # after bench/run_cta_finetune.sh made the documents
# Inputs: the 200 mixed-label calibration documents (256-512 tokens; speed only, so no validation
# data is read); the model run is the dense reference (speed does not depend on the weights).
# One `sieve eval` per batch size: the dense row is the anchor measured in the same run, and the
# attention-block column times QKV .. Add & LayerNorm of every layer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL="${MODEL:-models/minilm-sst2-mixed-dense}"
DATA="${DATA:-out/data/sst2-mixed-calibration-minilm-sst2.tsv}"
THREADS="${THREADS:-2}"
OUT="${OUT:-docs/results/cta-kernel}"
mkdir -p "$OUT"
specs=()
for w in 24 32; do specs+=(-p "cta:w=$w" -p "cta:w=$w,share=layer"); done
specs+=(-p "spatten:tokens=0.5" -p "spatten:tokens=0.5+cta:w=24,share=layer" -p "spatten:tokens=0.3+cta:w=24,share=layer")
for b in 1 32; do
  echo "==> batch $b"
  build/sieve eval --model "$MODEL" --data "$DATA" --threads "$THREADS" --batch-size "$b" "${specs[@]}" \
    --json "$OUT/kernel-b$b.json" | tee "$OUT/kernel-b$b.txt"
done
{ echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"; echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) vCPUs"; } >"$OUT/machine.txt"
"$ROOT/.venv/bin/python" tools/plot_cta_kernel.py "$OUT" --out docs/cta-kernel.png
