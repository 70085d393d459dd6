#!/usr/bin/env python3
"""Markdown table from `sieve eval --json` files: accuracy and its change vs the dense anchor of the
same run, GFLOPs per example, GFLOPs reduction, latency, measured speedup and speedup / GFLOPs
reduction (how much of the saved work shows up as wall-clock).

    python tools/eval_table.py out/eval/sst2-pruning.json [--skip-dense-after-first]

With --picks (tools/select_settings.py's output) it prints the held-out table instead: per family the
setting chosen on the calibration slice, its calibration numbers, then its validation numbers at batch 1
(the files) and, with --batch32, its validation speedup at batch 32.
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


def by_policy(files):
    """{policy: (result, dense result of the same file)} over several eval files."""
    table = {}
    for file in files:
        results = json.loads(Path(file).read_text())["results"]
        for r in results:
            table.setdefault(r["policy"], (r, results[0]))
    return table


def held_out_table(picks_file, files, batch32_files):
    picks = json.loads(Path(picks_file).read_text())["picks"]
    b1, b32 = by_policy(files), by_policy(batch32_files or [])
    dense, _ = b1["dense"]
    print(f"Validation dense: accuracy {100 * dense['accuracy']:.2f}, F1 {100 * dense.get('f1', 0):.2f}, "
          f"{dense['gflops_per_example']:.3f} GFLOPs/ex, {dense['latency_ms_per_example']:.2f} ms/ex at batch 1"
          + (f", {b32['dense'][0]['latency_ms_per_example']:.2f} ms/ex at batch 32" if "dense" in b32 else "") + ".\n")
    print("| family | setting (chosen on calibration) | calib. Δ acc | calib. speedup | val. accuracy | val. Δ acc (pts) | "
          "val. F1 | GFLOPs red. | val. speedup b1 | val. speedup b32 | mean exit layer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in picks:
        if p["policy"] not in b1:
            continue
        r, d = b1[p["policy"]]
        c = p["calibration"]
        s32 = f"{b32[p['policy']][0]['speedup']:.2f}x" if p["policy"] in b32 else "-"
        print(f"| {p['family']} | `{p['policy']}` | {c['delta_points']:+.2f} | {c['speedup']:.2f}x | {100 * r['accuracy']:.2f} | "
              f"{100 * (r['accuracy'] - d['accuracy']):+.2f} | {100 * r.get('f1', 0):.2f} | {r['flops_reduction']:.2f}x | "
              f"{r['speedup']:.2f}x | {s32} | "
              f"{exit_summary(r.get('exit_layer_histogram', []))} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--skip-dense-after-first", action="store_true", help="print the dense row of the first file only")
    ap.add_argument("--picks", help="tools/select_settings.py output: print the held-out table")
    ap.add_argument("--batch32", nargs="*", help="with --picks: the same picks measured at batch 32")
    args = ap.parse_args()
    if args.picks:
        held_out_table(args.picks, args.files, args.batch32)
        return
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
