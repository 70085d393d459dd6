#!/usr/bin/env python3
"""Long-input evaluation set: documents of 256-512 tokens, each made by concatenating randomly chosen
sentences of one label from a GLUE split (SST-2 validation by default), written as GLUE TSV
(sentence<TAB>label) for `sieve eval --data`.

Each document draws its target length uniformly from [--min-tokens, --max-tokens] and takes
distinct sentences of one label, in random order, until it reaches that length without exceeding
--max-tokens (counted with the model's tokenizer, [CLS] and [SEP] included). Sentences are reused
across documents so that the set is large enough for accuracy to be measured to a fraction of a
point; labels alternate so the set is balanced. Seeded and reproducible.
"""

import argparse
import csv
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from glue_data import load_split, split_train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="GLUE task directory (train/validation parquet or tsv)")
    ap.add_argument("--split", default="validation",
                    help="validation, or 'calibration' for the held-out calibration slice of the training split")
    ap.add_argument("--model", required=True, type=Path, help="model directory whose tokenizer counts tokens")
    ap.add_argument("--out", required=True, type=Path, help="TSV file to write")
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--min-tokens", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 3 <= args.min_tokens <= args.max_tokens:
        raise SystemExit("need 3 <= --min-tokens <= --max-tokens")

    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    if args.split == "calibration":
        rows = split_train(args.data, load_split(args.data, "train"))[1]
    else:
        rows = load_split(args.data, args.split)
    by_label = {}
    for sentence, label in rows:
        # Tokens a sentence adds inside a document: its own, without [CLS]/[SEP].
        by_label.setdefault(label, []).append((sentence.strip(), len(tokenizer(sentence.strip())["input_ids"]) - 2))
    labels = sorted(by_label)
    rng = random.Random(args.seed)

    docs = []
    for d in range(args.docs):
        label = labels[d % len(labels)]
        target = rng.randint(args.min_tokens, args.max_tokens)
        pool = by_label[label][:]
        rng.shuffle(pool)
        parts, length = [], 2
        for sentence, n in pool:
            if length >= target:
                break
            if length + n <= args.max_tokens:
                parts.append(sentence)
                length += n
        text = " ".join(parts)
        real = len(tokenizer(text)["input_ids"])  # joining can merge or split a token at the seams
        if real < args.min_tokens or real > args.max_tokens:
            continue
        docs.append((text, label, real))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        w.writerow(["sentence", "label"])
        for text, label, _ in docs:
            w.writerow([text.replace("\t", " "), label])
    os.replace(tmp, args.out)
    lengths = sorted(n for _, _, n in docs)
    print(f"wrote {len(docs)} documents to {args.out}: tokens min {lengths[0]} median {lengths[len(lengths) // 2]} "
          f"max {lengths[-1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
