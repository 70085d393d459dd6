#!/usr/bin/env python3
"""Is one perplexity really below another? A paired comparison over the same chunks.

Two runs over the same chunks of the same ids (Sieve's `perplexity --json`, whose results carry
`window_mean_nll`, or tools/wikitext_perplexity_reference.py's JSON, which carries
`chunk_mean_nll`) are compared chunk by chunk: d_i = mean NLL of A on chunk i - that of B. Every
chunk scores the same number of tokens, so mean(d) is exactly log(ppl_A / ppl_B), and its
standard error across chunks says how much of a gap rounding and chunk-to-chunk variation could
make on their own. A is "below B" only if the whole 95 % interval of the ratio is below 1.

  python3 tools/compare_perplexity.py A.json[:POLICY] B.json[:POLICY] [--json OUT]

POLICY picks one result of a Sieve file (its `policy` string; default: the first non-dense one,
else dense). Standard library only, so it runs in any of the project's environments.
"""

import argparse
import json
import math
import statistics
import sys
from pathlib import Path


def load_run(spec: str):
    """(label, first chunk, per-chunk mean NLLs) of `file.json` or `file.json:policy`."""
    head, sep, policy = spec.partition(".json:")
    path = head + ".json" if sep else spec
    data = json.loads(Path(path).read_text())
    if "results" in data:  # Sieve
        results = data["results"]
        if policy:
            chosen = [r for r in results if r["policy"] == policy]
            if not chosen:
                names = ", ".join(r["policy"] for r in results)
                raise SystemExit(f"{path} has no result for policy {policy!r} (it has: {names})")
            result = chosen[0]
        else:
            result = next((r for r in results if r["policy"] != "dense"), results[0])
        if "window_mean_nll" not in result:
            raise SystemExit(f"{path}: no window_mean_nll (made before per-window NLLs were written)")
        label = f"sieve {result['policy']}" + (" (context steps)" if data.get("context_steps") else "")
        return label, int(data.get("first_window", 0)), result["window_mean_nll"]
    if "chunk_mean_nll" not in data:
        raise SystemExit(f"{path}: neither Sieve's results nor a reference run with chunk_mean_nll")
    label = f"{data.get('engine', 'reference')} K {data.get('type_k', '?')} V {data.get('type_v', '?')}"
    return label, int(data.get("first_chunk", 0)), data["chunk_mean_nll"]


def compare(a, b):
    (label_a, first_a, nll_a), (label_b, first_b, nll_b) = a, b
    if first_a != first_b or len(nll_a) != len(nll_b):
        raise SystemExit(f"not the same chunks: {label_a} has {len(nll_a)} from {first_a}, "
                         f"{label_b} has {len(nll_b)} from {first_b}")
    if len(nll_a) < 2:
        raise SystemExit("need at least 2 chunks for a standard error")
    diffs = [x - y for x, y in zip(nll_a, nll_b)]
    mean = statistics.fmean(diffs)
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return {
        "a": label_a, "b": label_b, "first_chunk": first_a, "chunks": len(diffs),
        "ppl_a": math.exp(statistics.fmean(nll_a)), "ppl_b": math.exp(statistics.fmean(nll_b)),
        "ratio": math.exp(mean), "ratio_95_low": math.exp(mean - 1.96 * stderr),
        "ratio_95_high": math.exp(mean + 1.96 * stderr), "z": mean / stderr if stderr > 0 else math.inf,
        "chunks_a_lower": sum(d < 0 for d in diffs),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="FILE.json or FILE.json:POLICY")
    parser.add_argument("b", help="FILE.json or FILE.json:POLICY")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = compare(load_run(args.a), load_run(args.b))
    print(f"{out['a']}: {out['ppl_a']:.4f}\n{out['b']}: {out['ppl_b']:.4f}\n"
          f"ratio A/B {out['ratio']:.4f}, 95 % interval [{out['ratio_95_low']:.4f}, {out['ratio_95_high']:.4f}] "
          f"over {out['chunks']} chunks from {out['first_chunk']} (z {out['z']:.2f}; A lower on "
          f"{out['chunks_a_lower']} chunks)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
