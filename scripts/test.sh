#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup (idempotent), the Release build and its tests,
# and the Python package's tests (pytest), then the same C++ tests built with AddressSanitizer + UBSan. Reference files must exist here:
# SIEVE_REQUIRE_REFERENCE=1 turns a missing one into a failure instead of a skip.
# Set SIEVE_SKIP_ASAN=1 to run only the Release pass (a quick local check). Last, every fuzz
# target runs for SIEVE_FUZZ_SECONDS (default 30) on its corpus; SIEVE_SKIP_FUZZ=1 skips that.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc)"

bash scripts/setup.sh

export SIEVE_REQUIRE_REFERENCE=1
export SIEVE_REFERENCE_DIR="$ROOT/build/reference"
export SIEVE_DEFAULT_MODEL="$ROOT/models/all-MiniLM-L6-v2"

echo "==> tests: Release build"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 600

echo "==> tests: the Python package (tests/python, against build/sieve)"
SIEVE_CLI="$ROOT/build/sieve" .venv/bin/python -m pytest -q tests/python

if [[ "${SIEVE_SKIP_ASAN:-0}" != 1 ]]; then
  echo "==> tests: AddressSanitizer + UBSan build in build-asan/"
  mkdir -p build-asan
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIEVE_ASAN=ON >build-asan/build.log 2>&1 \
    && cmake --build build-asan -j"$JOBS" >>build-asan/build.log 2>&1 \
    || { tail -n 40 build-asan/build.log; echo "test.sh: the ASan build failed (log: build-asan/build.log)" >&2; exit 1; }
  # Leak checking stays on; any sanitizer report fails the test that triggered it.
  ASAN_OPTIONS="abort_on_error=1:detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 1200
fi
if [[ "${SIEVE_SKIP_FUZZ:-0}" != 1 ]]; then
  bash scripts/fuzz.sh "${SIEVE_FUZZ_SECONDS:-30}"
fi
echo "==> all tests passed"
