#!/usr/bin/env bash
# The accuracy / GFLOPs / wall-clock tables of the README, on the fine-tuned MiniLM:
# SST-2 validation (872 sentences) and the long-input set (400 documents of 260-512 tokens), batch 1,
# 2 threads, each file's settings measured against dense in the same run (interleaved batch by batch).
# Needs models/minilm-sst2 (tools/finetune_classifier.py) with exits trained by tools/train_exits.py:
#   models/minilm-sst2/exits-<variant>       dense-trained exits (early exit alone)
#   models/minilm-sst2/exits-<variant>-ltp   exits trained on LTP-pruned activations (Magic Pyramid step 4)
# Writes out/eval/*.json, then tables (out/eval/*.md) and plots (docs/*.png).
# Run it on an otherwise idle machine: speedups are ratios within one run, but noise still widens them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SIEVE="$ROOT/build/sieve"
MODEL="${MODEL:-models/minilm-sst2}"
VARIANT="${EXIT_VARIANT:-fastbert}"
DATA="${DATA:-../shared/data/glue/sst2}"
SST2="$DATA/validation.parquet"
LONG="out/data/sst2-long.tsv"
[[ -x "$SIEVE" && -x "$PY" && -d "$MODEL" ]] || { echo "needs build/sieve, .venv and $MODEL" >&2; exit 1; }
[[ -f "$LONG" ]] || "$PY" tools/make_long_inputs.py --data "$DATA" --out "$LONG"
mkdir -p out/eval docs
EVAL=("$SIEVE" eval --model "$MODEL" --threads 2 --batch-size 1)

# Training-free LTP thresholds calibrated on the training split for a target keep ratio.
CALIBRATED="$("$SIEVE" calibrate --model "$MODEL" --data "$DATA/train.parquet" --keep 0.6 --limit 1000 --threads 2)"

# Token and head pruning (issue 3).
"${EVAL[@]}" --data "$SST2" --json out/eval/sst2-pruning.json \
  -p spatten:tokens=0.7 -p spatten:tokens=0.5 -p spatten:tokens=0.3 -p spatten:tokens=0.3,at=next \
  -p spatten:heads=0.75 -p spatten:heads=0.5 -p spatten:heads=0.33 \
  -p ltp:final=0.005 -p ltp:final=0.01 -p ltp:final=0.02 -p ltp:final=0.01,at=next -p "$CALIBRATED" \
  -p spatten:token_ratios=0.7/0.5/0.4/0.3/0.2/0.2 -p spatten:token_ratios=0.5/0.35/0.25/0.2/0.15/0.1 \
  -p spatten:tokens=0.3,heads=0.75 -p ltp:final=0.01+spatten:heads=0.75
"${EVAL[@]}" --data "$LONG" --json out/eval/long-pruning.json \
  -p spatten:tokens=0.5 -p spatten:tokens=0.3 -p spatten:tokens=0.15 -p spatten:tokens=0.15,at=next \
  -p spatten:heads=0.75 -p spatten:heads=0.5 -p spatten:heads=0.33 \
  -p ltp:final=0.001 -p ltp:final=0.002 -p ltp:final=0.004 -p ltp:final=0.002,at=next \
  -p spatten:token_ratios=0.5/0.3/0.2/0.15/0.1/0.1 -p ltp:thresholds=0.002/0.003/0.004/0.004/0.004/0.004 \
  -p spatten:tokens=0.15,heads=0.75 -p ltp:final=0.002+spatten:heads=0.75

# Early exit, token pruning and both (issue 4): the issue's tau values plus 0.9, 0.92, 0.95. The LTP
# pyramid uses the exits trained under LTP pruning (Magic Pyramid); the SpAtten pyramid the dense ones.
TAUS=(0.1 0.3 0.5 0.8 0.9 0.92 0.95)
for set in sst2 long; do
  if [[ $set == sst2 ]]; then data="$SST2"; ltp="ltp:final=0.01"; spatten="spatten:tokens=0.2"
  else data="$LONG"; ltp="ltp:final=0.002"; spatten="spatten:tokens=0.15"; fi
  exit_specs=() pyramid_specs=() spatten_pyramid_specs=()
  for tau in "${TAUS[@]}"; do
    exit_specs+=(-p "exit:tau=$tau")
    pyramid_specs+=(-p "$ltp+exit:tau=$tau")
    spatten_pyramid_specs+=(-p "$spatten+exit:tau=$tau")
  done
  "${EVAL[@]}" --data "$data" --exits "$MODEL/exits-$VARIANT" --json "out/eval/$set-exit.json" \
    "${exit_specs[@]}" -p "$ltp" -p "$spatten" "${spatten_pyramid_specs[@]}"
  "${EVAL[@]}" --data "$data" --exits "$MODEL/exits-$VARIANT-ltp" --json "out/eval/$set-pyramid.json" "${pyramid_specs[@]}"
done

# LTP with learned thresholds (tools/train_ltp.py: soft-mask stage, then hard-mask fine-tuning), for
# each such model present: its own spec against its own dense, on SST-2.
for dir in "$MODEL"-ltp*; do
  [[ -f "$dir/ltp.json" ]] || continue
  spec="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["spec"])' "$dir/ltp.json")"
  "$SIEVE" eval --model "$dir" --threads 2 --batch-size 1 --data "$SST2" --json "out/eval/sst2-$(basename "$dir").json" -p "$spec"
done

# The same kinds of settings with the layers' GEMMs in bf16 (--precision bf16), against bf16 dense.
for set in sst2 long; do
  if [[ $set == sst2 ]]; then data="$SST2"; specs=(-p spatten:tokens=0.3 -p ltp:final=0.005 -p exit:tau=0.9 -p spatten:tokens=0.2+exit:tau=0.92)
  else data="$LONG"; specs=(-p spatten:tokens=0.15 -p ltp:final=0.002 -p exit:tau=0.9 -p spatten:tokens=0.15+exit:tau=0.9); fi
  "${EVAL[@]}" --precision bf16 --data "$data" --exits "$MODEL/exits-$VARIANT" --json "out/eval/$set-bf16.json" "${specs[@]}"
done

for f in sst2-pruning long-pruning sst2-bf16 long-bf16; do "$PY" tools/eval_table.py "out/eval/$f.json" >"out/eval/$f.md"; done
for set in sst2 long; do
  "$PY" tools/eval_table.py --skip-dense-after-first "out/eval/$set-exit.json" "out/eval/$set-pyramid.json" >"out/eval/$set-exit.md"
  "$PY" tools/plot_tradeoff.py "out/eval/$set-exit.json" "out/eval/$set-pyramid.json" "out/eval/$set-pruning.json" \
    --group "LTP pyramid=^ltp.*\+exit" --group "SpAtten pyramid=^spatten.*\+exit" --group "early exit=^exit:" \
    --group "LTP alone=^ltp:final=[0-9.]+$" --group "SpAtten alone=^spatten:tokens=[0-9.]+$" \
    --title "$set: accuracy vs speedup ($MODEL, batch 1, 2 threads)" --out "docs/tradeoff-$set.png"
done
echo "tables: out/eval/*.md, plots: docs/tradeoff-*.png"
