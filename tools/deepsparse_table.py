#!/usr/bin/env python3
"""The table of bench/run_deepsparse.sh: per model and batch size, validation accuracy and ms per
sentence of Sieve (zero tiles skipped) and DeepSparse, medians over rounds, and Sieve's speedup."""

import argparse
import json
import re
import statistics
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    runs = {}  # (model, engine, batch) -> [(accuracy %, ms per example)]
    for path in sorted(args.dir.glob("ds-*-b*-r*.json")):
        m = re.fullmatch(r"ds-(.+)-(sieve|deepsparse)-b(\d+)-r\d+\.json", path.name)
        if not m:
            continue
        data = json.loads(path.read_text())
        if m[2] == "sieve":
            r = data["results"][0]
            point = (100 * r["accuracy"], r["latency_ms_per_example"])
        else:
            r = data["results"][0]
            point = (r["accuracy"], r["ms_per_example"])
        runs.setdefault((m[1], m[2], int(m[3])), []).append(point)
    print("| model | batch | accuracy Sieve / DeepSparse | ms/ex Sieve | ms/ex DeepSparse | Sieve vs DeepSparse | rounds |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for model, batch in sorted({(k[0], k[2]) for k in runs}):
        sieve, ds = runs.get((model, "sieve", batch), []), runs.get((model, "deepsparse", batch), [])
        if not sieve or not ds:
            continue
        s_ms, d_ms = statistics.median(p[1] for p in sieve), statistics.median(p[1] for p in ds)
        print(f"| {model} | {batch} | {sieve[0][0]:.2f} / {ds[0][0]:.2f} | {s_ms:.2f} | {d_ms:.2f} | {d_ms / s_ms:.2f}x | {min(len(sieve), len(ds))} |")


if __name__ == "__main__":
    main()
