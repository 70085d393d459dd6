#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan + UBSan) in build-fuzz/ and runs each for N
# seconds on its corpus; fails if any target finds a crash, a leak, undefined behaviour, an
# exception other than sieve::Error, a timeout (10 s per input) or an input using over 2 GB.
#   bash scripts/fuzz.sh            # 30 s per target (what CI runs)
#   bash scripts/fuzz.sh 600        # a long local run: 10 minutes per target
#   bash scripts/fuzz.sh 60 fuzz_safetensors fuzz_policy_spec   # chosen targets only
# FUZZ_PARALLEL targets run at once (default: the number of cores). Corpora grow in
# build-fuzz/corpus/<target> across runs (seeded from the real files by fuzz/make_seeds.py), a
# failing input is saved as build-fuzz/findings/<target>-crash-*, each run's log is
# build-fuzz/logs/<target>.log. Reproduce a finding: build-fuzz/fuzz/<target> FILE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-30}"
shift || true
BUILD="$ROOT/build-fuzz"
PARALLEL="${FUZZ_PARALLEL:-$(nproc)}"

echo "==> fuzz: building the targets in build-fuzz/ (clang, libFuzzer, ASan + UBSan)"
mkdir -p "$BUILD"
{ CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIEVE_FUZZ=ON -DSIEVE_CUDA=OFF \
    && cmake --build "$BUILD" -j"$(nproc)"; } >"$BUILD/build.log" 2>&1 \
  || { tail -n 40 "$BUILD/build.log"; echo "fuzz.sh: the fuzz build failed (log: build-fuzz/build.log)" >&2; exit 1; }

targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

rm -rf "$BUILD/seeds"
python3 fuzz/make_seeds.py "$BUILD/seeds"
mkdir -p "$BUILD/findings" "$BUILD/logs"

# Inputs as large as the formats need, and no larger: long inputs only slow the search.
max_len_of() {
  case "$1" in
    fuzz_policy_spec) echo 512 ;;
    fuzz_wordpiece_encode | fuzz_bpe_encode) echo 8192 ;;
    *) echo 65536 ;;
  esac
}
dict_of() {
  case "$1" in
    fuzz_policy_spec) echo fuzz/policy.dict ;;
    fuzz_wordpiece_encode | fuzz_bpe_encode) echo "" ;;
    *) echo fuzz/json.dict ;;
  esac
}

run_target() {
  local target="$1" corpus="$BUILD/corpus/$1" dict
  mkdir -p "$corpus" "$BUILD/seeds/$target"
  dict="$(dict_of "$target")"
  # The first corpus directory is where new inputs go; the seeds are read only.
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    nice -n 10 "$BUILD/fuzz/$target" "$corpus" "$BUILD/seeds/$target" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$target")" ${dict:+-dict="$dict"} \
    -artifact_prefix="$BUILD/findings/$target-" -print_final_stats=1 >"$BUILD/logs/$target.log" 2>&1
}

# libFuzzer's last status line ("#N DONE cov: C ft: F corp: ...") and its execution count.
summary_of() {
  local log="$BUILD/logs/$1.log" done_line execs
  done_line="$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -n 1 || true)"
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  echo "$1: ${execs:-?} executions; ${done_line:-no final stats}"
}

echo "==> fuzz: ${#targets[@]} targets, ${SECONDS_PER_TARGET} s each, $PARALLEL at a time"
failed=()
running=0
for target in "${targets[@]}"; do
  [[ -x "$BUILD/fuzz/$target" ]] || { echo "fuzz.sh: no target $target" >&2; exit 2; }
  rm -f "$BUILD/logs/$target.status"
  { if run_target "$target"; then echo 0; else echo $?; fi >"$BUILD/logs/$target.status"; } &
  running=$((running + 1))
  if ((running >= PARALLEL)); then wait -n || true; running=$((running - 1)); fi
done
wait
for target in "${targets[@]}"; do
  if [[ "$(cat "$BUILD/logs/$target.status")" == 0 ]]; then
    summary_of "$target"
  else
    failed+=("$target")
    echo "FINDING in $target (log: build-fuzz/logs/$target.log):"
    grep -E 'ERROR: |runtime error|fuzz finding|Test unit written' "$BUILD/logs/$target.log" | head -n 5 || true
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
echo "==> fuzz: no findings"
