#!/usr/bin/env python3
"""SmolLM2-135M (GGUF Q4_1) speed at batch 1, Sieve and llama.cpp in one run, same file, same prompts.

Sieve's side is `sieve bench-decoder` (prompt processing at 128 and 512 tokens, decoding 128 greedy
tokens after a 128-token prompt, and 64 tokens after 1k and 4k prompts, dense and under each
--policy, with int8 activations, the default; then dense with exact fp32 activations); llama.cpp's is bench/llama_cpp_speed.py (llama-cpp-python built from PyPI's sdist, KV
cache f16, q8_0, q4_0). Both use 2 threads and WikiText-2 test text as prompts. Run it on an idle
machine: with more runnable threads than cores, both engines' spinning threads stall by seconds.

  /opt/venv-llama/bin/python bench/decoder_speed.py --out docs/results/decoder-speed.json

Environment for llama.cpp: see tools/wikitext_perplexity_reference.py (one pip install, ~8 min).
Writes JSON with both engines' numbers and prints a table of tokens/s and Sieve / llama.cpp ratios.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))
import llama_cpp_speed  # noqa: E402
from common import write_atomically  # noqa: E402

DEFAULT_GGUF = ROOT / "models" / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf"
WIKITEXT = ROOT.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw"
POLICIES = ["progressive:msb=6,lsb=2,threshold=0", "kv_prune:keep=0.5,recent=128",
            "kv_prune:keep=0.6,recent=128+progressive:msb=6,lsb=2,threshold=0"]


def run_sieve(sieve: Path, gguf: Path, activations: str, threads: int, repeats: int, policies) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sieve.json"
        cmd = [str(sieve), "bench-decoder", "--model", str(gguf), "--data", str(WIKITEXT), "--weights", "gguf",
               "--activations", activations, "--threads", str(threads), "--repeats", str(repeats), "--json", str(out)]
        for p in policies:
            cmd += ["--policy", p]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sieve", type=Path, default=ROOT / "build" / "sieve")
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--policy", action="append", default=None, help="Sieve generation policies (default: a set)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    policies = args.policy if args.policy is not None else POLICIES
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
              "load_average_before": os.getloadavg()}
    result["sieve_gguf"] = run_sieve(args.sieve, args.gguf, "int8", args.threads, args.repeats, policies)
    result["sieve_fp32"] = run_sieve(args.sieve, args.gguf, "fp32", args.threads, args.repeats, [])
    result["llama_cpp"] = llama_cpp_speed.run_all(args.gguf, args.threads, args.repeats, 3, 1)
    result["load_average_after"] = os.getloadavg()
    write_atomically(args.out, lambda h: h.write(json.dumps(result, indent=1) + "\n"))

    peer = result["llama_cpp"]
    peer_prompt = {p["tokens"]: p["tokens_per_s"] for p in peer["prompt"]}
    peer_decode = {(d["kv"], d["prompt_tokens"]): d["tokens_per_s"] for d in peer["decode"]}
    print(f"\n{'measurement':44s} {'Sieve int8':>11s} {'Sieve fp32':>11s} {'llama.cpp':>10s} {'ratio':>7s}")
    fp32_prompt = {p["tokens"]: p["tokens_per_s"] for p in result["sieve_fp32"]["prompt"]}
    for p in result["sieve_gguf"]["prompt"]:
        n = p["tokens"]
        print(f"{'prompt ' + str(n) + ' tokens (tokens/s)':44s} {p['tokens_per_s']:11.1f} {fp32_prompt.get(n, 0):11.1f} "
              f"{peer_prompt.get(n, 0):10.1f} {p['tokens_per_s'] / peer_prompt[n]:7.2f}")
    fp32_decode = {d["prompt_tokens"]: d["tokens_per_s"] for d in result["sieve_fp32"]["decode"]}
    for d in result["sieve_gguf"]["decode"]:
        key = ("f16", d["prompt_tokens"])
        name = f"decode after {d['prompt_tokens']} ({d['policy']})"
        fp32 = fp32_decode.get(d["prompt_tokens"], 0) if d["policy"] == "dense" else 0
        print(f"{name[:44]:44s} {d['tokens_per_s']:11.1f} {fp32:11.1f} {peer_decode.get(key, 0):10.1f} "
              f"{d['tokens_per_s'] / peer_decode[key]:7.2f}")
    for (kv, n), tps in sorted(peer_decode.items()):
        if kv != "f16":
            print(f"{'llama.cpp decode after ' + str(n) + ', KV ' + kv:44s} {'':11s} {'':11s} {tps:10.1f}")


if __name__ == "__main__":
    main()
