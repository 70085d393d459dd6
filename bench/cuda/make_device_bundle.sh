#!/usr/bin/env bash
# Packs what a GPU machine needs to run the CUDA tests and benchmark into one compressed file, because
# the device image has CUDA, PyTorch and transformers but not Sieve's build dependencies (oneDNN,
# utf8proc, GoogleTest), and a call carries at most 64 MiB:
#   build-cuda/device-bundle/sieve-device.tar.xz
#     bin/   sieve_cuda_tests, sieve_cuda_bench (built here by `cmake --build build-cuda`)
#     lib/   the shared libraries they need that a CUDA image may lack (libdnnl, libutf8proc, libgomp, libOpenCL)
#     models/minilm-sst2/   the fine-tuned MiniLM with its weights stored as FP16 (half the size; both
#            backends load the same FP16 values, so the end-to-end comparison is unaffected)
# Usage: bash bench/cuda/make_device_bundle.sh [build-dir]   (then see bench/CUDA.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-cuda}
OUT="$BUILD/device-bundle"
STAGE="$OUT/stage"
PY=${SIEVE_PYTHON:-.venv/bin/python}
[ -x "$BUILD/sieve_cuda_tests" ] && [ -x "$BUILD/sieve_cuda_bench" ] || {
  echo "build $BUILD first: cmake -S . -B $BUILD && cmake --build $BUILD -j2" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/models/minilm-sst2"
cp "$BUILD/sieve_cuda_tests" "$BUILD/sieve_cuda_bench" "$STAGE/bin/"
# Shared libraries outside glibc/libstdc++ and CUDA's own (the image provides cuBLAS 13).
for lib in $(ldd "$BUILD/sieve_cuda_tests" "$BUILD/sieve_cuda_bench" | awk '/=> \//{print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libdnnl*|libutf8proc*|libgomp*|libOpenCL*) cp -L "$lib" "$STAGE/lib/" ;;
  esac
done
for f in config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
  [ -f models/minilm-sst2/$f ] && cp models/minilm-sst2/$f "$STAGE/models/minilm-sst2/"
done
"$PY" - models/minilm-sst2/model.safetensors "$STAGE/models/minilm-sst2/model.safetensors" <<'PYEOF'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
out_header, chunks, offset = {}, [], 0
for name, info in header.items():
    if name == "__metadata__":
        out_header[name] = info
        continue
    begin, end = info["data_offsets"]
    raw = data[begin:end]
    dtype = info["dtype"]
    if dtype == "F32":
        raw = np.frombuffer(raw, dtype="<f4").astype("<f2").tobytes()
        dtype = "F16"
    out_header[name] = {"dtype": dtype, "shape": info["shape"], "data_offsets": [offset, offset + len(raw)]}
    chunks.append(raw)
    offset += len(raw)
blob = json.dumps(out_header).encode()
blob += b" " * ((8 - len(blob) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    for c in chunks:
        f.write(c)
PYEOF
tar -C "$STAGE" -cf - . | xz -T2 -6 > "$OUT/sieve-device.tar.xz"
rm -rf "$STAGE"
ls -la "$OUT"
size=$(stat -c %s "$OUT/sieve-device.tar.xz")
[ "$size" -lt $((60 * 1024 * 1024)) ] || { echo "bundle is $size bytes: over what one call can carry" >&2; exit 1; }
