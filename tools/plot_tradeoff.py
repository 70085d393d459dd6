#!/usr/bin/env python3
"""Plot accuracy against measured wall-clock speedup (and GFLOPs reduction) from `sieve eval --json` files.

    python tools/plot_tradeoff.py out/eval/sst2-exit.json out/eval/sst2-pyramid.json \
        --group "early exit=^exit:" --group "LTP=^ltp:" --group "pyramid=^ltp.*\\+exit" \
        --title "SST-2 validation" --out docs/tradeoff-sst2.png

Each --group NAME=REGEX collects the results whose policy spec matches REGEX (first matching group
wins, in the order given) into one line; the dense anchor of each file is drawn as a star at 1x.
Two panels: accuracy vs wall-clock speedup, accuracy vs GFLOPs reduction (--metric f1: SQuAD's F1).
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import points_per_unit, save_figure  # noqa: E402


def load_points(files, groups, metric="accuracy"):
    """{group name: [(speedup, flops_reduction, metric in points, spec)]}, and the dense anchors."""
    scale = points_per_unit(metric)
    points = {name: [] for name, _ in groups}
    dense = []
    for file in files:
        results = json.loads(Path(file).read_text())["results"]
        for r in results:
            if r["policy"] == "dense":
                dense.append((1.0, 1.0, scale * r[metric]))
                continue
            for name, pattern in groups:
                if pattern.search(r["policy"]):
                    if any(p[3] == r["policy"] for p in points[name]):
                        break  # the same setting measured in another file: keep the first
                    points[name].append((r["speedup"], r["flops_reduction"], scale * r[metric], r["policy"]))
                    break
    return points, dense


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="JSON files written by `sieve eval --json`")
    ap.add_argument("--group", action="append", required=True, metavar="NAME=REGEX")
    ap.add_argument("--title", default="")
    ap.add_argument("--metric", default="accuracy", choices=["accuracy", "f1", "exact_match"],
                    help="the y axis (f1 / exact_match: SQuAD files)")
    ap.add_argument("--out", required=True, help="output image (.png or .svg)")
    args = ap.parse_args()

    groups = []
    for g in args.group:
        name, sep, pattern = g.partition("=")
        if not sep or not name:
            ap.error(f"--group wants NAME=REGEX, got {g!r}")
        try:
            groups.append((name, re.compile(pattern)))
        except re.error as e:
            ap.error(f"bad regex in --group {g!r}: {e}")

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    points, dense = load_points(args.files, groups, args.metric)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, index, label in ((axes[0], 0, "measured wall-clock speedup vs dense"), (axes[1], 1, "GFLOPs reduction vs dense")):
        for name, pts in points.items():
            if not pts:
                continue
            pts = sorted(pts, key=lambda p: p[index])
            ax.plot([p[index] for p in pts], [p[2] for p in pts], marker="o", label=name)
        for d in dense:
            ax.plot([1.0], [d[2]], marker="*", markersize=14, color="black", linestyle="none")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel({"accuracy": "accuracy (%)", "f1": "F1", "exact_match": "exact match"}[args.metric])
    axes[0].plot([], [], marker="*", color="black", linestyle="none", markersize=10, label="dense")
    axes[0].legend()
    fig.suptitle(args.title)
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
