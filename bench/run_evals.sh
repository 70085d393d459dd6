#!/usr/bin/env bash
# The README's accuracy / GFLOPs / wall-clock tables on genuine GLUE, with the held-out protocol:
#   1. every setting of a grid is measured on the CALIBRATION slice (held-out rows of the training
#      split, tools/glue_data.py split_train; long documents built from that slice);
#   2. tools/select_settings.py picks, per family (SpAtten tokens, LTP, early exit, pyramids...), the
#      fastest setting within BUDGET points of dense on the calibration slice;
#   3. only those picks are measured on VALIDATION, once, at batch 1 and at batch 32.
# Every file measures its settings against dense in the same run (interleaved batch by batch).
#   MODEL=models/minilm-sst2 NAME=minilm bash bench/run_evals.sh
# Needs build/sieve, .venv, MODEL (tools/finetune_classifier.py) and MODEL/exits-fastbert
# (tools/train_exits.py); MODEL/exits-fastbert-ltp (exits trained under LTP pruning) when present is
# used for the LTP pyramid. Writes out/eval/NAME/*.json and *.md, docs/NAME-tradeoff-*.png.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-models/minilm-sst2}"
NAME="${NAME:-$(basename "$MODEL")}"
DATA="${DATA:-../shared/data/glue/sst2}"
BUDGET="${BUDGET:-1.0}"
THREADS="${THREADS:-2}"
SETS="${SETS:-sst2 long}"
OUT="out/eval/$NAME"
[[ -x "$SIEVE" && -x "$PY" && -d "$MODEL" ]] || { echo "needs build/sieve, .venv and $MODEL" >&2; exit 1; }
mkdir -p "$OUT" out/data docs
EXITS="$MODEL/exits-fastbert"
LTP_EXITS="$MODEL/exits-fastbert-ltp"; [[ -d "$LTP_EXITS" ]] || LTP_EXITS="$EXITS"
LAYERS="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$MODEL/config.json")"

# The data: calibration slice and validation, short sentences and long documents (256-512 tokens).
CAL_SHORT="out/data/$(basename "$DATA")-calibration.tsv"
[[ -f "$CAL_SHORT" ]] || "$PY" tools/glue_to_tsv.py "$DATA/train.parquet" --calibration-slice --out "$CAL_SHORT"
# LONG_MINORITY=A-B: the "long" set's documents mix labels (A-B of the tokens from the minority label,
# tools/make_long_inputs.py --minority); single-label documents are right for every setting, so a
# calibration slice of them cannot tell settings apart. Its files and results are named "long-mixed".
LONG_MINORITY="${LONG_MINORITY:-0}"
LONG_SET=long; [[ $LONG_MINORITY == 0 ]] || LONG_SET=long-mixed
CAL_LONG="out/data/$(basename "$DATA")-$LONG_SET-calibration-$NAME.tsv"
VAL_LONG="out/data/$(basename "$DATA")-$LONG_SET-validation-$NAME.tsv"
if [[ " $SETS " == *" long "* ]]; then
  [[ -f "$CAL_LONG" ]] || "$PY" tools/make_long_inputs.py --data "$DATA" --split calibration --model "$MODEL" \
    --docs "${LONG_DOCS:-200}" --minority "$LONG_MINORITY" --out "$CAL_LONG"
  [[ -f "$VAL_LONG" ]] || "$PY" tools/make_long_inputs.py --data "$DATA" --split validation --model "$MODEL" \
    --docs 400 --minority "$LONG_MINORITY" --out "$VAL_LONG"
fi

EVAL=("$SIEVE" eval --model "$MODEL" --threads "$THREADS")
FAMILIES=(
  --family "SpAtten tokens=^spatten:(tokens=[0-9.]+|token_ratios=[0-9./]+)(,start=[0-9]+)?(,at=next)?$"
  --family "SpAtten tokens+heads=^spatten:tokens=[0-9.]+,heads="
  --family "SpAtten heads=^spatten:heads=[0-9.]+$"
  --family "LTP=^ltp:(final|thresholds)=[0-9./e-]+(,at=next)?$"
  --family "early exit=^exit:tau="
  --family "SpAtten pyramid=^spatten:.*\+exit"
  --family "LTP pyramid=^ltp:.*\+exit"
)

