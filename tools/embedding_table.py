#!/usr/bin/env python3
"""Markdown tables and a Spearman-vs-speedup plot from bench/run_embedding_evals.sh's output folder:
per set (stsb, long), the settings picked on calibration data, measured on validation at batch 32
and batch 1 (each against dense in the same run), with the calibration numbers they were picked on."""
import argparse
import json
from pathlib import Path


def load(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def measured(data):
    """The anchor and every non-dense setting (dense at the other pooling is the same computation)."""
    results = data["results"]
    return results[:1] + [r for r in results[1:] if r["policy"] != "dense" or r.get("long") == "chunk"
                          or r.get("precision", "fp32") != "fp32"]


def table(out, name, metric, title):
    picks = load(out / f"{name}-picks.json")
    b32, b1 = load(out / f"{name}-validation-b32.json"), load(out / f"{name}-validation-b1.json")
    if not (picks and b32 and b1):
        return
    cal = {p["label"]: p for p in picks["picks"]}
    by_b1 = {r["label"]: r for r in measured(b1)}
    dense32, dense1 = b32["results"][0], b1["results"][0]
    print(f"### {title}\n")
    print(f"{b32['texts']} texts ({b32['pairs']} pairs), max length {b32['max_length']}; dense {metric} "
          f"{100 * dense32[metric]:.2f}, {dense32['gflops_per_text']:.3f} GFLOPs/text, "
          f"{dense32['latency_ms_per_text']:.2f} ms/text at batch 32, {dense1['latency_ms_per_text']:.2f} at batch 1.\n")
    print(f"| family | setting (picked on calibration) | calib. Δ {metric} | valid. {metric} (Δ) | cos to dense | "
          f"GFLOPs/text (red.) | ms/text b32 | speedup b32 | ms/text b1 | speedup b1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in measured(b32):
        label = r["label"]
        family = cal[label]["family"] if label in cal else ("dense" if label == "dense" else "(other pooling)")
        if family == "(other pooling)":
            continue
        c = f"{cal[label]['calibration']['delta_points']:+.2f}" if label in cal else "0"
        one = by_b1.get(label, {})
        print(f"| {family} | `{label}` | {c} | {100 * r[metric]:.2f} ({100 * (r[metric] - dense32[metric]):+.2f}) | "
              f"{r['mean_cosine_to_dense']:.4f} | {r['gflops_per_text']:.3f} ({r['flops_reduction']:.2f}x) | "
              f"{r['latency_ms_per_text']:.2f} | {r['speedup']:.2f}x | {one.get('latency_ms_per_text', float('nan')):.2f} | "
              f"{one.get('speedup', float('nan')):.2f}x |")
    print()


def grid_table(out, name, metric, title):
    grid = load(out / f"{name}-calibration.json")
    if not grid:
        return
    dense = grid["results"][0]
    print(f"### {title}: the calibration grid (batch 32)\n")
    print(f"| setting | Δ {metric} | cos to dense | FLOPs red. | speedup |")
    print("|---|---|---|---|---|")
    for r in measured(grid):
        print(f"| `{r['label']}` | {100 * (r[metric] - dense[metric]):+.2f} | {r['mean_cosine_to_dense']:.4f} | "
              f"{r['flops_reduction']:.2f}x | {r['speedup']:.2f}x |")
    print()


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (name, metric, label) in zip(axes, [("stsb", "spearman", "STS-B Spearman"), ("long", "recall_at_1", "long docs recall@1")]):
        for split, marker in (("calibration", "o"), ("validation-b32", "*")):
            data = load(out / f"{name}-{split}.json")
            if not data:
                continue
            dense = data["results"][0]
            for pool, color in (("survivors", "tab:blue"), ("frozen", "tab:orange")):
                rows = [r for r in data["results"] if r["pool"] == pool]
                ax.scatter([r["speedup"] for r in rows], [100 * (r[metric] - dense[metric]) for r in rows], marker=marker,
                           color=color, s=90 if marker == "*" else 25, label=f"{split}, pool={pool}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("wall-clock speedup vs dense, batch 32")
        ax.set_ylabel(f"Δ {label} (points)")
        ax.set_title(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def bf16_table(out, name, metric, title):
    """The picks with bf16 GEMMs, against fp32 dense in the same run: calibration (which may hold
    more settings than were validated), then validation at batch 32 and 1."""
    runs = [load(out / f"{name}-bf16-{split}.json") for split in ("calibration", "validation-b32", "validation-b1")]
    if not all(runs):
        return
    cal, b32, b1 = runs
    label = "Spearman" if metric == "spearman" else "recall@1"
    cal_by_label = {r["label"]: r for r in cal["results"]}
    print(f"### {title} with bf16 GEMMs (against fp32 dense in the same run)\n")
    print(f"| setting | calib. Δ {label} | valid. {label} (Δ) | cos to dense | ms/text b32 | speedup b32 | ms/text b1 | speedup b1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r, one in zip(b32["results"], b1["results"]):
        c = cal_by_label[r["label"]]
        print(f"| `{r['label']}` | {100 * (c[metric] - cal['results'][0][metric]):+.2f} | {100 * r[metric]:.2f} "
              f"({100 * (r[metric] - b32['results'][0][metric]):+.2f}) | {r['mean_cosine_to_dense']:.5f} | "
              f"{r['latency_ms_per_text']:.2f} | {r['speedup']:.2f}x | {one['latency_ms_per_text']:.2f} | {one['speedup']:.2f}x |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    table(args.out, "stsb", "spearman", "STS-B validation (all-MiniLM-L6-v2)")
    table(args.out, "long", "recall_at_1", "Long documents: WikiText-2 retrieval, validation articles")
    grid_table(args.out, "stsb", "spearman", "STS-B")
    grid_table(args.out, "long", "recall_at_1", "Long documents")
    bf16_table(args.out, "stsb", "spearman", "STS-B")
    bf16_table(args.out, "long", "recall_at_1", "Long documents")
    chunk = load(args.out / "long-chunk-validation.json")
    whole = load(args.out / "long-512-validation.json")
    if chunk:
        print("### Long documents over the length limit: truncation vs chunking (validation, batch 32)\n")
        print("| setting | max length | recall@1 | MRR | GFLOPs/text | sequences/text | ms/text |")
        print("|---|---|---|---|---|---|---|")
        for r in measured(chunk) + (whole["results"][:1] if whole else []):
            length = whole["max_length"] if whole and r is whole["results"][0] else chunk["max_length"]
            print(f"| `{r['label']}` | {length} | {100 * r['recall_at_1']:.2f} | {r['mrr']:.4f} | {r['gflops_per_text']:.3f} | "
                  f"{r['sequences_per_text']:.2f} | {r['latency_ms_per_text']:.2f} |")
        print()
    if args.plot:
        plot(args.out, args.plot)


if __name__ == "__main__":
    main()
