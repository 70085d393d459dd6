#!/usr/bin/env python3
"""How fast could any encoder be on this machine? A lower bound per shape, beside the engines.

Issue 19 asks Sieve's int8 latency to be <= 0.8x the best int8 peer's at every shape, and Sieve's
fp32 and bf16 to be no slower than OpenVINO's. This tool says, per (seq, batch), whether that is
possible at all on the machine the numbers came from: it adds up only the products an encoder
cannot avoid, each at the best speed oneDNN's matmul reached on this machine in that precision
(bench/gemm/onednn_version_probe.cpp's measurements, 2 threads, weights packed once), and counts
everything else (quantization, LayerNorm, GELU, softmax, residual sums, embeddings) as free:

  layer weights   rows x (4 H^2 + 2 H F) multiply-adds per layer, rows = seq x batch; each of the
                  four weight shapes timed as the probe measured it at that row count (another
                  count runs at the rate of the next larger one, or past the largest at its rate)
  attention       Q.K^T and P.V, 2 x batch x seq^2 x H multiply-adds per layer, at the fastest
                  rate of any probe cell (as if attention's products were weight GEMMs too)

If the goal's time (0.8x or 1x the peer's measured time) is below this bound, no implementation
whose products run at oneDNN's speed meets the goal at that shape: the arithmetic alone takes longer.

  tools/int8_roofline.py --probe docs/results/int8/onednn-3.2-vs-2.6-2026-12-05-amd/onednn-2.6-run1.txt \\
      docs/results/int8/2026-12-05/after/interleaved-all-MiniLM-L6-v2.json [--precision bf16]
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Precision:
    """One of issue 19's goals: Sieve's engine at `goal` x the fastest of `peers` at most."""
    probe_column: str
    sieve: str
    peers: tuple
    goal: float


# Issue 19: int8 <= 0.8x the best int8 peer; fp32 and bf16 no slower than OpenVINO's.
PRECISIONS = {
    "int8": Precision("u8s8", "sieve-int8", ("ort-int8", "ct2-int8", "ov-int8"), 0.8),
    "bf16": Precision("bf16", "sieve-bf16", ("ov-bf16",), 1.0),
    "fp32": Precision("f32", "sieve", ("ov-fp32",), 1.0),
}


@dataclass(frozen=True)
class Shape:
    """What the bound needs of a BERT-family encoder."""
    layers: int
    hidden: int
    ffn: int

    @staticmethod
    def from_config(path: Path) -> "Shape":
        config = json.loads(path.read_text())
        return Shape(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"])

    def weight_gemms(self):
        """(K, N, count) of each layer's weight products: Q, K, V and the attention output are
        H x H; the FFN is H x F then F x H."""
        return [(self.hidden, self.hidden, 4), (self.hidden, self.ffn, 1), (self.ffn, self.hidden, 1)]


PROBE_COLUMNS = ["u8s8", "bf16", "f32"]  # onednn_version_probe's precisions, in its column order


def read_probe(paths, column: str = "u8s8"):
    """{(rows, K, N): microseconds} of one column ('u8s8', 'bf16' or 'f32') of onednn_version_probe's
    lines 'rows K N  u8s8 us  bf16 us  f32 us us'; over several runs, each cell's fastest (the bound
    must not rest on a slow phase of the machine)."""
    cells = {}
    for path in paths:
        found = False
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 10 and parts[3:9:2] == PROBE_COLUMNS:
                key = (int(parts[0]), int(parts[1]), int(parts[2]))
                us = float(parts[4 + 2 * PROBE_COLUMNS.index(column)])
                cells[key] = min(us, cells.get(key, us))
                found = True
        if not found:
            raise SystemExit(f"{path}: no 'rows K N  u8s8 us  bf16 us  f32 us' lines")
    return cells


def gemm_us(probe, rows: int, k: int, n: int) -> float:
    """The probe's time for rows x K x N. Between or below its row counts: the rate of the next larger
    count (more rows run at least as fast per row, so the estimate stays a lower bound); past the
    largest: that count's rate, where the rate has levelled off."""
    measured = sorted(r for (r, kk, nn) in probe if (kk, nn) == (k, n))
    if not measured:
        raise SystemExit(f"the probe has no {k} x {n} cells")
    base = next((r for r in measured if r >= rows), measured[-1])
    return probe[(base, k, n)] * rows / base


