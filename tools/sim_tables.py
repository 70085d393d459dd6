"""Markdown tables of bench/run_sim.sh's results (README "Accelerator models", issue 23)."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/sim")


def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None


def validation():
    print("| architecture | published point | paper | model | difference | where the difference comes from |")
    print("|---|---|---|---|---|---|")
    for arch in ("spatten", "cta"):
        for p in load(f"validate-{arch}.json")["validation"]:
            diff = (p["model"] - p["paper"]) / p["paper"] * 100
            print(f"| {arch} | {p['what']} | {p['paper']:.3f} | {p['model']:.3f} | {diff:+.0f} % | {p['note']} |")


def quality(eval_json, setting):
    for r in eval_json["results"]:
        label = r.get("label") or r.get("spec")
        if label == setting:
            for key in ("spearman", "recall_at_1", "accuracy"):
                if key in r and r[key]:
                    return key, r[key] * 100
    return None, float("nan")


def encoder(run):
    ev, sp, cta, paper = (load(f"{run}.{k}.json") for k in ("eval", "spatten", "cta", "cta-paper"))
    if not sp:
        return
    metric = None
    rows = []
    for s, c, p in zip(sp["results"], cta["results"], paper["results"]):
        if s["setting"].startswith("dense "):  # the dense anchor again under another pooling: same work
            continue
        key, q = quality(ev, s["setting"])
        metric = metric or key
        rows.append((s["setting"], q, s, c, p))
    print(f"| setting | {metric} | SpAtten speedup | SpAtten DRAM KB/input (red.) | CTA speedup (hidden-wide tokens) | CTA vs ideal | CTA speedup (paper's width) | at the paper's width: compression / linear / attention % |")
    print("|---|---|---|---|---|---|---|---|")
    for name, q, s, c, p in rows:
        cyc = p["cycles"]
        tot = sum(cyc.values()) or 1
        parts = " / ".join(f"{100 * cyc[k] / tot:.0f}" for k in ("compression", "linear", "attention"))
        print(f"| `{name}` | {q:.2f} | {s['speedup']:.2f}x | {s['dram_bytes_per_input'] / 1024:.0f} ({s['dram_reduction']:.2f}x) | {c['speedup']:.2f}x | "
              f"{c['speedup_vs_ideal']:.2f}x | {p['speedup']:.2f}x | {parts} |")


def decoder():
    a, b = load("wikitext-smollm2.spatten.json"), load("wikitext-smollm2.spatten-fp32.json")
    print("| setting | perplexity | µs/step (12-bit dense) | speedup | DRAM KB/step | DRAM red. | bound | speedup vs a 32-bit dense cache | DRAM red. vs 32-bit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, f in zip(a["results"], b["results"]):
        print(f"| `{r['setting']}` | {r['perplexity']:.3f} | {r['microseconds_per_step']:.2f} | {r['speedup']:.2f}x | "
              f"{r['dram_bytes_per_step'] / 1024:.0f} | {r['dram_reduction']:.2f}x | {r['bound']} | {f['speedup']:.2f}x | {f['dram_reduction']:.2f}x |")


validation()
for run in ("stsb-minilm", "long-minilm", "long-e5"):
    print(f"\n{run}\n")
    encoder(run)
print("\nwikitext-smollm2\n")
decoder()
