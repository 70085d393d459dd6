#!/usr/bin/env python3
"""The table of bench/run_headline.sh: per data set and batch size, each engine's validation
accuracy and its median over rounds of ms per example, with Sieve's pick against ONNX Runtime
fp32 and int8. Reads DIR/{set}-tune.json and DIR/{set}-b{batch}-r{round}-{engine}.json."""

import argparse
import json
import re
import statistics
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    runs = {}  # (set, batch) -> engine -> [(accuracy, ms)]
    for path in sorted(args.dir.glob("*-b*-r*-*.json")):
        match = re.fullmatch(r"(\w+)-b(\d+)-r(\d+)-(sieve-fp32|sieve-int8|ort)\.json", path.name)
        if not match:
            continue
        key = (match[1], int(match[2]))
        results = json.loads(path.read_text())["results"]
        cells = runs.setdefault(key, {})
        if match[4] == "ort":
            for r in results:
                cells.setdefault(r["engine"], []).append((r["accuracy"], r["ms_per_example"]))
        elif match[4] == "sieve-fp32":
            cells.setdefault("sieve fp32 dense", []).append((100 * results[0]["accuracy"], results[0]["latency_ms_per_example"]))
        else:
            cells.setdefault("sieve int8 dense", []).append((100 * results[0]["accuracy"], results[0]["latency_ms_per_example"]))
            cells.setdefault("sieve int8 pick", []).append((100 * results[-1]["accuracy"], results[-1]["latency_ms_per_example"]))

    print("| data | batch | Sieve pick (int8, chosen on calibration) | acc. Sieve fp32 / pick / ORT fp32 / ORT int8 "
          "| ms/ex Sieve fp32 | Sieve int8 dense | Sieve pick | ORT fp32 | ORT int8 | pick vs ORT fp32 | pick vs ORT int8 | rounds |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, batch), cells in sorted(runs.items()):
        if len(cells) < 5:
            continue  # a run still in progress
        tune = json.loads((args.dir / f"{name}-tune.json").read_text())
        pick = tune["best"]["policy"]
        median = {engine: statistics.median(ms for _, ms in values) for engine, values in cells.items()}
        accuracy = {engine: values[0][0] for engine, values in cells.items()}
        rounds = min(len(values) for values in cells.values())
        print(f"| {'SST-2 validation' if name == 'sst2' else 'long documents'} | {batch} | `{pick}` "
              f"| {accuracy['sieve fp32 dense']:.2f} / {accuracy['sieve int8 pick']:.2f} / {accuracy['ort']:.2f} / "
              f"{accuracy['ort-int8']:.2f} | {median['sieve fp32 dense']:.2f} | {median['sieve int8 dense']:.2f} "
              f"| {median['sieve int8 pick']:.2f} | {median['ort']:.2f} | {median['ort-int8']:.2f} "
              f"| **{median['ort'] / median['sieve int8 pick']:.2f}x** | **{median['ort-int8'] / median['sieve int8 pick']:.2f}x** "
              f"| {rounds} |")


if __name__ == "__main__":
    main()
