#!/usr/bin/env bash
# Issue 15: the two models trained with token pruning in the loop (bench/run_cta_finetune.sh with
# TRAIN_SPATTEN), measured on a calibration set 4x larger than the script's 200 documents: 800
# mixed-label documents from the same calibration slice of SST-2's training split (another seed).
# Validation is not read. Needs build/sieve, .venv and the three e5 models of README's issue 15 runs.
#   bash bench/cta_calibration_800.sh      # ~17 min on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
CAL=out/data/sst2-mixed-calibration800-e5-sst2.tsv
OUT="${OUT:-out/cta/cal800}"
mkdir -p "$OUT" out/data
[[ -f $CAL ]] || "$PY" tools/make_long_inputs.py --data ../shared/data/glue/sst2 --model models/e5-sst2 --minority 0.3-0.45 \
  --split calibration --docs 800 --seed 2 --out "$CAL"
EVAL=(build/sieve eval --threads 2 --batch-size 32 --data "$CAL")
"${EVAL[@]}" --model models/e5-sst2-mixed-dense --json "$OUT/calibration-dense.json" >"$OUT/calibration-dense.txt"
grid=(); for t in tokens=0.2 tokens=0.25 tokens=0.3; do for w in 18 20 22; do grid+=(-p "spatten:$t+cta:w=$w,share=layer"); done; done
"${EVAL[@]}" --model models/e5-sst2-mixed-w20-shared-kd-spatten-tokens0.25 -p cta:w=20,share=layer "${grid[@]}" \
  --json "$OUT/calibration-spatten-in-loop.json" >"$OUT/calibration-spatten-in-loop.txt"
grid=(); for t in tokens=0.1,start=3 tokens=0.1,start=4 tokens=0.2,start=3; do for w in 22 24; do grid+=(-p "spatten:$t+cta:w=$w,share=layer"); done; done
"${EVAL[@]}" --model models/e5-sst2-mixed-w22-shared-kd-spatten-tokens0.1start3 -p cta:w=22,share=layer "${grid[@]}" \
  --json "$OUT/calibration-spatten-late.json" >"$OUT/calibration-spatten-late.txt"
for m in spatten-in-loop spatten-late; do
  "$PY" tools/select_cta.py --dense "$OUT/calibration-dense.json" "$OUT/calibration-$m.json" --budget 1.0 \
    --out "$OUT/picks-$m.json" >"$OUT/picks-$m.txt"
done
