#!/usr/bin/env python3
"""The SpAtten generation-stage table for SmolLM2 on real weights, as Markdown.

Reads `sieve perplexity --json` results (bench/run_smollm2_perplexity.sh: dense and each policy on
the same chunks, scored by generation steps) and llama.cpp's perplexity with a quantized KV cache
on the same chunks (tools/wikitext_perplexity_reference.py --json). KV bytes read per generated
token: Sieve counts them while decoding (KvTraffic); for llama.cpp they follow from its cache
format: every step reads the K and V rows of every cached token, at 2 bytes per element (f16),
34/32 (q8_0) or 18/32 (q4_0), so its bytes are Sieve's dense fp32 bytes times that / 4.

  python3 tools/decoder_policy_table.py --sieve out/smollm2/ppl_report.json \\
      --llama-cpp f16=PATH q8_0=PATH q4_0=PATH
"""

import argparse
import json

BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sieve", required=True)
    parser.add_argument("--llama-cpp", nargs="*", default=[], help="KVTYPE=result.json")
    args = parser.parse_args()
    sieve = json.load(open(args.sieve))
    results = sieve["results"]
    dense = next(r for r in results if r["policy"] == "dense")
    print(f"chunks {sieve.get('first_window', 0)}..{sieve.get('first_window', 0) + dense['windows'] - 1} "
          f"of {sieve['window']} tokens, {dense['tokens_scored']} tokens scored\n")
    print("| engine | policy / KV cache | perplexity | vs dense | KV bytes per token | KV traffic vs dense fp32 | less traffic |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ratio = r["kv_bytes_per_token"] / dense["kv_bytes_per_token"]
        print(f"| Sieve | `{r['policy']}` | {r['perplexity']:.3f} | {100 * (r['perplexity'] / dense['perplexity'] - 1):+.1f} % | "
              f"{r['kv_bytes_per_token'] / 1e6:.2f} MB | {ratio:.3f} | {1 / ratio:.1f}x |")
    for spec in args.llama_cpp:
        kv, path = spec.split("=", 1)
        peer = json.load(open(path))
        ratio = BYTES_PER_ELEMENT[kv] / 4.0
        print(f"| llama.cpp | KV {kv} | {peer['ppl']:.3f} | {100 * (peer['ppl'] / dense['perplexity'] - 1):+.1f} % | "
              f"{dense['kv_bytes_per_token'] * ratio / 1e6:.2f} MB | {ratio:.3f} | {1 / ratio:.1f}x |")


if __name__ == "__main__":
    main()
