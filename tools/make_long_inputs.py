#!/usr/bin/env python3
"""Long-input evaluation set: documents of 256-512 tokens, each made by concatenating randomly chosen
sentences of one label from a GLUE split (SST-2 validation by default), written as GLUE TSV
(sentence<TAB>label) for `sieve eval --data`.

Each document draws its target length uniformly from [--min-tokens, --max-tokens] and takes
distinct sentences of one label, in random order, until it reaches that length without exceeding
--max-tokens (counted with the model's tokenizer, [CLS] and [SEP] included). Sentences are reused
across documents so that the set is large enough for accuracy to be measured to a fraction of a
point; labels alternate so the set is balanced. Seeded and reproducible.

--minority A-B mixes labels (off by default): a fraction f ~ U[A, B] (B < 0.5) of each document's
tokens comes from sentences of the other label, in random order among the rest, and the label is the
majority's. Single-label documents are too easy (dense models are right on all of them, so a
calibration slice cannot tell settings apart); mixed ones ask the model to weigh the whole text.
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
                    help="validation; 'calibration' for the held-out calibration slice of the training split; "
                         "'train' for the rest of the training split (fine-tuning on long inputs)")
    ap.add_argument("--model", required=True, type=Path, help="model directory whose tokenizer counts tokens")
    ap.add_argument("--out", required=True, type=Path, help="TSV file to write")
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--min-tokens", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minority", default="0", help="A-B: fraction of each document's tokens from the other label "
                    "(uniform in [A, B], B < 0.5; the label is the majority's). Default 0: single-label documents")
    args = ap.parse_args()
    low, _, high = args.minority.partition("-")
    minority = (float(low), float(high or low))
    if not 0.0 <= minority[0] <= minority[1] < 0.5:
        raise SystemExit("--minority A-B needs 0 <= A <= B < 0.5")
    if not 3 <= args.min_tokens <= args.max_tokens:
        raise SystemExit("need 3 <= --min-tokens <= --max-tokens")

    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    if args.split in ("train", "calibration"):
        rows = split_train(args.data, load_split(args.data, "train"))[0 if args.split == "train" else 1]
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
        share = rng.uniform(*minority) if minority[1] > 0 else 0.0
        other = labels[(d + 1) % len(labels)]
        parts, length = [], 2
        # The majority's sentences up to (1 - share) of the target, then the other label's up to it.
        for source, goal in ((label, 2 + (1.0 - share) * (target - 2)), (other, target)):
            pool = by_label[source][:]
            rng.shuffle(pool)
            for sentence, n in pool:
                if length >= goal:
                    break
                if length + n <= args.max_tokens:
                    parts.append(sentence)
                    length += n
            if share == 0.0:
                break
        if share > 0.0:
            rng.shuffle(parts)
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
