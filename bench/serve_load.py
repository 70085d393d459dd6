#!/usr/bin/env python3
"""Load benchmark of `sieve serve` against an existing embedding server, in one run (issue 16,
acceptance 3).

A bounded asyncio client (loopback only; each level stops after --seconds or --max-requests,
whichever comes first) sends one input per OpenAI-style embeddings request from C concurrent
keep-alive connections, for C in --concurrency, and reports throughput (requests/s) and p50/p99
latency. Inputs: SST-2 validation sentences (short, ~13 tokens) and "long" inputs (SST-2
sentences joined to ~1,000 characters, cut by both servers to the model's 256 tokens).

Servers, one at a time on the same machine and model:
  sieve dense        build/sieve serve --policy dense
  sieve pruned       the same server, requests naming a pruning preset (X-Sieve-Policy)
  peer               --peer-cmd, e.g. Infinity (infinity-emb from PyPI) with its ONNX engine

  .venv/bin/python bench/serve_load.py --sieve build/sieve --json out/serve_load.json \\
      --peer infinity --peer-python /tmp/peer-venv/bin/python
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

ROOT = Path(__file__).resolve().parent.parent


def load_texts(parquet, count, seed=0):
    import pyarrow.parquet as pq
    sentences = [s.strip() for s in pq.read_table(parquet, columns=["sentence"]).column("sentence").to_pylist()]
    rng = random.Random(seed)
    short = [rng.choice(sentences) for _ in range(count)]
    long = []
    for _ in range(count):
        text = ""
        while len(text) < 1000:
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


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


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


def bench_server(name, port, path, model_name, texts, headers, args, pid):
    rows = []
    for dataset, inputs in texts.items():
        bodies = [json.dumps({"input": t, "model": model_name}).encode() for t in inputs]
        asyncio.run(run_level(port, path, bodies[:8], headers, 2, 3, 16))  # warm-up
        for c in args.concurrency:
            row = asyncio.run(run_level(port, path, bodies, headers, c, args.seconds, args.max_requests))
            row.update(server=name, dataset=dataset, rss_mib=rss_mib(pid))
            rows.append(row)
            print(f"{name:14s} {dataset:5s} c={c:4d}  {row['throughput_rps']:8.1f} req/s  p50 {row['p50_ms']:8.1f} ms  "
                  f"p99 {row['p99_ms']:8.1f} ms  ({row['requests']} ok, {row['errors']} errors)", flush=True)
    return rows


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
    p.add_argument("--peer-python", default="/tmp/peer-venv/bin/python", help="python of the venv infinity-emb is installed in")
    p.add_argument("--peer-engine", default="optimum", help="infinity's --engine: optimum (ONNX Runtime) or torch")
    p.add_argument("--only", default="", help="comma list of servers to run: sieve,peer")
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

    if "sieve" in only:
        port = free_port()
        proc = subprocess.Popen([args.sieve, "serve", "--model", args.model, "--port", str(port), "--threads", str(args.threads),
                                 "--preset", args.preset, "--max-concurrent-requests", "1024"],
                                stderr=subprocess.DEVNULL)
        try:
            wait_healthy(port, "/health", proc)
            rows += bench_server("sieve dense", port, "/v1/embeddings", "all-MiniLM-L6-v2", texts, {}, args, proc.pid)
            rows += bench_server("sieve pruned", port, "/v1/embeddings", "all-MiniLM-L6-v2", texts,
                                 {"X-Sieve-Policy": args.preset}, args, proc.pid)
        finally:
            stop(proc)

    if "peer" in only and args.peer == "infinity":
        port = free_port()
        env = dict(os.environ, HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", INFINITY_ANONYMOUS_USAGE_STATS="0",
                   OMP_NUM_THREADS=str(args.threads))
        cmd = [args.peer_python, "-m", "infinity_emb.infinity_server", "v2", "--model-id", args.model, "--engine", args.peer_engine,
               "--device", "cpu", "--port", str(port), "--host", "127.0.0.1", "--batch-size", "32", "--no-bettertransformer"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open("/tmp/serve_load_peer.log", "w"))
        try:
            wait_healthy(port, "/health", proc)
            rows += bench_server(f"infinity {args.peer_engine}", port, "/embeddings", args.model, texts, {}, args, proc.pid)
        finally:
            stop(proc)

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "args": vars(args) | {"concurrency": args.concurrency},
                                               "cpus": os.cpu_count(), "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
