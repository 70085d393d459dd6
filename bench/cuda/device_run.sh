#!/usr/bin/env bash
# What a GPU machine runs, in one call (bench/CUDA.md): unpack the bundle made by
# make_device_bundle.sh, run the GPU tests, then the benchmark next to PyTorch. Each part has its own
# time limit and writes its log under $OUT as it goes, so a failure or a hang in one still leaves
# the other's results (device time is scarce: there may be no second call).
#   bash bench/cuda/device_run.sh [tests-seconds] [bench-seconds] [extra cuda_bench.py args...]
set -uo pipefail
cd "$(dirname "$0")/../.."
TESTS_S=${1:-200}
BENCH_S=${2:-300}
shift 2 2>/dev/null || shift $#
OUT=${OUT:-out/device}
mkdir -p "$OUT" /tmp/s
tar -C /tmp/s -xJf build-cuda/device-bundle/sieve-device.tar.xz || { echo "no bundle: run make_device_bundle.sh and carry build-cuda/device-bundle" >&2; exit 1; }
cublas_dir=$(dirname "$(find /usr/local/cuda* /opt /usr/lib -name 'libcublasLt.so.13*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=/tmp/s/lib:$cublas_dir:${LD_LIBRARY_PATH:-}
export SIEVE_CUDA_TEST_MODEL=/tmp/s/models/minilm-sst2 OMP_NUM_THREADS=8 PYTHONUNBUFFERED=1
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
  echo "cuBLAS from $cublas_dir"
  ldd /tmp/s/bin/sieve_cuda_tests /tmp/s/bin/sieve_cuda_bench | grep -i 'not found' || echo "all libraries found"
} 2>&1 | tee "$OUT/device.txt"

status=0
timeout "$TESTS_S" /tmp/s/bin/sieve_cuda_tests --gtest_output=json:"$OUT/cuda_tests.json" 2>&1 | tee "$OUT/cuda_tests.log"
rc=${PIPESTATUS[0]}
echo "sieve_cuda_tests exit $rc" | tee -a "$OUT/cuda_tests.log"
[ "$rc" -eq 0 ] || status=1

timeout "$BENCH_S" python3 bench/cuda_bench.py --sieve-bench /tmp/s/bin/sieve_cuda_bench --out "$OUT/cuda_bench.json" "$@" \
  2>&1 | tee "$OUT/cuda_bench.log"
rc=${PIPESTATUS[0]}
echo "cuda_bench.py exit $rc" | tee -a "$OUT/cuda_bench.log"
[ "$rc" -eq 0 ] || status=1
exit $status
