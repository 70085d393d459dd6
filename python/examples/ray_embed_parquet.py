#!/usr/bin/env python3
"""Embed a Parquet corpus with Ray Data and Sieve: one sieve.Encoder per Ray actor.

    python python/examples/ray_embed_parquet.py --input corpus.parquet --output out/embeddings \\
        --actors 2 --threads-per-actor 1

Reads the `--text-column` of every row, embeds it with `sieve.Encoder.encode` inside
`ds.map_batches(SieveEmbedder, concurrency=ACTORS)`, and writes Parquet files holding the input
columns plus `embedding` (float32[dim] per row). Without `--address` it starts a local Ray
instance with `--num-cpus` CPUs; with `--address auto` (or ray://head:10001) it joins an existing
cluster, where each actor asks for `--threads-per-actor` CPUs and Ray places them on any node that
has them (README: "Embedding a corpus on a Ray cluster").
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, Optional

import numpy as np


class SieveEmbedder:
    """A Ray Data callable class: the Encoder is loaded once per actor, then used for every batch."""

    def __init__(self, model_dir: Optional[str], policy: str = "dense", threads: int = 1, batch_size: int = 32,
                 text_column: str = "text", normalize: bool = False) -> None:
        import sieve

        self.encoder = sieve.Encoder(model_dir, policy=policy, threads=threads)
        self.batch_size = batch_size
        self.text_column = text_column
        self.normalize = normalize

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        texts = [str(t) for t in batch[self.text_column]]
        batch["embedding"] = self.encoder.encode(texts, batch_size=self.batch_size,
                                                 normalize_embeddings=self.normalize)
        batch["worker_pid"] = np.full(len(texts), os.getpid())  # which actor embedded the row
        return batch


def embed_parquet(input_path: str, output_path: str, model_dir: Optional[str] = None, *, actors: int = 2,
                  threads_per_actor: int = 1, batch_size: int = 32, rows_per_batch: int = 256,
                  policy: str = "dense", text_column: str = "text", cpus_per_actor: Optional[float] = None) -> float:
    """Runs the pipeline on the current Ray cluster (ray.init() first); returns the wall-clock seconds.

    cpus_per_actor: the CPUs Ray reserves for each actor (default: threads_per_actor). Ray Data's
    file listing, reading and writing need CPUs too: when the actors would hold every CPU of the
    cluster (2 actors on a 2-CPU instance), reserve less than a whole CPU each so those can run.
    """
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come out in input order
    start = time.perf_counter()
    # A Parquet file is read as few large blocks, and one block goes to one actor: cut them to
    # rows_per_batch rows so every actor gets work.
    ds = ray.data.read_parquet(input_path).repartition(target_num_rows_per_block=rows_per_batch)
    ds = ds.map_batches(
        SieveEmbedder,
        fn_constructor_kwargs=dict(model_dir=model_dir, policy=policy, threads=threads_per_actor,
                                   batch_size=batch_size, text_column=text_column),
        batch_size=rows_per_batch,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=threads_per_actor if cpus_per_actor is None else cpus_per_actor,
    )
    ds.write_parquet(output_path)
    return time.perf_counter() - start


def read_embeddings(output_path: str) -> np.ndarray:
    """The `embedding` column of the Parquet files the pipeline wrote, as one float32 matrix, in order."""
    import pyarrow.parquet as pq
    from pathlib import Path

    files = sorted(Path(output_path).glob("*.parquet"))
    table = pq.read_table(files) if len(files) > 1 else pq.read_table(files[0])
    return embeddings_from_table(table)


def embeddings_from_table(table: Any) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    storage = getattr(column, "storage", column)  # Ray's tensor extension type stores fixed-size lists
    values = storage.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(column), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="Parquet file or directory")
    parser.add_argument("--output", required=True, help="output directory (Parquet files)")
    parser.add_argument("--model", default=None, help="model directory on every node (default: sieve's default)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--policy", default="dense")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads-per-actor", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per forward call")
    parser.add_argument("--cpus-per-actor", type=float, default=None,
                        help="CPUs Ray reserves per actor (default: threads per actor, or less when the actors "
                             "would leave no whole CPU free: Ray Data's read and write tasks need one)")
    parser.add_argument("--rows-per-batch", type=int, default=256, help="rows Ray hands an actor at once")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (auto, ray://host:10001)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance (no --address)")
    args = parser.parse_args()

    import ray

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    cpus_per_actor = args.cpus_per_actor
    if cpus_per_actor is None:
        # Ray Data's read and write tasks each need a whole free CPU: actors that reserve every CPU
        # of the cluster would leave them none and the job would wait forever.
        total = ray.cluster_resources().get("CPU", 0)
        if args.actors * args.threads_per_actor > total - 1:
            cpus_per_actor = max(0.1, (total - 1) / args.actors)
    seconds = embed_parquet(args.input, args.output, args.model, actors=args.actors,
                            threads_per_actor=args.threads_per_actor, batch_size=args.batch_size,
                            rows_per_batch=args.rows_per_batch, policy=args.policy, text_column=args.text_column,
                            cpus_per_actor=cpus_per_actor)
    rows = read_embeddings(args.output).shape[0]
    print(f"{rows} rows, {args.actors} actor(s) x {args.threads_per_actor} thread(s): {seconds:.2f} s, "
          f"{rows / seconds:.1f} texts/s")


if __name__ == "__main__":
    main()
