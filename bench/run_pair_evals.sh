#!/usr/bin/env bash
# MRPC (the pair path: [CLS] a [SEP] b [SEP], type ids 0/1) with the held-out protocol of
# bench/run_evals.sh: a pruning grid on the calibration slice of MRPC train, the fastest setting per
# family within BUDGET accuracy points picked there, the picks measured once on validation at batch 1
# and 32. No exit classifiers here (the pyramids are SST-2's).
#   MODEL=models/minilm-mrpc bash bench/run_pair_evals.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-models/minilm-mrpc}"
NAME="${NAME:-$(basename "$MODEL")}"
DATA="${DATA:-../shared/data/glue/mrpc}"
BUDGET="${BUDGET:-1.0}"
THREADS="${THREADS:-2}"
OUT="out/eval/$NAME"
mkdir -p "$OUT" out/data
CAL="out/data/$(basename "$DATA")-calibration.tsv"
[[ -f "$CAL" ]] || "$PY" tools/glue_to_tsv.py "$DATA/train.parquet" --calibration-slice --out "$CAL"
EVAL=("$SIEVE" eval --model "$MODEL" --threads "$THREADS")
grid=()
for r in 0.5 0.3 0.2; do grid+=(-p "spatten:tokens=$r" -p "spatten:tokens=$r,start=2"); done
grid+=(-p "spatten:tokens=0.3,heads=0.75" -p spatten:heads=0.75)
for f in 0.005 0.01 0.02 0.04; do grid+=(-p "ltp:final=$f"); done
echo "==> $NAME: calibration grid ($(( ${#grid[@]} / 2 )) settings, batch 1)"
"${EVAL[@]}" --batch-size 1 --data "$CAL" --json "$OUT/calibration.json" "${grid[@]}" >"$OUT/calibration.txt"
"$PY" tools/select_settings.py "$OUT/calibration.json" --budget "$BUDGET" \
  --family "SpAtten tokens=^spatten:tokens=[0-9.]+(,start=[0-9]+)?$" --family "SpAtten tokens+heads=^spatten:tokens=[0-9.]+,heads=" \
  --family "SpAtten heads=^spatten:heads=" --family "LTP=^ltp:" --out "$OUT/picks.json" >"$OUT/picks.txt"
picks=(); while read -r spec; do picks+=(-p "$spec"); done <"$OUT/picks.txt"
for b in 1 32; do
  echo "==> $NAME: validation, batch $b: $(tr '\n' ' ' <"$OUT/picks.txt")"
  "${EVAL[@]}" --batch-size "$b" --data "$DATA/validation.parquet" --json "$OUT/validation-b$b.json" "${picks[@]}" >"$OUT/validation-b$b.txt"
done
"$PY" tools/eval_table.py --picks "$OUT/picks.json" "$OUT/validation-b1.json" --batch32 "$OUT/validation-b32.json" >"$OUT/table.md"
echo "==> $OUT/table.md"
