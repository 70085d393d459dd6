#!/usr/bin/env bash
# Extractive QA on SQuAD v1.1 dev, split by article (src/eval/squad.h): Block-Skim against dense and
# against token pruning (SpAtten, LTP), every setting in the same run as its dense anchor.
#   train      tools/train_qa.py on the training articles (QA head + Block-Skim predictors jointly;
#              PyPI torch in .venv-train, see scripts/setup-training.sh); QUESTIONS=N trains on the
#              first N questions only, EPOCHS=E
#   calibrate  every candidate on the calibration articles (thresholds are chosen here only)
#   report     dense and the chosen settings on the evaluation articles, batch 1 and batch 32
# Results: out/squad/*.json. Usage: bash bench/run_squad.sh train|calibrate|report [SPEC ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-$ROOT/models/minilm-squad}"
DATA="$ROOT/../shared/data/squad/dev-v1.1.json"
OUT="$ROOT/out/squad"
mkdir -p "$OUT"
CANDIDATES=(
  "blockskim:threshold=0.3" "blockskim:threshold=0.5" "blockskim:threshold=0.7" "blockskim:threshold=0.9"
  "blockskim:threshold=0.5,at=ffn"
  "spatten:tokens=0.5" "spatten:tokens=0.3" "spatten:tokens=0.2"
  "ltp:final=0.005" "ltp:final=0.01" "ltp:final=0.02"
)
mode="${1:?train, calibrate or report}"
shift
specs=("$@")
case "$mode" in
  train)
    args=(--model "$ROOT/models/all-MiniLM-L6-v2" --squad "$DATA" --out "$MODEL" --epochs "${EPOCHS:-1}")
    [[ -n "${QUESTIONS:-}" ]] && args+=(--limit "$QUESTIONS")
    "$ROOT/.venv-train/bin/python" "$ROOT/tools/train_qa.py" "${args[@]}"
    exit 0 ;;
  calibrate) split=calibration; batches=(1); [[ ${#specs[@]} -gt 0 ]] || specs=("${CANDIDATES[@]}") ;;
  report) split=eval; batches=(1 32); [[ ${#specs[@]} -gt 0 ]] || { echo "report needs the chosen specs" >&2; exit 2; } ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
args=()
for s in "${specs[@]}"; do args+=(-p "$s"); done
for b in "${batches[@]}"; do
  "$SIEVE" eval --model "$MODEL" --data "$DATA" --split "$split" --threads 2 --batch-size "$b" "${args[@]}" \
    --json "$OUT/${mode}_b${b}.json"
done