def best_rate_ops_per_us(probe) -> float:
    """The fastest rate of any probe cell, in operations (2 per multiply-add) per microsecond."""
    return max(2.0 * r * k * n / us for (r, k, n), us in probe.items())


def lower_bound_ms(shape: Shape, probe, seq: int, batch: int) -> dict:
    rows = seq * batch
    weights_us = shape.layers * sum(count * gemm_us(probe, rows, k, n) for k, n, count in shape.weight_gemms())
    weight_ops = shape.layers * 2 * rows * sum(count * k * n for k, n, count in shape.weight_gemms())
    attention_ops = shape.layers * 2 * 2 * batch * seq * seq * shape.hidden
    attention_us = attention_ops / best_rate_ops_per_us(probe)
    # The same work with every product at the fastest rate of any cell: the bound with no shape effects.
    flat_us = (weight_ops + attention_ops) / best_rate_ops_per_us(probe)
    return {"weights_ms": weights_us / 1e3, "attention_ms": attention_us / 1e3,
            "bound_ms": (weights_us + attention_us) / 1e3, "flat_bound_ms": flat_us / 1e3}


def rows_for(report: dict, shapes: dict, probe, precision: Precision):
    medians = {(r["model"], r["engine"], r["seq"], r["batch"]): r["median_ms"] for r in report["results"]}
    for model, seq, batch in sorted({(r["model"], r["seq"], r["batch"]) for r in report["results"]},
                                    key=lambda m: (m[0], m[2], m[1])):
        peers = {e: medians[(model, e, seq, batch)] for e in precision.peers if (model, e, seq, batch) in medians}
        if not peers:
            continue
        best_peer = min(peers, key=peers.get)
        bound = lower_bound_ms(shapes[model], probe, seq, batch)
        goal_ms = precision.goal * peers[best_peer]
        yield {"model": model, "seq": seq, "batch": batch, **bound, "best_peer": best_peer,
               "best_peer_ms": peers[best_peer], "goal_ms": goal_ms,
               "sieve_ms": medians.get((model, precision.sieve, seq, batch)), "reachable": goal_ms >= bound["bound_ms"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("reports", nargs="+", type=Path, help="bench/interleaved_int8_bench.py JSON files")
    parser.add_argument("--probe", type=Path, action="append", required=True,
                        help="onednn_version_probe output on this machine, measured beside the reports (repeatable: "
                             "each cell's fastest run counts)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder holding <model>/config.json")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="int8",
                        help="int8 (goal 0.8x the best int8 peer), bf16 or fp32 (goal 1x OpenVINO's)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    precision = PRECISIONS[args.precision]
    probe = read_probe(args.probe, precision.probe_column)
    print(f"fastest {args.precision} rate in the probe: {best_rate_ops_per_us(probe) / 1e3:.0f} GOP/s\n")
    print(f"| model | seq | batch | bound: weights + attention = ms | best {args.precision} peer, ms "
          f"| peer / bound | goal {precision.goal}x, ms | bound / goal | all at the fastest rate / goal "
          f"| Sieve {args.precision}, ms | Sieve / bound |")
    print("|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    everything = []
    for path in args.reports:
        report = json.loads(path.read_text())
        models = {r["model"] for r in report["results"]}
        shapes = {m: Shape.from_config(args.models / m / "config.json") for m in models}
        for row in rows_for(report, shapes, probe, precision):
            everything.append(row)
            sieve = row["sieve_ms"]
            sieve_cells = f"{sieve:.2f} | {sieve / row['bound_ms']:.2f}" if sieve else " | "
            print(f"| {row['model']} | {row['seq']} | {row['batch']} | {row['weights_ms']:.2f} + "
                  f"{row['attention_ms']:.2f} = {row['bound_ms']:.2f} | {row['best_peer']} {row['best_peer_ms']:.2f} "
                  f"| {row['best_peer_ms'] / row['bound_ms']:.2f} | {row['goal_ms']:.2f} | {row['bound_ms'] / row['goal_ms']:.2f} "
                  f"| {row['flat_bound_ms'] / row['goal_ms']:.2f} | {sieve_cells} |")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
