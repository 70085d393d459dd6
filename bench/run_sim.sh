#!/usr/bin/env bash
# Issue 23: Sieve's measured pruning replayed on the SpAtten and CTA accelerator models.
# Traces genuine-data runs (STS-B validation and WikiText-2 long-document retrieval with
# all-MiniLM-L6-v2 and multilingual-e5-small; WikiText-2 perplexity with SmolLM2-135M), then
# models each trace on both architectures and checks the models against the papers' points.
# Results land in out/sim/ (README "Accelerator models"). ~20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIEVE=build/sieve PY=.venv/bin/python OUT=out/sim THREADS="${THREADS:-2}"
mkdir -p "$OUT" out/data
[[ -f out/data/wiki-long-validation.tsv ]] ||
  "$PY" tools/make_long_documents.py --split validation --model models/all-MiniLM-L6-v2 --out out/data/wiki-long-validation.tsv

# Settings: the picks of the embedding tables (LTP, SpAtten), CTA at two widths, and cascade
# pruning composed with CTA (which neither paper tried).
"$SIEVE" eval --threads "$THREADS" --batch-size 32 --data ../shared/data/stsb/validation.parquet --pool survivors \
  -p ltp:final=0.01 -p spatten:tokens=0.2 -p cta:w=16 -p cta:w=24 -p spatten:tokens=0.5+cta:w=24 \
  --trace "$OUT/stsb-minilm.trace.json" --json "$OUT/stsb-minilm.eval.json" | tee "$OUT/stsb-minilm.eval.txt"
"$SIEVE" eval --threads "$THREADS" --batch-size 32 --max-length 512 --data out/data/wiki-long-validation.tsv --pool survivors \
  -p ltp:final=0.004 -p spatten:tokens=0.2 -p cta:w=16 -p cta:w=24 -p spatten:tokens=0.5+cta:w=24 -p spatten:tokens=0.2+cta:w=24 \
  --trace "$OUT/long-minilm.trace.json" --json "$OUT/long-minilm.eval.json" | tee "$OUT/long-minilm.eval.txt"
# e5's w: the largest of 6/8/12/16 within 1 recall@1 point of dense on 100 calibration pairs (w=8;
# w=12 lost 4 points, w=16 16).
[[ -f out/data/wiki-long-calibration.tsv ]] ||
  "$PY" tools/make_long_documents.py --split calibration --model models/all-MiniLM-L6-v2 --out out/data/wiki-long-calibration.tsv
"$SIEVE" eval --threads "$THREADS" --batch-size 32 --max-length 512 --model models/multilingual-e5-small \
  --data out/data/wiki-long-calibration.tsv --limit 100 --pool survivors -p cta:w=6 -p cta:w=8 -p cta:w=12 -p cta:w=16 \
  | tee "$OUT/long-e5-calibration.txt"
"$SIEVE" eval --threads "$THREADS" --batch-size 32 --max-length 512 --model models/multilingual-e5-small \
  --data out/data/wiki-long-validation.tsv --pool survivors -p spatten:tokens=0.2 -p cta:w=8 -p cta:w=24 -p spatten:tokens=0.2+cta:w=8 \
  --trace "$OUT/long-e5.trace.json" --json "$OUT/long-e5.eval.json" | tee "$OUT/long-e5.eval.txt"
# Generation: issue 20's settings on six report chunks of WikiText-2 (chunks 20-25 of 512 tokens).
"$SIEVE" perplexity --threads "$THREADS" --model models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf --weights gguf \
  --activations int8 --data ../shared/data/wikitext-2-raw/wiki.test.raw --protocol chunks --window 512 --first-window 20 \
  --max-windows 6 --policy progressive:msb=6,lsb=2,threshold=0 --policy progressive:msb=4,lsb=4 --policy value_prune:k=16 \
  --policy kv_prune:keep=0.8,recent=128 \
  --policy kv_prune:keep=0.8,recent=128+progressive:msb=5,lsb=0,threshold=0,rotate=1,group=32,fullrange=1 \
  --policy kv_prune:keep=0.8,recent=128+value_prune:k=16+progressive:msb=6,lsb=2,threshold=0 \
  --trace "$OUT/wikitext-smollm2.trace.json" --json "$OUT/wikitext-smollm2.ppl.json" | tee "$OUT/wikitext-smollm2.ppl.txt"

for arch in spatten cta; do "$SIEVE" sim --arch "$arch" --validate --json "$OUT/validate-$arch.json"; done
for run in stsb-minilm long-minilm long-e5; do
  "$SIEVE" sim --arch spatten --trace "$OUT/$run.trace.json" --json "$OUT/$run.spatten.json"
  "$SIEVE" sim --arch cta --trace "$OUT/$run.trace.json" --json "$OUT/$run.cta.json"
  "$SIEVE" sim --arch cta --config docs/sim/cta-paper-reading.json --trace "$OUT/$run.trace.json" --json "$OUT/$run.cta-paper.json"
done
"$SIEVE" sim --arch spatten --trace "$OUT/wikitext-smollm2.trace.json" --json "$OUT/wikitext-smollm2.spatten.json"
"$SIEVE" sim --arch spatten --config docs/sim/spatten-fp32-cache.json --trace "$OUT/wikitext-smollm2.trace.json" \
  --json "$OUT/wikitext-smollm2.spatten-fp32.json"
