#!/usr/bin/env python3
"""Long-document retrieval pairs from WikiText-2 (raw test file): consecutive paragraphs of one
article are joined into a document of 2 x 256-512 tokens, which is cut at a sentence boundary into a
first and a second half. `sieve eval` on the TSV (sentence1 = first half, sentence2 = second half, no
score) asks each first half to find its own second half among all second halves: recall@1 and MRR,
dense against pruned embeddings.

Articles alternate between two splits (--split calibration: even articles, validation: odd), so
knobs are chosen on documents that are not reported. Token counts come from the model's tokenizer."""
import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT  # noqa: E402

# WikiText's raw files escape in-word hyphens and number separators as " @-@ ", " @,@ ", " @.@ ".
ESCAPES = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")]


def articles(path):
    """Lists of paragraphs, one list per article (top-level " = Title = " headings)."""
    current = None
    for raw in Path(path).read_text(encoding="utf-8").split("\n"):
        line = raw.strip()
        if re.fullmatch(r"= [^=].* =", line):
            if current:
                yield current
            current = []
            continue
        if not line or line.startswith("="):  # blank, or a section heading inside the article
            continue
        for old, new in ESCAPES:
            line = line.replace(old, new)
        if current is not None:
            current.append(line)
    if current:
        yield current


def sentences(paragraph):
    return [s for s in re.split(r"(?<=[.!?]) (?=[A-Z\"'(])", paragraph) if s]


def documents(paragraphs, count_tokens, half_min, half_max):
    """(first half, second half) pairs of half_min..half_max tokens each from one article."""
    pool = [s for p in paragraphs for s in sentences(p)]
    i = 0
    while i < len(pool):
        halves = []
        for _ in range(2):
            half, tokens = [], 0
            while i < len(pool) and tokens < half_min:
                n = count_tokens(pool[i])
                if tokens + n > half_max:
                    break
                half.append(pool[i])
                tokens += n
                i += 1
            if tokens < half_min:
                i += 1  # a sentence too long to fit: skip it and start over
                halves = None
                break
            halves.append(" ".join(half))
        if halves:
            yield tuple(halves)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wikitext", default=str(REPO_ROOT.parent / "shared/data/wikitext-2-raw/wiki.test.raw"))
    ap.add_argument("--model", default=str(REPO_ROOT / "models/all-MiniLM-L6-v2"), help="its tokenizer counts tokens")
    ap.add_argument("--split", choices=["calibration", "validation"], required=True)
    ap.add_argument("--half-min", type=int, default=256, help="fewest tokens per half (without [CLS]/[SEP])")
    ap.add_argument("--half-max", type=int, default=400, help="most tokens per half")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def count_tokens(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pairs = []
    for index, paragraphs in enumerate(articles(args.wikitext)):
        if index % 2 != (0 if args.split == "calibration" else 1):
            continue
        pairs.extend(documents(paragraphs, count_tokens, args.half_min, args.half_max))
    with open(args.out, "w", encoding="utf-8", newline="") as out:
        out.write("sentence1\tsentence2\n")
        for first, second in pairs:
            out.write(f"{first.replace(chr(9), ' ')}\t{second.replace(chr(9), ' ')}\n")
    print(f"wrote {len(pairs)} document pairs to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
