#!/usr/bin/env python3
"""Markdown tables of bench/run_int8_bench.sh's results: median ms per engine and shape, and the
ratios issue 19 asks for (Sieve int8 / best peer int8, Sieve fp32 / OpenVINO fp32, Sieve bf16 /
OpenVINO bf16; below 1 is Sieve faster)."""

import json
import sys
from pathlib import Path

ENGINES = ["sieve", "sieve-bf16", "sieve-int8", "ort", "ort-int8", "ct2-int8", "ov-fp32", "ov-bf16", "ov-int8"]
PEER_INT8 = ["ort-int8", "ct2-int8", "ov-int8"]


def runs(folder: Path):
    """(model, how, results, machine) per run: bench/run_int8_bench.sh's pairs of files (Sieve, then
    the peers) and bench/interleaved_int8_bench.py's single files."""
    for sieve_file in sorted(folder.glob("sieve-*.json")):
        model = sieve_file.stem[len("sieve-"):]
        results = json.loads(sieve_file.read_text())["results"]
        peers_file = folder / f"peers-{model}.json"
        machine = {}
        if peers_file.is_file():
            peers = json.loads(peers_file.read_text())
            results += peers["results"]
            machine = peers["machine"]
        yield model, "one engine after another", results, machine
    for file in sorted(folder.glob("interleaved-*.json")):
        report = json.loads(file.read_text())
        machine = report["machine"]
        yield (file.stem[len("interleaved-"):], f"interleaved, median of {machine.get('rounds')} rounds",
               report["results"], machine)


def main():
    for model, how, results, machine in runs(Path(sys.argv[1])):
        ms = {(r["engine"], r["seq"], r["batch"]): r["median_ms"] for r in results}
        shapes = sorted({(r["seq"], r["batch"]) for r in results}, key=lambda s: (s[1], s[0]))
        engines = [e for e in ENGINES if any(k[0] == e for k in ms)]
        print(f"#### {model}, 2 threads, median ms ({how}; {machine.get('date', '')}, {machine.get('cpu', '')})\n")
        print("| seq | batch | " + " | ".join(engines) + " | int8 / best peer int8 | fp32 / ov-fp32 | bf16 / ov-bf16 |")
        print("|---|---|" + "---|" * (len(engines) + 3))
        for seq, batch in shapes:
            cells = [f"{ms[(e, seq, batch)]:.2f}" if (e, seq, batch) in ms else "" for e in engines]
            peer = [ms[(e, seq, batch)] for e in PEER_INT8 if (e, seq, batch) in ms]

            def ratio(a, b):
                return f"{a / b:.2f}" if a and b else ""

            best = min(peer) if peer else None
            row = [ratio(ms.get(("sieve-int8", seq, batch)), best),
                   ratio(ms.get(("sieve", seq, batch)), ms.get(("ov-fp32", seq, batch))),
                   ratio(ms.get(("sieve-bf16", seq, batch)), ms.get(("ov-bf16", seq, batch)))]
            print(f"| {seq} | {batch} | " + " | ".join(cells) + " | " + " | ".join(row) + " |")
        print()


if __name__ == "__main__":
    main()
