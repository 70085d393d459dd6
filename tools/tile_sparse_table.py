#!/usr/bin/env python3
"""The table of bench/run_tile_sparse.sh: per tile sparsity, validation accuracy and, against the
same pruned weights through the dense GEMM of the same precision in the same round, the GEMM-only speedup (time inside the
layers' four weight GEMMs) and the end-to-end speedup; then the end-to-end speedup against the
unpruned model's dense run, alone and stacked with the token-pruning policy. Medians over rounds."""

import argparse
import json
import re
import statistics
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="what the runs computed in (names the dense GEMM they were measured against)")
    args = parser.parse_args()
    dense_gemm = "dense sgemm" if args.precision == "fp32" else "oneDNN's dense bf16 GEMM"
    runs = {}  # (model, mode, batch) -> [json per round]
    for path in sorted(args.dir.glob("*-b*-r*.json")):
        m = re.fullmatch(r"(.+)-(auto|off)-b(\d+)-r(\d+)\.json", path.name)
        if m:
            runs.setdefault((m[1], m[2], int(m[3])), []).append(json.loads(path.read_text()))

    def median(model, mode, batch, policy, field):
        values = []
        for run in runs[(model, mode, batch)]:
            values += [r[field] for r in run["results"] if (r["policy"] == "dense") == (policy == "dense")]
        return statistics.median(values)

    anchor = "minilm-sst2"
    models = sorted({k[0] for k in runs}, key=lambda n: (n != anchor, n))
    base_acc = runs[(anchor, "auto", 1)][0]["results"][0]["accuracy"]
    stack = [r["policy"] for r in runs[(anchor, "auto", 1)][0]["results"] if r["policy"] != "dense"][0]
    print(f"| model | skipped tiles | accuracy (Δ) | GEMMs: sparse vs {dense_gemm} b1 / b32 | end to end: sparse vs {dense_gemm} b1 / b32 "
          f"| end to end vs unpruned b1 / b32 | + `{stack}`: accuracy, vs unpruned b1 / b32 |")
    print("|---|---:|---|---|---|---|---|")
    for model in models:
        first = runs[(model, "auto", 1)][0]
        acc = first["results"][0]["accuracy"]
        acc_stack = first["results"][1]["accuracy"]
        skipped = first["tile_sparse"]["skipped_tiles"] if first["tile_sparse"]["sparse_weights"] else 0.0
        cells = []
        for field in ("gemm_seconds", "total_seconds"):
            if (model, "off", 1) in runs:
                cells.append(" / ".join(f"{median(model, 'off', b, 'dense', field) / median(model, 'auto', b, 'dense', field):.2f}x"
                                        for b in (1, 32)))
            else:
                cells.append("(anchor)")
        vs_unpruned = " / ".join(f"{median(anchor, 'auto', b, 'dense', 'total_seconds') / median(model, 'auto', b, 'dense', 'total_seconds'):.2f}x"
                                 for b in (1, 32))
        stacked = " / ".join(f"{median(anchor, 'auto', b, 'dense', 'total_seconds') / median(model, 'auto', b, 'stack', 'total_seconds'):.2f}x"
                             for b in (1, 32))
        print(f"| {model} | {100 * skipped:.0f} % | {100 * acc:.2f} ({100 * (acc - base_acc):+.2f}) | {cells[0]} | {cells[1]} "
              f"| {vs_unpruned} | {100 * acc_stack:.2f} ({100 * (acc_stack - base_acc):+.2f}), {stacked} |")


if __name__ == "__main__":
    main()
