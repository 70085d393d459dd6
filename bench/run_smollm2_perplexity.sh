#!/usr/bin/env bash
# SmolLM2-135M (GGUF) on WikiText-2 test, llama.cpp's protocol (chunks of 512, second half scored):
#   calibrate  every candidate generation policy on chunks 0-19 (the calibration slice: knobs are
#              chosen here and nowhere else)
#   report     dense and the chosen policies on chunks 20-59 (never used for choosing)
#   full       dense on the whole file (592 chunks)
#   heldout    the 4-bit pick against llama.cpp's q4_0 cache on chunks 60-299, in llama.cpp's protocol
#              (--context-steps: the whole chunk reads the quantized cache). Chunks 0-59 (calibrate +
#              report above) chose it; these 240 were never looked at before (240, not all 532 left:
#              llama.cpp's q4_0 cache runs at ~7 s a chunk here). Per-chunk NLLs go to the JSON, for
#              tools/compare_perplexity.py against the llama.cpp run on the same chunks.
# Results: out/smollm2/*.json (tools/decoder_policy_table.py turns them into the README table).
# Usage: bash bench/run_smollm2_perplexity.sh calibrate|report|full [POLICY ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIEVE="$ROOT/build/sieve"
MODEL="$ROOT/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
DATA="$ROOT/../shared/data/wikitext-2-raw/wiki.test.raw"
OUT="$ROOT/out/smollm2"
mkdir -p "$OUT"
CANDIDATES=(
  "kv_prune:keep=0.5" "kv_prune:keep=0.33" "kv_prune:keep=0.25"
  "kv_prune:keep=0.5,recent=16" "kv_prune:keep=0.33,recent=16"
  "value_prune:k=32" "value_prune:k=64"
  "progressive:msb=4,lsb=4,threshold=0.1" "progressive:msb=4,lsb=4,threshold=0"
  "progressive:msb=6,lsb=2,threshold=0"
  "kv_prune:keep=0.5,recent=16+progressive:msb=4,lsb=4,threshold=0.1"
  "kv_prune:keep=0.5,recent=16+value_prune:k=64+progressive:msb=4,lsb=4,threshold=0.1"
  # 4 bits at llama.cpp q4_0's bytes (4.5 bits per element): SpAtten's per-row codes, then the
  # options that are not SpAtten's (Hadamard rotation, per-32 fp16 scales, all 16 codes)
  "progressive:msb=4,lsb=0,threshold=0" "progressive:msb=4,lsb=0,threshold=0,rotate=1"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,fullrange=1" "progressive:msb=4,lsb=0,threshold=0,group=32,fullrange=1"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1"
  "progressive:msb=5,lsb=0,threshold=0,rotate=1,group=32,fullrange=1"
  "kv_prune:keep=0.8,recent=128+progressive:msb=5,lsb=0,threshold=0,rotate=1,group=32,fullrange=1"
  # non-uniform (Lloyd-Max) levels, and the first tokens' rows at 16 bits (attention sinks)
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal"
  "progressive:msb=4,lsb=0,threshold=0,group=32,levels=normal"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=64,levels=normal"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=64,levels=normal,sinks=4"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal,sinks=4"
  "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1,sinks=4"
)
mode="${1:?calibrate, report, full or heldout}"
extra=()
shift
policies=("$@")
case "$mode" in
  calibrate) first=0; count=20; [[ ${#policies[@]} -gt 0 ]] || policies=("${CANDIDATES[@]}") ;;
  report) first=20; count=40
    [[ ${#policies[@]} -gt 0 ]] || policies=("kv_prune:keep=0.5" "kv_prune:keep=0.5,recent=16"
      "progressive:msb=4,lsb=4,threshold=0.1" "progressive:msb=6,lsb=2,threshold=0"
      "kv_prune:keep=0.5,recent=16+progressive:msb=6,lsb=2,threshold=0"
      "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,fullrange=1"
      "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal"
      "progressive:msb=4,lsb=0,threshold=0,rotate=1,group=64,levels=normal") ;;
  full) first=0; count=0; policies=() ;;
  heldout) first=60; count=240; extra=(--context-steps)
    [[ ${#policies[@]} -gt 0 ]] || policies=("progressive:msb=4,lsb=0,threshold=0,rotate=1,group=32,levels=normal") ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
args=()
for p in "${policies[@]}"; do args+=(--policy "$p"); done
"$SIEVE" perplexity --model "$MODEL" --data "$DATA" --protocol chunks --window 512 --first-window "$first" \
  --max-windows "$count" --threads 2 "${args[@]}" "${extra[@]}" --json "$OUT/ppl_${mode}.json"
