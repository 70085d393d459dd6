#!/usr/bin/env bash
# Issue 22's table: MiniLM-L6 fine-tuned on SST-2 and pruned in weight tiles
# (tools/train_tile_pruning.py; PRUNED-sNN, default models/minilm-sst2-tiles-sNN), on SST-2 validation at batch 1 and
# 32. Each pruned model runs twice per round, interleaved: with its zero tiles skipped (the
# default, --tile-sparse auto) and with the same weights through dense sgemm (--tile-sparse off),
# each with the dense policy and stacked with SpAtten token pruning; ROUNDS rounds, the table takes
# the median (tools/tile_sparse_table.py). The unpruned model is the accuracy and speed anchor.
#   bash bench/run_tile_sparse.sh        # ~15 minutes on 2 cores at ROUNDS=2
#   PRECISION=bf16 bash bench/run_tile_sparse.sh   # into docs/results/tile-sparse/bf16
#   PRUNED=models/minilm-sst2-t4kd STACK=exit:tau=0.3 OUT=docs/results/tile-sparse/t4kd bash bench/run_tile_sparse.sh
# A model directory holding exits-fastbert/ (tools/train_exits.py on that model) runs with them, so
# an early-exit STACK uses each model's own exits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PRECISION="${PRECISION:-fp32}"  # bf16: the same table in --precision bf16 (sparse bf16 tiles vs oneDNN's bf16)
OUT="${OUT:-docs/results/tile-sparse$([[ $PRECISION == fp32 ]] || echo "/$PRECISION")}"
ROUNDS="${ROUNDS:-2}"
STACK="${STACK:-spatten:tokens=0.3,start=2}"
VAL=out/data/sst2-validation.tsv
mkdir -p "$OUT" out/data
[[ -f $VAL ]] || .venv/bin/python tools/glue_to_tsv.py ../shared/data/glue/sst2/validation.parquet --out "$VAL"
PRUNED="${PRUNED:-models/minilm-sst2-tiles}"
models=(models/minilm-sst2)
for s in 50 70 80 90; do [[ -d $PRUNED-s$s ]] && models+=("$PRUNED-s$s"); done
for round in $(seq 1 "$ROUNDS"); do
  for batch in 1 32; do
    for model in "${models[@]}"; do
      name=$(basename "$model")
      for mode in auto off; do
        [[ $model == models/minilm-sst2 && $mode == off ]] && continue  # nothing to skip there
        exits=(); [[ -d $model/exits-fastbert ]] && exits=(--exits "$model/exits-fastbert")
        build/sieve eval --model "$model" "${exits[@]}" --threads 2 --batch-size "$batch" --data "$VAL" \
          --tile-sparse "$mode" --precision "$PRECISION" -p "$STACK" --json "$OUT/$name-$mode-b$batch-r$round.json" >/dev/null
      done
    done
  done
done
.venv/bin/python tools/tile_sparse_table.py --precision "$PRECISION" "$OUT" | tee "$OUT/table.md"
