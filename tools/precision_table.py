#!/usr/bin/env python3
"""The table of bench/run_sst2_precisions.sh: each setting's validation accuracy in fp32, bf16 and
int8, and its wall-clock speedup against fp32 dense (ms per example of the fp32 file's dense
anchor over the setting's, files measured back to back) at batch 1 and 32."""

import argparse
import json
from pathlib import Path


def load(path: Path):
    return {r["policy"]: r for r in json.loads(path.read_text())["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    settings = {}  # (policy, precision) -> {batch: result}
    for batch in (1, 32):
        for precision in ("fp32", "bf16", "int8"):
            for suffix in ("", "-ltp-pyramid"):
                for policy, r in load(args.dir / f"sst2-{precision}-b{batch}{suffix}.json").items():
                    if suffix and policy == "dense":
                        continue  # the same dense as the main file's
                    settings.setdefault((policy, precision), {})[batch] = r
    anchor = {batch: settings[("dense", "fp32")][batch]["latency_ms_per_example"] for batch in (1, 32)}
    dense_accuracy = settings[("dense", "fp32")][1]["accuracy"]
    print("| setting | precision | accuracy (Δ vs fp32 dense) | GFLOPs/ex | speedup b1 | speedup b32 |")
    print("|---|---|---|---:|---:|---:|")
    for (policy, precision), by_batch in settings.items():
        r = by_batch[1]
        print(f"| `{policy}` | {precision} | {100 * r['accuracy']:.2f} ({100 * (r['accuracy'] - dense_accuracy):+.2f}) "
              f"| {r['gflops_per_example']:.3f} | {anchor[1] / r['latency_ms_per_example']:.2f}x "
              f"| {anchor[32] / by_batch[32]['latency_ms_per_example']:.2f}x |")


if __name__ == "__main__":
    main()
