#!/usr/bin/env python3
"""Issue 19's side-by-side, interleaved: Sieve against the int8 peers on a noisy machine.

For each round and each shape, Sieve (`sieve bench`, one process per shape: fp32, bf16, int8) runs,
then every peer engine on the same shape; the report gives, per engine and shape, the median over
rounds of each round's median. A slow phase of the VM then hits every engine of a shape alike,
which one engine-after-another run (bench/run_int8_bench.sh) cannot promise. Peers are made once
(NNCF's calibration, CTranslate2's conversion) and compiled once per shape (OpenVINO).

Needs the peers' Python (see bench/run_int8_bench.sh); writes JSON that tools/int8_tables.py reads.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402

PRECISION_ENGINE = {"fp32": "sieve", "bf16": "sieve-bf16", "int8": "sieve-int8"}


def sieve_medians(args, seq: int, batch: int):
    """{engine: median ms} of one `sieve bench` process on one shape."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "sieve.json"
        subprocess.run([str(args.sieve), "bench", "--model", str(args.model), "--seq", str(seq), "--batch", str(batch),
                        "--precision", ",".join(args.precisions), "--threads", str(args.threads),
                        "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--json", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
        return {r["engine"]: r["median_ms"] for r in json.loads(out.read_text())["results"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sieve", type=Path, default=Path("build/sieve"))
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True, help="TSV of sentences for ov-int8")
    parser.add_argument("--work-dir", type=Path, default=Path("out/peers"))
    parser.add_argument("--seq", type=baselines.comma_ints, default=[32, 128, 384])
    parser.add_argument("--batch", type=baselines.comma_ints, default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    parser.add_argument("--engines", default="ort,ort-int8,ct2-int8,ov-fp32,ov-bf16,ov-int8")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.precisions = [p for p in args.precisions.split(",") if p]
    baselines.quiet_libraries()

    peers = [baselines.make_engine(name, args) for name in args.engines.split(",") if name]
    shapes = [(seq, batch) for batch in args.batch for seq in args.seq]
    runners = {}  # (engine, seq, batch) -> callable, compiled once
    per_round = {}  # (engine, seq, batch) -> [median ms per round]
    for round_index in range(args.rounds):
        for seq, batch in shapes:
            medians = sieve_medians(args, seq, batch)
            inputs = baselines.benchmark_inputs(batch, seq)
            for engine in peers:
                key = (engine.name, seq, batch)
                if key not in runners:
                    runners[key] = engine.runner(inputs, args.threads)
                medians[engine.name] = float(np.median(baselines.time_calls(runners[key], args.warmup, args.repeats)))
            for name, ms in medians.items():
                per_round.setdefault((name, seq, batch), []).append(ms)
            baselines.log(f"round {round_index + 1}/{args.rounds} seq {seq} batch {batch}: " +
                          ", ".join(f"{name} {ms:.2f}" for name, ms in medians.items()))

    results = [{"engine": name, "model": args.model.name, "seq": seq, "batch": batch, "threads": args.threads,
                "median_ms": round(statistics.median(times), 3), "round_medians_ms": [round(t, 3) for t in times]}
               for (name, seq, batch), times in per_round.items()]
    versions = {engine.name: engine.version for engine in peers}
    report = {"machine": {**baselines.machine_info(), "versions": versions, "rounds": args.rounds,
                          "repeats": args.repeats}, "results": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    baselines.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
