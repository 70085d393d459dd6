#!/usr/bin/env python3
"""Choose knobs on the calibration slice: from `sieve eval --json` files measured on calibration data,
pick for each family of settings (a name and a regex over the policy spec) the fastest setting whose
accuracy is within --budget points of the same run's dense accuracy. The picks are then evaluated once
on validation (bench/run_evals.sh); nothing here ever reads validation.

    python tools/select_settings.py out/eval/minilm/sst2-calibration.json --budget 1.0 \
        --family "SpAtten tokens=^spatten:tokens=[0-9.]+$" --family "pyramid=\\+exit" --out picks.json

--metric chooses what the budget is in: accuracy (classification, the default), spearman (STS-B
similarity) or recall_at_1 (retrieval pairs), all in points of 100 x the metric; or f1 / exact_match
(SQuAD, already in points). Embedding files carry
each setting's pooling in its label ("spec pool=frozen"); families match and picks print the label.

Prints one picked spec per line (for a shell loop) and writes --out with every family's pick and the
calibration numbers it was chosen on. A family with no setting within budget is reported and skipped.
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import points_per_unit  # noqa: E402


def candidates(files, metric):
    """Every non-dense result of the files, each with its metric change vs its own file's dense."""
    scale = points_per_unit(metric)
    for file in files:
        results = json.loads(Path(file).read_text())["results"]
        dense = results[0]
        for r in results[1:]:
            yield {**r, "label": r.get("label", r["policy"]), "delta_points": scale * (r[metric] - dense[metric]),
                   "dense_" + metric: dense[metric], "file": str(file)}


# Differences of accuracies are not exact in floating point (100 * (0.76 - 0.77) is -1.0000000000000009):
# a loss of exactly the budget counts as within it, as in `sieve tune` (src/eval/tune.cpp, kTolerance).
TOLERANCE = 1e-9


def pick(rows, budget):
    """The fastest row within budget (ties: the more accurate), or None."""
    within = [r for r in rows if r["delta_points"] >= -budget - TOLERANCE]
    return max(within, key=lambda r: (r["speedup"], r["delta_points"]), default=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="sieve eval --json files measured on calibration data")
    ap.add_argument("--budget", type=float, default=1.0, help="accuracy points that may be lost vs dense")
    ap.add_argument("--family", action="append", default=[], metavar="NAME=REGEX", required=True)
    ap.add_argument("--metric", default="accuracy", choices=["accuracy", "spearman", "recall_at_1", "f1", "exact_match"])
    ap.add_argument("--out", type=Path, help="JSON with the picks")
    args = ap.parse_args()
    if not args.budget >= 0:
        ap.error("--budget must be a number >= 0")
    rows = list(candidates(args.files, args.metric))
    picks = []
    for family in args.family:
        name, _, pattern = family.partition("=")
        members = [r for r in rows if re.search(pattern, r["label"])]
        best = pick(members, args.budget)
        if best is None:
            print(f"{name}: none of {len(members)} settings within {args.budget} points", file=sys.stderr)
            continue
        keys = (args.metric, "dense_" + args.metric, "delta_points", "speedup", "flops_reduction",
                "latency_ms_per_example", "latency_ms_per_text", "latency_ms_per_question")
        picks.append({"family": name, "policy": best["policy"], "label": best["label"],
                      "calibration": {k: best[k] for k in keys if k in best}, "candidates": len(members)})
        print(best["label"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"budget_points": args.budget, "metric": args.metric, "calibration_files": [str(f) for f in args.files],
                                        "picks": picks}, indent=2) + "\n")


if __name__ == "__main__":
    main()