for set in $SETS; do
  if [[ $set == sst2 ]]; then
    cal="$CAL_SHORT"; val="$DATA/validation.parquet"
    ratios=(0.5 0.3 0.2); ltp_finals=(0.005 0.01 0.02); pyr_ratios=(0.3 0.2); pyr_ltp=(0.005 0.01)
  else
    cal="$CAL_LONG"; val="$VAL_LONG"; set="$LONG_SET"
    ratios=(0.3 0.15 0.1); ltp_finals=(0.002 0.004 0.006); pyr_ratios=(0.15 0.1); pyr_ltp=(0.002 0.004)
  fi
  # u = normalized entropy of the exit's prediction; with 2 labels u <= 0.5 means p >= 0.89, and the
  # fine-tuned SST-2 exits are confident early: taus above 0.5 exit almost everything at layer 1.
  read -r -a taus <<<"${TAUS:-0.05 0.1 0.2 0.3 0.5}"  # TAUS="..." to widen (12-layer exits are less sure)
  grid=()
  for r in "${ratios[@]}"; do grid+=(-p "spatten:tokens=$r" -p "spatten:tokens=$r,start=2"); done
  grid+=(-p "spatten:tokens=${ratios[1]},heads=0.75" -p spatten:heads=0.75)
  for f in "${ltp_finals[@]}"; do grid+=(-p "ltp:final=$f"); done
  grid+=(-p "ltp:final=${ltp_finals[1]},at=next")
  # Training-free LTP thresholds placed at target keep ratios, on the calibration slice itself.
  for keep in 0.7 0.5; do
    grid+=(-p "$("$SIEVE" calibrate --model "$MODEL" --data "$cal" --keep "$keep" --limit 500 --threads "$THREADS" 2>/dev/null)")
  done
  exit_grid=()
  for t in "${taus[@]}"; do
    exit_grid+=(-p "exit:tau=$t")
    # SpAtten from layer 1 already costs 0.5-1.6 points on SST-2's calibration slice; the
    # late-starting cascade (start=2) is the pyramid's other shape.
    for r in "${pyr_ratios[@]}"; do exit_grid+=(-p "spatten:tokens=$r+exit:tau=$t" -p "spatten:tokens=$r,start=2+exit:tau=$t"); done
  done
  ltp_pyramid=()
  for t in "${taus[@]}"; do for f in "${pyr_ltp[@]}"; do ltp_pyramid+=(-p "ltp:final=$f+exit:tau=$t"); done; done

  echo "==> $NAME $set: calibration grid ($(( (${#grid[@]} + ${#exit_grid[@]} + ${#ltp_pyramid[@]}) / 2 )) settings)"
  # REUSE="pruning exit ltp-pyramid" keeps those calibration files from an earlier run of the same
  # model (e.g. after retraining only the exits, the pruning grid needs no rerun).
  calibrate_part() {  # PART, then eval arguments
    local part=$1; shift
    if [[ " ${REUSE:-} " == *" $part "* && -f "$OUT/$set-calibration-$part.json" ]]; then
      echo "    reusing $OUT/$set-calibration-$part.json"; return
    fi
    "${EVAL[@]}" --batch-size 1 --data "$cal" --json "$OUT/$set-calibration-$part.json" "$@" >"$OUT/$set-calibration-$part.txt"
  }
  calibrate_part pruning "${grid[@]}"
  calibrate_part exit --exits "$EXITS" "${exit_grid[@]}"
  calibrate_part ltp-pyramid --exits "$LTP_EXITS" "${ltp_pyramid[@]}"

  "$PY" tools/select_settings.py "$OUT/$set-calibration-pruning.json" "$OUT/$set-calibration-exit.json" \
    "$OUT/$set-calibration-ltp-pyramid.json" --budget "$BUDGET" "${FAMILIES[@]}" --out "$OUT/$set-picks.json" >"$OUT/$set-picks.txt"
  picks=() ltp_picks=()
  while read -r spec; do
    if [[ $spec == ltp:*+exit:* ]]; then ltp_picks+=(-p "$spec"); else picks+=(-p "$spec"); fi
  done <"$OUT/$set-picks.txt"

  for batch in 1 32; do
    echo "==> $NAME $set: validation, batch $batch, the calibration picks"
    "${EVAL[@]}" --batch-size "$batch" --data "$val" --exits "$EXITS" --json "$OUT/$set-validation-b$batch.json" "${picks[@]}" >"$OUT/$set-validation-b$batch.txt"
    if ((${#ltp_picks[@]})); then
      "${EVAL[@]}" --batch-size "$batch" --data "$val" --exits "$LTP_EXITS" --json "$OUT/$set-validation-ltp-pyramid-b$batch.json" \
        "${ltp_picks[@]}" >"$OUT/$set-validation-ltp-pyramid-b$batch.txt"
    fi
  done
  "$PY" tools/eval_table.py --picks "$OUT/$set-picks.json" "$OUT/$set-validation-b1.json" \
    $( [[ -f "$OUT/$set-validation-ltp-pyramid-b1.json" ]] && echo "$OUT/$set-validation-ltp-pyramid-b1.json" ) \
    --batch32 "$OUT/$set-validation-b32.json" \
    $( [[ -f "$OUT/$set-validation-ltp-pyramid-b32.json" ]] && echo "$OUT/$set-validation-ltp-pyramid-b32.json" ) >"$OUT/$set-table.md"
  "$PY" tools/plot_tradeoff.py "$OUT/$set-calibration-pruning.json" "$OUT/$set-calibration-exit.json" "$OUT/$set-calibration-ltp-pyramid.json" \
    --group "LTP pyramid=^ltp.*\+exit" --group "SpAtten pyramid=^spatten.*\+exit" --group "early exit=^exit:" \
    --group "LTP alone=^ltp:" --group "SpAtten alone=^spatten:tokens=[0-9.]+$" \
    --title "$NAME $set calibration slice: accuracy vs speedup (batch 1, $THREADS threads)" --out "docs/$NAME-tradeoff-$set.png"
done
echo "==> tables in $OUT/*-table.md"
