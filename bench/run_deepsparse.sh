#!/usr/bin/env bash
# Issue 22, acceptance 3: the tile-pruned models through DeepSparse (Neural Magic's CPU engine for
# sparse BERTs) beside Sieve, in one run: per model and batch size, ROUNDS rounds of Sieve (zero
# tiles skipped) and DeepSparse on the same 872 SST-2 validation sentences, back to back; the
# table (tools/deepsparse_table.py) takes medians. DeepSparse compiles fixed shapes, so its
# batches are padded to --deepsparse-length 64 tokens (SST-2's longest is 55) and to full batches.
# DeepSparse 1.9.0 has no wheel (its sdist does not build here); 1.8.0's cp311 wheel installs:
#   python3 -m venv /tmp/venv-ds && /tmp/venv-ds/bin/pip install deepsparse==1.8.0 transformers safetensors
#   bash bench/run_deepsparse.sh          # ~10 minutes on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DS_PY="${DS_PY:-/tmp/venv-ds/bin/python}"
OUT="${OUT:-docs/results/tile-sparse}"
ROUNDS="${ROUNDS:-2}"
MODELS="${MODELS:-minilm-sst2 minilm-sst2-tiles-s80 minilm-sst2-tiles-s90}"
VAL=out/data/sst2-validation.tsv
[[ -x $DS_PY && -f $VAL ]] || { echo "needs $DS_PY (above) and $VAL (bench/run_tile_sparse.sh makes it)" >&2; exit 1; }
mkdir -p "$OUT" out/onnx
for name in $MODELS; do
  (cd tools && ../.venv/bin/python export_onnx.py --model "../models/$name" --out "../out/onnx/$name.onnx" >&2)
done
for round in $(seq 1 "$ROUNDS"); do
  for batch in 1 32; do
    for name in $MODELS; do
      build/sieve eval --model "models/$name" --threads 2 --batch-size "$batch" --data "$VAL" \
        --json "$OUT/ds-$name-sieve-b$batch-r$round.json" >/dev/null
      "$DS_PY" bench/ort_classify_speed.py --model "models/$name" --onnx "out/onnx/$name.onnx" --data "$VAL" \
        --engines deepsparse --batch "$batch" --threads 2 --out "$OUT/ds-$name-deepsparse-b$batch-r$round.json" 2>/dev/null
    done
  done
done
.venv/bin/python tools/deepsparse_table.py "$OUT" | tee "$OUT/deepsparse.md"
