#!/usr/bin/env bash
# Extractive QA on SQuAD v1.1 dev, split by article (src/eval/squad.h): Block-Skim against dense and
# against token pruning (SpAtten, LTP), every setting in the same run as its dense anchor.
#   train      tools/train_qa.py on the training articles (QA head + Block-Skim predictors jointly;
#              PyPI torch in .venv-train, see scripts/setup-training.sh); QUESTIONS=N trains on the
#              first N questions only, EPOCHS=E, BASE=the checkpoint to start from (default
#              all-MiniLM-L6-v2), TRAIN_ARGS=more train_qa.py options
#   calibrate  every candidate on the calibration articles (thresholds are chosen here only)
#   curve      every candidate on the evaluation articles, batch 1, for the accuracy/speed plot only
#   report     dense and the chosen settings (out/squad/picks.json, or SPEC ...) on the evaluation
#              articles, batch 1 and batch 32
# Results: out/squad/*.json. Usage: bash bench/run_squad.sh train|calibrate|curve|report [SPEC ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-$ROOT/models/minilm-squad}"
DATA="$ROOT/../shared/data/squad/dev-v1.1.json"
OUT="${OUT:-$ROOT/out/squad}"
mkdir -p "$OUT"
# The predictors of a 7k-question MiniLM put P(keep) of most blocks between 0.5 and 0.9 (measured on
# calibration articles), hence the fine steps there.
CANDIDATES=(
  "blockskim:threshold=0.5" "blockskim:threshold=0.55" "blockskim:threshold=0.6" "blockskim:threshold=0.65"
  "blockskim:threshold=0.7" "blockskim:threshold=0.75" "blockskim:threshold=0.8" "blockskim:threshold=0.82"
  "blockskim:threshold=0.84" "blockskim:threshold=0.86" "blockskim:threshold=0.9"
  "blockskim:threshold=0.6,at=ffn" "blockskim:threshold=0.65,at=ffn" "blockskim:threshold=0.7,at=ffn"
  "blockskim:threshold=0.75,at=ffn" "blockskim:threshold=0.8,at=ffn"
  "spatten:tokens=0.9" "spatten:tokens=0.8" "spatten:tokens=0.7" "spatten:tokens=0.5" "spatten:tokens=0.3" "spatten:tokens=0.2"
  "ltp:final=0.001" "ltp:final=0.002" "ltp:final=0.003" "ltp:final=0.005" "ltp:final=0.01" "ltp:final=0.02"
  "blockskim:threshold=0.55+spatten:tokens=0.7" "blockskim:threshold=0.55+spatten:tokens=0.5"
  "blockskim:threshold=0.65+spatten:tokens=0.5"
)
# multilingual-e5-small (12 layers, CANDIDATES=e5): P(keep) of layers 0-5 is ~0.8 for every block (AUC
# ~0.6 on the calibration articles, tools/blockskim_auc.py), layers 8-11 separate (AUC 0.95-0.98), so
# the candidates skim from the late layers only, at lower thresholds.
E5_CANDIDATES=(
  "blockskim:threshold=0.5" "blockskim:threshold=0.6" "blockskim:threshold=0.65" "blockskim:threshold=0.7"
  "blockskim:threshold=0.3,layers=7-10" "blockskim:threshold=0.4,layers=7-10" "blockskim:threshold=0.5,layers=7-10"
  "blockskim:threshold=0.2,layers=8-10" "blockskim:threshold=0.3,layers=8-10" "blockskim:threshold=0.4,layers=8-10"
  "blockskim:threshold=0.5,layers=8-10"
  "blockskim:threshold=0.3,layers=9-10" "blockskim:threshold=0.4,layers=9-10" "blockskim:threshold=0.5,layers=9-10"
  "blockskim:threshold=0.6,layers=9-10"
  "blockskim:threshold=0.3,layers=8-11,at=ffn" "blockskim:threshold=0.4,layers=8-11,at=ffn"
  "blockskim:threshold=0.4,layers=9-11,at=ffn" "blockskim:threshold=0.5,layers=9-11,at=ffn"
  "spatten:tokens=0.9" "spatten:tokens=0.8" "spatten:tokens=0.7" "spatten:tokens=0.5"
  "ltp:final=0.001" "ltp:final=0.002" "ltp:final=0.005" "ltp:final=0.01"
  "blockskim:threshold=0.4,layers=8-10+spatten:tokens=0.8" "blockskim:threshold=0.3,layers=8-10+ltp:final=0.002"
)
[[ "${CANDIDATES_SET:-}" == e5 ]] && CANDIDATES=("${E5_CANDIDATES[@]}")
# Families with no candidate within budget on calibration appear in the report by their nearest
# candidate (the one losing least F1 there), so every family has a row at about the same F1.
NEAREST=("spatten:tokens=0.9")
# One pick per family: the fastest candidate within BUDGET F1 points of dense on the calibration articles.
FAMILIES=(
  "Block-Skim=^blockskim:threshold=[0-9.]+(,layers=[0-9-]+)?$" "Block-Skim before the FFN=^blockskim:.*at=ffn$"
  "SpAtten tokens=^spatten:tokens=[0-9.]+$" "LTP=^ltp:" "Block-Skim + SpAtten=^blockskim.*[+]spatten"
  "Block-Skim + LTP=^blockskim.*[+]ltp"
)
mode="${1:?train, calibrate, curve or report}"
shift
specs=("$@")
case "$mode" in
  train)
    args=(--model "${BASE:-$ROOT/models/all-MiniLM-L6-v2}" --squad "$DATA" --out "$MODEL" --epochs "${EPOCHS:-1}")
    [[ -n "${QUESTIONS:-}" ]] && args+=(--limit "$QUESTIONS")
    read -r -a extra <<< "${TRAIN_ARGS:-}"
    args+=("${extra[@]}")
    # glibc hands the large attention buffers back to the kernel after every step and faults them in
    # again: a third of the time went to the kernel (12-layer model, batch 16); keeping them mapped
    # made the first 50 steps 1.38x faster (359 -> 260 s, same batches).
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 \
      "$ROOT/.venv-train/bin/python" "$ROOT/tools/train_qa.py" "${args[@]}"
    exit 0 ;;
  calibrate) split=calibration; batches=(1); [[ ${#specs[@]} -gt 0 ]] || specs=("${CANDIDATES[@]}") ;;
  curve) split=eval; batches=(1); [[ ${#specs[@]} -gt 0 ]] || specs=("${CANDIDATES[@]}") ;;  # the plot only: no pick is made here
  report)
    split=eval; batches=(1 32)
    if [[ ${#specs[@]} -eq 0 ]]; then
      [[ -f "$OUT/picks.json" ]] || { echo "report: run calibrate first (or name the specs)" >&2; exit 2; }
      mapfile -t specs < <(python3 -c 'import json,sys; [print(p["policy"]) for p in json.load(open(sys.argv[1]))["picks"]]' "$OUT/picks.json")
      specs+=("${NEAREST[@]}")
    fi ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
args=()
for s in "${specs[@]}"; do args+=(-p "$s"); done
for b in "${batches[@]}"; do
  "$SIEVE" eval --model "$MODEL" --data "$DATA" --split "$split" --threads 2 --batch-size "$b" "${args[@]}" \
    --json "$OUT/${mode}_b${b}.json"
done
if [[ "$mode" == calibrate ]]; then
  fam=()
  for f in "${FAMILIES[@]}"; do fam+=(--family "$f"); done
  python3 "$ROOT/tools/select_settings.py" "$OUT/calibrate_b1.json" --metric f1 --budget "${BUDGET:-1.0}" "${fam[@]}" \
    --out "$OUT/picks.json"
fi
