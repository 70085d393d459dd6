#!/usr/bin/env bash
# Issue 15: does more training data close the gap of CTA composed with token pruning? The model
# trained with both in the loop (e5-sst2-mixed-w20-shared-kd-spatten-tokens0.25, from
# bench/run_cta_finetune.sh with TRAIN_SPATTEN=tokens=0.25) trained one more epoch on 2,400 new
# mixed-label documents (fit rows of SST-2's training split, another seed), distilled from the same
# dense reference, then measured on the 800-document calibration set (bench/cta_calibration_800.sh).
# The control: the dense reference trained one more epoch on the same 2,400 documents, without CTA
# (as it was trained), so that "within N points of dense" compares models that saw the same data.
# Validation, once: the calibration pick on both models, beside both dense models, batch 1 and 32.
#   bash bench/cta_more_documents.sh        # ~28 + ~45 min training, ~15 min evaluation on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
TRAIN_PY="${TRAIN_PY:-$ROOT/.venv-train/bin/python}"
OUT="${OUT:-out/cta/more-documents}"
FROM=models/e5-sst2-mixed-w20-shared-kd-spatten-tokens0.25
MODEL="$FROM-more"
TRAIN=out/data/sst2-mixed-train2400s2-e5-sst2.tsv
CAL=out/data/sst2-mixed-calibration800-e5-sst2.tsv
mkdir -p "$OUT" out/data
make_docs() { "$PY" tools/make_long_inputs.py --data ../shared/data/glue/sst2 --model models/e5-sst2 --minority 0.3-0.45 "$@"; }
[[ -f $TRAIN ]] || make_docs --split train --docs 2400 --seed 2 --out "$TRAIN"
[[ -f $CAL ]] || make_docs --split calibration --docs 800 --seed 2 --out "$CAL"
if [[ ! -f $MODEL/cta.json ]]; then
  MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 "$TRAIN_PY" tools/finetune_cta.py --model "$FROM" \
    --teacher models/e5-sst2-mixed-dense --cta w=20,l=6,seed=0,share=layer --spatten tokens=0.25 --train "$TRAIN" \
    --calibration out/data/sst2-mixed-calibration-e5-sst2.tsv --out "$MODEL" --lr 3e-5 --threads 2 --epochs 1 \
    --distill-alpha 0.9 --distill-hidden 3 >"$OUT/finetune.log" 2>&1
fi
CONTROL=models/e5-sst2-mixed-dense-more
if [[ ! -f $CONTROL/cta.json ]]; then
  MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 "$TRAIN_PY" tools/finetune_cta.py \
    --model models/e5-sst2-mixed-dense --cta none --train "$TRAIN" --calibration out/data/sst2-mixed-calibration-e5-sst2.tsv \
    --out "$CONTROL" --lr 3e-5 --threads 2 --epochs 1 >"$OUT/finetune-dense-more.log" 2>&1
fi
EVAL=(build/sieve eval --threads 2 --batch-size 32 --data "$CAL")
[[ -f $OUT/calibration-dense.json ]] || "${EVAL[@]}" --model models/e5-sst2-mixed-dense --json "$OUT/calibration-dense.json" \
  >"$OUT/calibration-dense.txt"
grid=(); for t in tokens=0.2 tokens=0.25 tokens=0.3; do for w in 18 20 22; do grid+=(-p "spatten:$t+cta:w=$w,share=layer"); done; done
[[ -f $OUT/calibration-more.json ]] || "${EVAL[@]}" --model "$MODEL" -p cta:w=20,share=layer "${grid[@]}" \
  --json "$OUT/calibration-more.json" >"$OUT/calibration-more.txt"
[[ -f $OUT/calibration-dense-more.json ]] || "${EVAL[@]}" --model "$CONTROL" --json "$OUT/calibration-dense-more.json" \
  >"$OUT/calibration-dense-more.txt"
"$PY" tools/select_cta.py --dense "$OUT/calibration-dense.json" "$OUT/calibration-more.json" --budget 1.0 \
  --out "$OUT/picks.json" >"$OUT/picks.txt"
picks=(); while read -r spec; do picks+=(-p "$spec"); done <"$OUT/picks.txt"
VAL=out/data/sst2-mixed-validation-e5-sst2.tsv
for b in 1 32; do
  for m in models/e5-sst2-mixed-dense "$CONTROL" "$MODEL"; do
    build/sieve eval --threads 2 --batch-size "$b" --data "$VAL" --model "$m" "${picks[@]}" \
      --json "$OUT/validation-$(basename "$m")-b$b.json" >"$OUT/validation-$(basename "$m")-b$b.txt"
  done
done
{ echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"; echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) vCPUs"; } >"$OUT/machine.txt"
