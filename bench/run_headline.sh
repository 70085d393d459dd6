#!/usr/bin/env bash
# Issue 19's headline, in one run: Sieve int8 + the fastest pruning/exit setting within BUDGET
# points against ONNX Runtime fp32 and int8 (quantize_dynamic, per channel) on SST-2 sentences and
# on long documents (256-512 tokens) built from SST-2 sentences, MiniLM-L6 fine-tuned on SST-2.
#   1. `sieve tune --precision int8` picks the setting on the CALIBRATION slice (batch 1) and
#      measures it once on validation (--verify);
#   2. ROUNDS rounds, per batch size: Sieve fp32 dense, Sieve's pick, ORT fp32, ORT int8 on the
#      same validation rows, one after another, so the VM's slow phases hit them alike; the table
#      takes each engine's median over rounds (tools/headline_table.py).
# Needs build/sieve, .venv, models/minilm-sst2 with exits-fastbert (bench/train_models.sh) and the
# peers' Python (bench/run_int8_bench.sh says how to make it).
#   bash bench/run_headline.sh            # ~25 minutes on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
PEERS_PY="${PEERS_PY:-/tmp/venv-peers/bin/python}"
MODEL="${MODEL:-models/minilm-sst2}"
EXITS="${EXITS:-$MODEL/exits-fastbert}"
BUDGET="${BUDGET:-1.0}"
ROUNDS="${ROUNDS:-3}"
SETS="${SETS:-sst2 long}"
BATCHES="${BATCHES:-1 32}"
REUSE_TUNE="${REUSE_TUNE:-0}"  # 1: keep the pick in OUT/SET-tune.json (e.g. to rerun one batch size)
OUT="${OUT:-docs/results/headline}"
THREADS=2
[[ -x build/sieve && -x "$PY" && -x "$PEERS_PY" && -d "$EXITS" ]] || { echo "needs build/sieve, .venv, $PEERS_PY and $EXITS" >&2; exit 1; }
mkdir -p "$OUT" out/data out/onnx
DATA=../shared/data/glue/sst2
[[ -f out/data/sst2-calibration.tsv ]] || "$PY" tools/glue_to_tsv.py "$DATA/train.parquet" --calibration-slice --out out/data/sst2-calibration.tsv
[[ -f out/data/sst2-validation.tsv ]] || "$PY" tools/glue_to_tsv.py "$DATA/validation.parquet" --out out/data/sst2-validation.tsv
name="$(basename "$MODEL")"
[[ -f "out/data/sst2-long-calibration-$name.tsv" ]] || "$PY" tools/make_long_inputs.py --data "$DATA" --split calibration \
  --model "$MODEL" --docs 200 --out "out/data/sst2-long-calibration-$name.tsv"
[[ -f "out/data/sst2-long-validation-$name.tsv" ]] || "$PY" tools/make_long_inputs.py --data "$DATA" --split validation \
  --model "$MODEL" --docs 400 --out "out/data/sst2-long-validation-$name.tsv"
"$PY" tools/export_onnx.py --model "$MODEL" --out "out/onnx/$name.onnx" >&2

for set in $SETS; do
  if [[ $set == sst2 ]]; then
    cal=out/data/sst2-calibration.tsv val=out/data/sst2-validation.tsv
  else
    cal="out/data/sst2-long-calibration-$name.tsv" val="out/data/sst2-long-validation-$name.tsv"
  fi
  if [[ $REUSE_TUNE != 1 || ! -f $OUT/$set-tune.json ]]; then
    echo "==> $set: sieve tune --precision int8 on the calibration slice, then validation once"
    build/sieve tune --model "$MODEL" --exits "$EXITS" --precision int8 --budget "$BUDGET" --threads $THREADS \
      --batch-size 1 --data "$cal" --verify "$val" --json "$OUT/$set-tune.json" >"$OUT/$set-tune.txt"
    tail -3 "$OUT/$set-tune.txt"
  fi
  pick="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["best"]["policy"])' "$OUT/$set-tune.json")"
  for batch in $BATCHES; do
    for round in $(seq "$ROUNDS"); do
      echo "==> $set batch $batch round $round: Sieve fp32 dense, Sieve int8 '$pick', ORT fp32, ORT int8"
      build/sieve eval --model "$MODEL" --threads $THREADS --batch-size "$batch" --data "$val" \
        --json "$OUT/$set-b$batch-r$round-sieve-fp32.json" -p dense >/dev/null
      build/sieve eval --model "$MODEL" --exits "$EXITS" --threads $THREADS --batch-size "$batch" --data "$val" \
        --precision int8 --json "$OUT/$set-b$batch-r$round-sieve-int8.json" -p "$pick" >/dev/null
      "$PEERS_PY" bench/ort_classify_speed.py --model "$MODEL" --onnx "out/onnx/$name.onnx" --data "$val" \
        --batch "$batch" --threads $THREADS --out "$OUT/$set-b$batch-r$round-ort.json" 2>/dev/null
    done
  done
done
"$PY" tools/headline_table.py "$OUT" | tee "$OUT/table.md"
