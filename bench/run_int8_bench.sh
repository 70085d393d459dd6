#!/usr/bin/env bash
# Issue 19's side-by-side: Sieve fp32/bf16/int8 against ONNX Runtime fp32 and int8 (dynamic),
# CTranslate2 int8 and OpenVINO fp32/bf16/int8 (NNCF static), 2 threads, batch 1 and 32,
# seq 32/128/384, MiniLM-L6 and a BERT-base-sized model. One model's engines run back to back
# (Sieve, then the peers), so every ratio is within minutes on the same machine.
#
# Needs: build/sieve, .venv (ONNX export, random BERT-base), and a Python with the peers:
#   python3 -m venv /tmp/venv-peers && /tmp/venv-peers/bin/pip install ctranslate2 openvino nncf onnxruntime onnx transformers
# CTranslate2's model is converted once with ctranslate2 4.4's converter (4.8's needs transformers
# >= 4.56, Debian's .venv has 4.40): pip install --no-deps --target /tmp/ct2old ctranslate2==4.4.0.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PEERS_PY="${PEERS_PY:-/tmp/venv-peers/bin/python}"
CT2_CONVERTER_PATH="${CT2_CONVERTER_PATH:-/tmp/ct2old}"
OUT="${OUT:-docs/results/int8}"
SEQ="${SEQ:-32 128 384}"
BATCH="${BATCH:-1 32}"
REPEATS="${REPEATS:-5}"
mkdir -p "$OUT" out/onnx out/peers out/data
[[ -d models/bert-base-random ]] || .venv/bin/python tools/make_random_bert.py --out models/bert-base-random
[[ -f out/data/stsb-calibration.tsv ]] || .venv/bin/python tools/glue_to_tsv.py ../shared/data/stsb/train.parquet --calibration-slice --out out/data/stsb-calibration.tsv
for model in all-MiniLM-L6-v2 bert-base-random; do
  .venv/bin/python tools/export_onnx.py --model "models/$model" --out "out/onnx/$model.onnx" >&2
  if [[ ! -f "out/peers/ct2-int8-$model/model.bin" ]]; then
    PYTHONPATH="$CT2_CONVERTER_PATH" .venv/bin/python -c "import ctranslate2, sys; ctranslate2.converters.TransformersConverter(sys.argv[1]).convert(sys.argv[2], quantization='int8', force=True)" \
      "models/$model" "out/peers/ct2-int8-$model"
  fi
  # shellcheck disable=SC2086
  build/sieve bench --model "models/$model" --seq $SEQ --batch $BATCH --precision fp32,bf16,int8 --threads 2 \
    --warmup 1 --repeats "$REPEATS" --json "$OUT/sieve-$model.json"
  "$PEERS_PY" bench/baselines.py --model "models/$model" --onnx "out/onnx/$model.onnx" --seq "${SEQ// /,}" \
    --batch "${BATCH// /,}" --threads 2 --warmup 1 --repeats "$REPEATS" --work-dir out/peers \
    --engines ort,ort-int8,ct2-int8,ov-fp32,ov-bf16,ov-int8 --calibration out/data/stsb-calibration.tsv \
    --out "$OUT/peers-$model.json"
done
.venv/bin/python tools/int8_tables.py "$OUT" > "$OUT/tables.md"
cat "$OUT/tables.md"
