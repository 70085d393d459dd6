#!/usr/bin/env python3
"""ONNX Runtime fp32 and int8 (or DeepSparse, --engines deepsparse) classifying a labelled TSV as users run it (issue 19's headline):
texts tokenized up front (Sieve's `eval` times pre-tokenized inputs too), batches of --batch
consecutive rows padded to their longest, session.run plus the checkpoint's pooler and classifier
timed per batch; one untimed batch first. Writes accuracy and ms per example per engine.

Needs the peers' Python (bench/run_int8_bench.sh says how to make it).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402
from peer_int8_accuracy import classifier_head, make_runner, read_labelled  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="BertForSequenceClassification directory")
    parser.add_argument("--onnx", type=Path, required=True, help="its encoder's ONNX export (tools/export_onnx.py)")
    parser.add_argument("--data", type=Path, required=True, help="sentence<TAB>label with a header")
    parser.add_argument("--engines", default="ort,ort-int8")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--deepsparse-length", type=int, default=64,
                        help="deepsparse: the fixed sequence length its engine is compiled for (SST-2's longest is 55)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.work_dir, args.calibration = Path("out/peers"), None
    baselines.quiet_libraries()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    texts, labels = read_labelled(args.data)
    batches = []
    for start in range(0, len(texts), args.batch):
        encoded = tokenizer(texts[start:start + args.batch], padding=True, truncation=True,
                            max_length=args.max_length, return_tensors="np")
        batches.append({name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")})
    head = classifier_head(args.model)
    results = []
    for name in [n for n in args.engines.split(",") if n]:
        run = make_runner(name, args)
        run(batches[0], args.threads)  # makes the session; first-touch costs land on nobody
        seconds, predictions = 0.0, []
        for inputs in batches:
            t0 = time.perf_counter()
            logits = head(run(inputs, args.threads)[:, 0, :])
            seconds += time.perf_counter() - t0
            predictions.append(logits.argmax(axis=1))
        predictions = np.concatenate(predictions)
        result = {"engine": name, "batch": args.batch, "examples": len(texts),
                  "accuracy": round(100 * float(np.mean(predictions == labels)), 2),
                  "ms_per_example": seconds * 1e3 / len(texts)}
        results.append(result)
        baselines.log(json.dumps(result))
    args.out.write_text(json.dumps({"data": str(args.data), "machine": baselines.machine_info(),
                                    "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
