#!/usr/bin/env python3
"""Load benchmark of `sieve serve` against an existing embedding server, in one run (issue 16,
acceptance 3).

A bounded asyncio client (loopback only; each level stops after --seconds or --max-requests,
whichever comes first) sends one input per OpenAI-style embeddings request from C concurrent
keep-alive connections, for C in --concurrency, and reports throughput (requests/s) and p50/p99
latency. Inputs: SST-2 validation sentences (short, ~25 tokens) and "long" inputs (SST-2
sentences joined to ~900 characters, ~200 tokens, so that neither server truncates them).

Servers, one at a time on the same machine and model:
  sieve dense        build/sieve serve --policy dense
  sieve pruned       the same server, requests naming a pruning preset (X-Sieve-Policy)
  peer               --peer-cmd, e.g. Infinity (infinity-emb from PyPI) with its ONNX engine

  # the peer, once, outside the project's venv (it pulls PyPI's torch):
  python3 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install "infinity-emb[server,optimum]==0.0.78"
  mkdir /tmp/peer-model && ln -s $PWD/models/all-MiniLM-L6-v2/* /tmp/peer-model/
  (cd tools && ../.venv/bin/python export_onnx.py --model /tmp/peer-model --out /tmp/peer-model/model.onnx)
  .venv/bin/python bench/serve_load.py --sieve build/sieve --json out/serve_load.json

  # --int8: int8 against int8. Infinity on a CPU prefers an ONNX file whose name holds "quantize"
  # (its get_onnx_files); this one is ONNX Runtime's quantize_dynamic of the same export
  # (bench/baselines.py makes it: per channel, QInt8 weights).
  mkdir /tmp/peer-model-int8 && ln -s $PWD/models/all-MiniLM-L6-v2/* /tmp/peer-model-int8/
  ln -s $PWD/out/onnx/all-MiniLM-L6-v2-int8-dynamic.onnx /tmp/peer-model-int8/model_quantized.onnx
"""
import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from serve_common import free_port, rss_mib

ROOT = Path(__file__).resolve().parent.parent


def load_texts(parquet, count, seed=0):
    import pyarrow.parquet as pq
    sentences = [s.strip() for s in pq.read_table(parquet, columns=["sentence"]).column("sentence").to_pylist()]
    rng = random.Random(seed)
    short = [rng.choice(sentences) for _ in range(count)]
    long = []
    for _ in range(count):
        text = ""
        while len(text) < 900:  # ~200 tokens: under both servers' cut (Infinity cuts at 512, Sieve at 256)
            text += rng.choice(sentences) + " "
        long.append(text.strip())
    return {"sst2": short, "long": long}


def wait_healthy(port, path, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"server did not answer {path} within {timeout} s")


async def one_connection(port, path, bodies, headers, deadline, budget, latencies, errors, counter):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    try:
        while time.monotonic() < deadline and counter[0] < budget:
            counter[0] += 1
            if bodies is None:  # GET: the HTTP layer alone (--trivial)
                request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            else:
                body = bodies[counter[0] % len(bodies)]
                request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors.append(status)
    finally:
        writer.close()


