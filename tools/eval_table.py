#!/usr/bin/env python3
"""Markdown table from `sieve eval --json` files: accuracy and its change vs the dense anchor of the
same run, GFLOPs per example, GFLOPs reduction, latency, measured speedup and speedup / GFLOPs
reduction (how much of the saved work shows up as wall-clock).

    python tools/eval_table.py out/eval/sst2-pruning.json [--skip-dense-after-first]
"""
import argparse
import json
from pathlib import Path


def exit_summary(hist):
    """Mean exit layer (1-based) of a histogram, '' when every example ran all layers."""
    total = sum(hist)
    if not total or hist[-1] == total:
        return ""
    return f"{sum((i + 1) * c for i, c in enumerate(hist)) / total:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--skip-dense-after-first", action="store_true", help="print the dense row of the first file only")
    args = ap.parse_args()
    print("| policy | accuracy | Δ acc (pts) | GFLOPs/ex | GFLOPs red. | ms/ex | speedup | speedup / GFLOPs red. | mean exit layer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, file in enumerate(args.files):
        results = json.loads(Path(file).read_text())["results"]
        dense = results[0]
        for r in results:
            if r["policy"] == "dense" and n > 0 and args.skip_dense_after_first:
                continue
            delta = 100 * (r["accuracy"] - dense["accuracy"])
            print(f"| `{r['policy']}` | {100 * r['accuracy']:.2f} | {delta:+.2f} | {r['gflops_per_example']:.3f} | "
                  f"{r['flops_reduction']:.2f}x | {r['latency_ms_per_example']:.2f} | {r['speedup']:.2f}x | "
                  f"{r['speedup'] / r['flops_reduction']:.2f} | {exit_summary(r.get('exit_layer_histogram', []))} |")


if __name__ == "__main__":
    main()
