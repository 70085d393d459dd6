#!/usr/bin/env bash
# Issue 19's classifier table: MiniLM-L6 fine-tuned on SST-2, validation, batch 1 and 32, dense and
# issue 13's calibration picks (chosen in fp32 on the calibration slice, README "Genuine data"), each
# in fp32, bf16 and int8; every file has its own precision's dense as anchor, and the three
# precisions run back to back so the table can put them against fp32 dense (tools/precision_table.py).
#   bash bench/run_sst2_precisions.sh     # ~5 minutes on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL="${MODEL:-models/minilm-sst2}"
OUT="${OUT:-docs/results/int8}"
VAL=out/data/sst2-validation.tsv
mkdir -p "$OUT" out/data
[[ -f $VAL ]] || .venv/bin/python tools/glue_to_tsv.py ../shared/data/glue/sst2/validation.parquet --out "$VAL"
for batch in 1 32; do
  for precision in fp32 bf16 int8; do
    build/sieve eval --model "$MODEL" --exits "$MODEL/exits-fastbert" --threads 2 --batch-size "$batch" --data "$VAL" \
      --precision "$precision" --json "$OUT/sst2-$precision-b$batch.json" \
      -p spatten:tokens=0.3,start=2 -p ltp:final=0.02 -p exit:tau=0.3 >/dev/null
    build/sieve eval --model "$MODEL" --exits "$MODEL/exits-fastbert-ltp" --threads 2 --batch-size "$batch" --data "$VAL" \
      --precision "$precision" --json "$OUT/sst2-$precision-b$batch-ltp-pyramid.json" -p ltp:final=0.005+exit:tau=0.3 >/dev/null
  done
done
.venv/bin/python tools/precision_table.py "$OUT" | tee "$OUT/sst2-precisions.md"