async def run_level(port, path, bodies, headers, concurrency, seconds, max_requests):
    latencies, errors, counter = [], [], [0]
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(one_connection(port, path, bodies, headers, deadline, max_requests, latencies, errors, counter)
                           for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
            "throughput_rps": round(len(latencies) / elapsed, 1), "p50_ms": round(pick(0.50), 2),
            "p99_ms": round(pick(0.99), 2), "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None}


def measure(name, port, path, model_name, inputs, dataset, concurrency, headers, args, pid):
    bodies = [json.dumps({"input": t, "model": model_name}).encode() for t in inputs]
    row = asyncio.run(run_level(port, path, bodies, headers, concurrency, args.seconds, args.max_requests))
    row.update(server=name, dataset=dataset, rss_mib=rss_mib(pid), load_average=round(os.getloadavg()[0], 2))
    print(f"{name:16s} {dataset:5s} c={concurrency:4d}  {row['throughput_rps']:8.1f} req/s  p50 {row['p50_ms']:8.1f} ms  "
          f"p99 {row['p99_ms']:8.1f} ms  ({row['requests']} ok, {row['errors']} errors, load {row['load_average']})", flush=True)
    return row


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sieve", default=str(ROOT / "build" / "sieve"))
    p.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    p.add_argument("--data", default="/work/shared/data/glue/sst2/validation.parquet")
    p.add_argument("--concurrency", default="1,8,32,128", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--seconds", type=float, default=8.0, help="per level, at most")
    p.add_argument("--max-requests", type=int, default=4000, help="per level, at most")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--preset", default="spatten:tokens=0.3,start=2", help="pruning preset of the 'sieve pruned' rows")
    p.add_argument("--peer", choices=["infinity", "none"], default="infinity")
    p.add_argument("--peer-bin", default="/tmp/peer-venv/bin/infinity_emb", help="infinity_emb of the venv it is installed in")
    p.add_argument("--peer-model", default="/tmp/peer-model",
                   help="the same model with model.onnx beside it (tools/export_onnx.py), for Infinity's ONNX engine")
    p.add_argument("--peer-model-int8", default="/tmp/peer-model-int8",
                   help="the same model with only model_quantized.onnx beside it (ONNX Runtime quantize_dynamic), for --int8")
    p.add_argument("--peer-engine", default="optimum", help="infinity's --engine: optimum (ONNX Runtime) or torch")
    p.add_argument("--peer-batch-size", type=int, default=32)
    p.add_argument("--only", default="", help="comma list of servers to run: sieve,peer")
    p.add_argument("--sets", default="sst2,long", help="comma list of input sets: sst2,long")
    p.add_argument("--sieve-bf16", action="store_true",
                   help="also a second Sieve server with --precision bf16 (dense; not the same arithmetic as the peer)")
    p.add_argument("--int8", action="store_true",
                   help="also int8 against int8: Sieve --precision int8 (dense and the preset) and Infinity on --peer-model-int8")
    p.add_argument("--sieve-env", default="", metavar="KEY=VALUE[,KEY=VALUE]",
                   help="also a second dense Sieve server started with these environment variables (an A/B of a runtime setting)")
    p.add_argument("--trivial", default="", metavar="PORT",
                   help="only measure GET /health on a server already listening on PORT (the HTTP layer's own cost)")
    p.add_argument("--json", default="")
    args = p.parse_args()
    if args.trivial:
        for c in args.concurrency:
            row = asyncio.run(run_level(int(args.trivial), "/health", None, {}, c, args.seconds, args.max_requests))
            print(f"GET /health c={c:4d}  {row['throughput_rps']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms")
        return 0
    texts = load_texts(args.data, 512)
    rows = []
    only = set(filter(None, args.only.split(","))) or {"sieve", "peer"}

    # Both servers run side by side (an idle one costs nothing) and every cell is measured for all
    # of them back to back, so a change in the shared machine's load hits them alike.
    servers, procs = [], []
    try:
        def start_sieve(*extra, env=None):
            port = free_port()
            proc = subprocess.Popen([args.sieve, "serve", "--model", args.model, "--port", str(port), "--threads", str(args.threads),
                                     "--max-concurrent-requests", "1024", *extra], stderr=subprocess.DEVNULL,
                                    env=dict(os.environ, **(env or {})))
            procs.append(proc)
            wait_healthy(port, "/health", proc)
            return port, proc.pid

        if "sieve" in only:
            port, pid = start_sieve("--preset", args.preset)
            servers.append(("sieve dense", port, "/v1/embeddings", "all-MiniLM-L6-v2", {}, pid))
            servers.append(("sieve pruned", port, "/v1/embeddings", "all-MiniLM-L6-v2", {"X-Sieve-Policy": args.preset}, pid))
        if "sieve" in only and args.sieve_bf16:
            port, pid = start_sieve("--precision", "bf16")
            servers.append(("sieve dense bf16", port, "/v1/embeddings", "all-MiniLM-L6-v2", {}, pid))
        if "sieve" in only and args.int8:
            port, pid = start_sieve("--precision", "int8", "--preset", args.preset)
            servers.append(("sieve dense int8", port, "/v1/embeddings", "all-MiniLM-L6-v2", {}, pid))
            servers.append(("sieve pruned int8", port, "/v1/embeddings", "all-MiniLM-L6-v2", {"X-Sieve-Policy": args.preset}, pid))
        if "sieve" in only and args.sieve_env:
            env = dict(kv.split("=", 1) for kv in args.sieve_env.split(","))
            port, pid = start_sieve(env=env)
            servers.append((f"sieve dense {args.sieve_env}", port, "/v1/embeddings", "all-MiniLM-L6-v2", {}, pid))

        def start_infinity(model_dir, name):
            port = free_port()
            env = dict(os.environ, HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", INFINITY_ANONYMOUS_USAGE_STATS="0")
            # Run from the model directory with --model-id ".": Infinity then finds model.onnx by a
            # relative name, which is what optimum's loader matches. --pooling-method mean: its
            # "auto" means [CLS] in the ONNX engine.
            cmd = [args.peer_bin, "v2", "--model-id", ".", "--engine", args.peer_engine, "--pooling-method", "mean",
                   "--device", "cpu", "--port", str(port), "--host", "127.0.0.1", "--batch-size", str(args.peer_batch_size)]
            proc = subprocess.Popen(cmd, env=env, cwd=model_dir, stdout=subprocess.DEVNULL,
                                    stderr=open(f"/tmp/serve_load_peer-{port}.log", "w"))
            procs.append(proc)
            wait_healthy(port, "/health", proc)
            servers.append((name, port, "/embeddings", ".", {}, proc.pid))

        if "peer" in only and args.peer == "infinity":
            start_infinity(args.peer_model, f"infinity {args.peer_engine}")
            if args.int8:
                start_infinity(args.peer_model_int8, f"infinity {args.peer_engine} int8")
        for name, port, path, model_name, headers, pid in servers:  # warm-up
            bodies = [json.dumps({"input": t, "model": model_name}).encode() for t in texts["sst2"][:8]]
            asyncio.run(run_level(port, path, bodies, headers, 2, 3, 16))
        wanted = set(args.sets.split(","))
        for dataset, inputs in texts.items():
            if dataset not in wanted:
                continue
            for c in args.concurrency:
                for name, port, path, model_name, headers, pid in servers:
                    rows.append(measure(name, port, path, model_name, inputs, dataset, c, headers, args, pid))
    finally:
        for proc in procs:
            stop(proc)

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "args": vars(args) | {"concurrency": args.concurrency},
                                               "cpus": os.cpu_count(), "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
