#!/usr/bin/env bash
# The README's embedding tables (issue 14), with the held-out protocol:
#   1. a grid of pruning settings, both poolings of pruned tokens, measured on CALIBRATION data:
#      a slice of STS-B train (tools/glue_data.py split_train) and the even articles of WikiText-2
#      (tools/make_long_documents.py);
#   2. tools/select_settings.py picks per family the fastest setting (batch 32) within the budget:
#      STS_BUDGET Spearman points, LONG_BUDGET recall@1 points;
#   3. only the picks are measured on VALIDATION (STS-B validation, odd WikiText-2 articles), once,
#      at batch 32 and batch 1; then chunking vs truncation on the long set.
# Every file measures its settings against dense in the same run (interleaved batch by batch).
#   bash bench/run_embedding_evals.sh            (MODEL=models/all-MiniLM-L6-v2 NAME=minilm)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-models/all-MiniLM-L6-v2}"
NAME="${NAME:-minilm}"
THREADS="${THREADS:-2}"
STS_BUDGET="${STS_BUDGET:-0.5}"
LONG_BUDGET="${LONG_BUDGET:-1.0}"
SETS="${SETS:-stsb long}"
OUT="out/embed-eval/$NAME"
[[ -x "$SIEVE" && -x "$PY" && -d "$MODEL" ]] || { echo "needs build/sieve, .venv and $MODEL" >&2; exit 1; }
mkdir -p "$OUT" out/data

STS="../shared/data/stsb"
[[ -f out/data/stsb-calibration.tsv ]] || "$PY" tools/glue_to_tsv.py "$STS/train.parquet" --calibration-slice --out out/data/stsb-calibration.tsv
[[ -f out/data/stsb-validation.tsv ]] || "$PY" tools/glue_to_tsv.py "$STS/validation.parquet" --out out/data/stsb-validation.tsv
for split in calibration validation; do
  [[ -f "out/data/wiki-long-$split.tsv" ]] || "$PY" tools/make_long_documents.py --split "$split" --model "$MODEL" --out "out/data/wiki-long-$split.tsv"
done

EVAL=("$SIEVE" eval --model "$MODEL" --threads "$THREADS" --pool both)
FAMILIES=(
  --family "SpAtten tokens=^spatten:tokens=[0-9.]+(,start=[0-9]+)?( |$)"
  --family "SpAtten tokens+heads=^spatten:tokens=[0-9.]+,heads="
  --family "SpAtten heads=^spatten:heads=[0-9.]+( |$)"
  --family "LTP=^ltp:final="
)
for set in $SETS; do
  if [[ $set == stsb ]]; then
    cal=out/data/stsb-calibration.tsv val=out/data/stsb-validation.tsv metric=spearman budget="$STS_BUDGET" length=()
    grid=(spatten:tokens=0.7 spatten:tokens=0.5 spatten:tokens=0.3 spatten:tokens=0.5,start=2 spatten:tokens=0.3,start=3
          spatten:tokens=0.5,heads=0.75 spatten:heads=0.75 spatten:heads=0.5
          ltp:final=0.005 ltp:final=0.01 ltp:final=0.02 ltp:final=0.04)
  else
    # The long documents are 2 x 256-400 tokens; 512 keeps each half whole.
    cal=out/data/wiki-long-calibration.tsv val=out/data/wiki-long-validation.tsv metric=recall_at_1 budget="$LONG_BUDGET" length=(--max-length 512)
    grid=(spatten:tokens=0.5 spatten:tokens=0.3 spatten:tokens=0.2 spatten:tokens=0.3,start=2 spatten:tokens=0.2,start=2
          spatten:tokens=0.3,heads=0.75 spatten:heads=0.75
          ltp:final=0.001 ltp:final=0.002 ltp:final=0.004 ltp:final=0.008)
  fi
  specs=(); for g in "${grid[@]}"; do specs+=(-p "$g"); done
  echo "==> $set: calibration grid (${#grid[@]} policies x 2 poolings, batch 32)"
  "${EVAL[@]}" "${length[@]}" --data "$cal" --batch-size 32 "${specs[@]}" --json "$OUT/$set-calibration.json" >"$OUT/$set-calibration.txt"
  "$PY" tools/select_settings.py "$OUT/$set-calibration.json" --metric "$metric" --budget "$budget" "${FAMILIES[@]}" \
    --out "$OUT/$set-picks.json" >"$OUT/$set-picks.txt"
  picks=(); while read -r label; do picks+=(-p "${label%% *}"); done <"$OUT/$set-picks.txt"
  echo "==> $set: validation, picks only: $(tr '\n' ' ' <"$OUT/$set-picks.txt")"
  for b in 32 1; do
    "${EVAL[@]}" "${length[@]}" --data "$val" --batch-size "$b" "${picks[@]}" --json "$OUT/$set-validation-b$b.json" >"$OUT/$set-validation-b$b.txt"
  done
done
if [[ " $SETS " == *" stsb "* ]]; then
  # Not skipping work but the same budget: the layers' GEMMs in bf16 (--precision bf16), dense and
  # with the STS-B picks, against fp32 dense; checked on calibration, then validation.
  stsb_picks=(); while read -r label; do stsb_picks+=(-p "${label%% *}"); done <"$OUT/stsb-picks.txt"
  echo "==> stsb: bf16 GEMMs, calibration then validation"
  "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --precision bf16 --data out/data/stsb-calibration.tsv --batch-size 32 \
    "${stsb_picks[@]}" --json "$OUT/stsb-bf16-calibration.json" >"$OUT/stsb-bf16-calibration.txt"
  for b in 32 1; do
    "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --precision bf16 --data out/data/stsb-validation.tsv --batch-size "$b" \
      "${stsb_picks[@]}" --json "$OUT/stsb-bf16-validation-b$b.json" >"$OUT/stsb-bf16-validation-b$b.txt"
  done
fi
if [[ " $SETS " == *" long "* ]]; then
  # The long picks with bf16 GEMMs (which pay at 512 tokens), against fp32 dense: calibration, then
  # validation at batch 32 and 1.
  long_picks=(); while read -r label; do long_picks+=(-p "${label%% *}"); done <"$OUT/long-picks.txt"
  echo "==> long: bf16 GEMMs, calibration then validation"
  "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --precision bf16 --max-length 512 --data out/data/wiki-long-calibration.tsv \
    --batch-size 32 "${long_picks[@]}" --json "$OUT/long-bf16-calibration.json" >"$OUT/long-bf16-calibration.txt"
  for b in 32 1; do
    "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --precision bf16 --max-length 512 --data out/data/wiki-long-validation.tsv \
      --batch-size "$b" "${long_picks[@]}" --json "$OUT/long-bf16-validation-b$b.json" >"$OUT/long-bf16-validation-b$b.txt"
  done
  echo "==> long: chunking vs truncation at the model's own length limit, validation"
  "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --data out/data/wiki-long-validation.tsv --batch-size 32 --long both \
    "${picks[@]}" --json "$OUT/long-chunk-validation.json" >"$OUT/long-chunk-validation.txt"
  # The whole document in one sequence (512 tokens), for comparison with the windows above.
  "$SIEVE" eval --model "$MODEL" --threads "$THREADS" --data out/data/wiki-long-validation.tsv --batch-size 32 --max-length 512 \
    --json "$OUT/long-512-validation.json" >"$OUT/long-512-validation.txt"
fi
"$PY" tools/embedding_table.py "$OUT" --plot "docs/embed-tradeoff-$NAME.png" >"$OUT/tables.md"
echo "wrote $OUT/tables.md"
