#!/usr/bin/env python3
"""Plot CTA's accuracy against its compression, before and after CTA fine-tuning (issue 15).

    python tools/plot_cta_accuracy.py docs/results/cta-finetune-e5 --out docs/cta-accuracy-e5.png

Reads the calibration JSONs `sieve eval` wrote in that folder (bench/run_cta_finetune.sh and the
checks beside it) and validation-cta-b1.json, and draws accuracy minus the dense reference's, in
points, against RL, one line per (model, reading), with the paper's CTA-1 region (RL <= 0.5) and
the 1-point budget.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_figure  # noqa: E402

# (file, label): which model each calibration file ran.
CALIBRATION = (
    ("precheck-mixed-dense.json", "dense reference, no CTA training"),
    ("calibration-cta.json", "fine-tuned with per-head CTA (w=16, 1 epoch)"),
    ("calibration-cta-share-layer.json", "fine-tuned with per-head CTA (w=16, 1 epoch)"),
)


def curves(results, dense_accuracy):
    """{reading: [(RL, points vs dense)]} of the pure CTA settings in one eval."""
    out = {}
    for r in results:
        policy = r["policy"]
        if not policy.startswith("cta:"):
            continue
        reading = "share=layer" if "share=layer" in policy else "per head"
        out.setdefault(reading, []).append((r["cta"]["rl"], 100 * (r["accuracy"] - dense_accuracy)))
    return {k: sorted(v) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load = lambda name: json.loads((args.folder / name).read_text())["results"]  # noqa: E731
    dense = load("calibration-dense.json")[0]["accuracy"]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for name, label in CALIBRATION:
        if not (args.folder / name).exists():
            continue
        for reading, pts in curves(load(name), dense).items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{label}, run {reading} (calibration)")
    if (args.folder / "validation-cta-b1.json").exists():
        dense_val = load("validation-dense-b1.json")[0]["accuracy"]
        for r in load("validation-cta-b1.json"):
            if r["policy"].startswith("cta:"):
                ax.plot([r["cta"]["rl"]], [100 * (r["accuracy"] - dense_val)], marker="*", markersize=14, linestyle="none",
                        label=f"CTA-fine-tuned, {r['policy']} (validation, once)")
    ax.axvspan(0, 0.5, color="green", alpha=0.06, label="CTA-1 compression: RL <= 0.5")
    ax.axhline(-1.0, color="grey", linewidth=0.8, linestyle=":", label="budget: -1 point")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("RL (QKV-linear MACs vs dense)")
    ax.set_ylabel("accuracy vs dense reference (points)")
    ax.set_title("CTA on the 12-layer model, mixed-label documents (~400 tokens)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
