#!/usr/bin/env python3
"""Plot the CTA kernel's attention-block speedup against its compression (issue 15).

    python tools/plot_cta_kernel.py docs/results/cta-kernel --out docs/cta-kernel.png

Reads kernel-b1.json and kernel-b32.json (bench/run_cta_kernel.sh) and draws, for CTA alone, the
attention-block speedup over dense attention (same run) against RL, per head (the paper) and with
share=layer, at batch 1 and 32, with the 2x goal.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_figure  # noqa: E402


def points(results, shared):
    """[(RL, attention-block speedup, policy)] of the pure CTA settings of one reading."""
    out = []
    for r in results:
        policy = r["policy"]
        if not policy.startswith("cta:") or ("share=layer" in policy) != shared:
            continue
        out.append((r["cta"]["rl"], r["attention_speedup"], policy))
    return sorted(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for batch, style in ((1, "-"), (32, "--")):
        results = json.loads((Path(args.folder) / f"kernel-b{batch}.json").read_text())["results"]
        for shared, label in ((False, "per head (paper)"), (True, "share=layer")):
            pts = points(results, shared)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=f"{label}, batch {batch}")
    ax.axhline(2.0, color="grey", linewidth=0.8, linestyle=":", label="goal: 2x")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("RL (QKV-linear MACs vs dense)")
    ax.set_ylabel("attention-block speedup vs dense")
    ax.set_title("CTA kernel on ~395-token documents (2 threads)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
