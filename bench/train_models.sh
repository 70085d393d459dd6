#!/usr/bin/env bash
# The fine-tuned models behind the README's tables, trained on the fit part of each training split
# (the training split minus its held-out calibration slice, tools/glue_data.py). Uses .venv-train
# (scripts/setup-training.sh: PyPI torch, 2.2x faster to train than Debian's here). Logs in out/train/.
#   bash bench/train_models.sh [minilm-sst2|minilm-mrpc|minilm-exits|e5-sst2|e5-exits ...]   (default: all)
# Times on the 2-core project machine (2026-12-01): minilm-sst2 ~40 min, minilm-mrpc ~10 min,
# exits ~6 min per set, e5-sst2 (12 layers) ~2x minilm per row.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv-train/bin/python"
[[ -x "$PY" ]] || bash scripts/setup-training.sh
SST2=../shared/data/glue/sst2
MRPC=../shared/data/glue/mrpc
E5_SST2_ROWS="${E5_SST2_ROWS:-0}"   # 0 = the whole fit split
E5_EPOCHS="${E5_EPOCHS:-2}"
mkdir -p out/train

train() {  # NAME, then the tool and its arguments
  local name=$1; shift
  echo "==> $name (log out/train/$name.log)"
  "$PY" "$@" >"out/train/$name.log" 2>&1 || { tail -n 20 "out/train/$name.log"; exit 1; }
  tail -n 1 "out/train/$name.log"
}

exits() {  # MODEL DATA: dense-trained exits (early exit, SpAtten pyramid) and LTP-trained (LTP pyramid)
  train "$(basename "$1")-exits" tools/train_exits.py --model "$1" --data "$2" --variant fastbert \
    --train-limit 16000 --epochs 1 --threads 2 --out "$1/exits-fastbert"
  train "$(basename "$1")-exits-ltp" tools/train_exits.py --model "$1" --data "$2" --variant fastbert \
    --train-limit 16000 --epochs 1 --threads 2 --ltp-final 0.01 --out "$1/exits-fastbert-ltp"
}

for job in "${@:-minilm-sst2 minilm-exits minilm-mrpc e5-sst2 e5-exits}"; do
  for j in $job; do
    case $j in
      minilm-sst2) train minilm-sst2 tools/finetune_classifier.py --model models/all-MiniLM-L6-v2 --data "$SST2" \
                     --out models/minilm-sst2 --epochs 2 --threads 2 ;;
      minilm-mrpc) train minilm-mrpc tools/finetune_classifier.py --model models/all-MiniLM-L6-v2 --data "$MRPC" \
                     --out models/minilm-mrpc --epochs 3 --lr 5e-5 --batch-size 16 --threads 2 ;;
      minilm-exits) exits models/minilm-sst2 "$SST2" ;;
      e5-sst2) train e5-sst2 tools/finetune_classifier.py --model models/multilingual-e5-small --data "$SST2" \
                 --out models/e5-sst2 --epochs "$E5_EPOCHS" --train-limit "$E5_SST2_ROWS" --lr 5e-5 --threads 2 ;;
      e5-exits) exits models/e5-sst2 "$SST2" ;;
      *) echo "unknown job $j" >&2; exit 2 ;;
    esac
  done
done
