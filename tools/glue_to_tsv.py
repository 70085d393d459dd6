#!/usr/bin/env python3
"""Convert a GLUE parquet file (columns sentence, label) to GLUE TSV on stdout or --out.
`sieve eval` runs this for .parquet inputs: the engine reads TSV natively and leaves parquet (a
columnar, compressed format with no Debian C++ reader) to pyarrow."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from glue_data import read_rows  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input")
    ap.add_argument("--out", help="output TSV (default: stdout)")
    args = ap.parse_args()
    rows = read_rows(args.input)
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    out.write("sentence\tlabel\n")
    for sentence, label in rows:
        out.write(sentence.replace("\t", " ").replace("\n", " ") + f"\t{label}\n")


if __name__ == "__main__":
    main()
