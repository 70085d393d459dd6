#!/usr/bin/env python3
"""Convert a GLUE parquet file (columns sentence, label; or sentence1, sentence2, label) to GLUE TSV
on stdout or --out. `sieve eval` runs this for .parquet inputs: the engine reads TSV natively and
leaves parquet (a columnar, compressed format with no Debian C++ reader) to pyarrow.

--calibration-slice writes instead the held-out calibration slice of a training split (see
glue_data.split_train): the rows on which every knob is chosen."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from glue_data import read_rows, split_train, write_tsv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("--out", help="output TSV (default: stdout)")
    ap.add_argument("--calibration-slice", action="store_true",
                    help="write only the calibration slice of this training file")
    args = ap.parse_args()
    rows = read_rows(args.input)
    if args.calibration_slice:
        rows = split_train(Path(args.input).parent, rows)[1]
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            write_tsv(rows, out)
    else:
        write_tsv(rows, sys.stdout)


if __name__ == "__main__":
    main()
