#!/usr/bin/env python3
"""Soak test of `sieve serve` (issue 16, acceptance 4): sustained mixed valid and invalid requests
from --clients keep-alive connections for --seconds, on loopback.

Checks, and exits non-zero if any fails:
  - the server never crashes (it must still answer /health and exit 0 on SIGTERM at the end);
  - every request gets exactly one answer, with the expected status (valid -> 200, each kind of
    bad input -> its 4xx), and every embedding is the one of the text that was sent (so no answer
    went to the wrong request);
  - the server counted exactly the requests the client sent (sum of sieve_requests_total);
  - resident memory is flat: RSS sampled every 10 s; the growth from the first sample after
    warm-up to the last is reported and must stay under --max-rss-growth-mib.

  .venv/bin/python bench/serve_soak.py --sieve build/sieve --seconds 600 --json out/serve_soak.json
"""
import argparse
import asyncio
import base64
import json
import random
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from serve_common import free_port, rss_mib

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["the movie was a delight from start to finish", "a tedious, overlong mess", "Ünïcödé and 音楽 too",
         "short", "word " * 400, "an unremarkable film that neither thrills nor bores",
         "it 's a charming and often affecting journey", "the plot is nothing but boilerplate clichés from start to finish"]


def http(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def make_request(rng):
    """(path, body bytes, expected status, check) for one request of the mix."""
    roll = rng.random()
    if roll < 0.55:
        picks = [rng.randrange(len(TEXTS)) for _ in range(rng.randint(1, 4))]
        fmt = rng.choice(["float", "base64"])
        body = {"input": [TEXTS[i] for i in picks], "model": "soak", "encoding_format": fmt}
        dims = rng.choice([None, None, 64])
        if dims:
            body["dimensions"] = dims
        if rng.random() < 0.2:
            body["sieve"] = {"policy": "fast"}
        return "/v1/embeddings", json.dumps(body).encode(), 200, ("openai", picks, fmt, dims, "sieve" in body)
    if roll < 0.65:
        i = rng.randrange(len(TEXTS))
        return "/embed", json.dumps({"inputs": TEXTS[i]}).encode(), 200, ("tei", [i], "float", None, False)
    if roll < 0.70:
        return "/tokenize", json.dumps({"inputs": rng.choice(TEXTS)}).encode(), 200, None
    bad = [
        (b'{"input": "unterminated', 400), (b'{"input": []}', 400), (b'{"input": ""}', 400), (b'{"input": 5}', 400),
        (b'{"input": "a", "dimensions": 0}', 400), (b'{"input": "bad \xff bytes"}', 400),
        (json.dumps({"input": "word " * 400, "truncate": False}).encode(), 400),
        (json.dumps({"input": ["x"] * 5000}).encode(), 400),
        (json.dumps({"input": "x" * (5 << 20)}).encode(), 413),
        (json.dumps({"input": "a", "sieve": {"policy": "spatten:tokens=0.01"}}).encode(), 400),
    ]
    body, status = rng.choice(bad)
    return "/v1/embeddings", body, status, None


def decode(item, fmt):
    if fmt == "base64":
        raw = base64.b64decode(item)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return item


def cut(v, dims):
    if not dims:
        return v
    head = v[:dims]
    n = sum(x * x for x in head) ** 0.5
    return [x / n for x in head]


class Stats:
    def __init__(self):
        self.sent = 0
        self.answered = 0
        self.by_status = {}
        self.failures = []


async def client(port, seed, deadline, expected, stats):
    rng = random.Random(seed)
    reader = writer = None
    while time.monotonic() < deadline:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        path, body, want, check = make_request(rng)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        stats.sent += 1
        try:
            writer.write(head + body)
            await writer.drain()
            response_head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            # Only a body over the limit may be cut off by the server closing the connection.
            if want == 413:
                stats.answered += 1
                stats.by_status["413 (connection closed)"] = stats.by_status.get("413 (connection closed)", 0) + 1
            else:
                stats.failures.append(f"{path}: connection error {error!r}")
            writer.close()
            writer = None
            continue
        status = int(response_head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", response_head).group(1))
        payload = await reader.readexactly(length)
        stats.answered += 1
        stats.by_status[status] = stats.by_status.get(status, 0) + 1
        if status != want:
            stats.failures.append(f"{path} {body[:80]!r}: status {status}, expected {want}: {payload[:200]!r}")
        elif status >= 400:
            error = json.loads(payload).get("error", {})
            if not all(k in error for k in ("message", "type", "param", "code")):
                stats.failures.append(f"{path}: error body without OpenAI's fields: {payload[:200]!r}")
        elif check:
            kind, picks, fmt, dims, pruned = check
            data = json.loads(payload)
            vectors = [decode(d["embedding"], fmt) for d in data["data"]] if kind == "openai" else data
            if len(vectors) != len(picks):
                stats.failures.append(f"{path}: {len(vectors)} embeddings for {len(picks)} inputs")
            for v, i in zip(vectors, picks):
                want_v = cut(expected[(i, pruned)], dims)
                diff = max(abs(a - b) for a, b in zip(v, want_v))
                if len(v) != len(want_v) or diff > 1e-4:
                    stats.failures.append(f"{path}: embedding of text {i} differs by {diff:.3g} (pruned={pruned})")
        if re.search(rb"(?i)connection:\s*close", response_head):
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def soak(port, clients, seconds, expected, stats):
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client(port, seed, deadline, expected, stats) for seed in range(clients)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sieve", default=str(ROOT / "build" / "sieve"))
    p.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-rss-growth-mib", type=float, default=50)
    p.add_argument("--json", default="")
    args = p.parse_args()

    port = free_port()
    proc = subprocess.Popen([args.sieve, "serve", "--model", args.model, "--port", str(port), "--threads", str(args.threads),
                             "--preset", "fast=spatten:tokens=0.3,start=2", "--max-client-batch-size", "64",
                             "--max-body-bytes", str(1 << 20)], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "listening" not in line:
        sys.exit(f"sieve serve did not start: {line}")
    # The expected embedding of every text, dense and pruned, from single requests.
    expected = {}
    for i, text in enumerate(TEXTS):
        for pruned in (False, True):
            body = {"input": text, **({"sieve": {"policy": "fast"}} if pruned else {})}
            status, payload = http(port, "POST", "/v1/embeddings", json.dumps(body).encode())
            assert status == 200, payload
            expected[(i, pruned)] = json.loads(payload)["data"][0]["embedding"]

    stats = Stats()
    rss = []
    start = time.monotonic()

    async def run():
        task = asyncio.create_task(soak(port, args.clients, args.seconds, expected, stats))
        while not task.done():
            rss.append((round(time.monotonic() - start, 1), rss_mib(proc.pid)))
            await asyncio.wait([task], timeout=10)
        await task

    asyncio.run(run())
    rss.append((round(time.monotonic() - start, 1), rss_mib(proc.pid)))
    status, _ = http(port, "GET", "/health")
    health_ok = status == 200
    _, metrics = http(port, "GET", "/metrics")
    counted = sum(float(m.group(1)) for m in re.finditer(rb'sieve_requests_total\{route="[^"]*",code="\d+"\} (\S+)', metrics))
    # What the server counted beyond the soak: the 16 requests for `expected` and the /health above.
    client_total = stats.sent + len(expected) + 1
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)

    warm = [r for t, r in rss if t >= min(30, args.seconds / 4)]
    growth = warm[-1] - warm[0] if len(warm) >= 2 else 0.0
    failures = list(stats.failures)
    if stats.answered != stats.sent:
        failures.append(f"{stats.sent} requests sent, {stats.answered} answered")
    if int(counted) != client_total:
        failures.append(f"the server counted {int(counted)} requests, the client sent {client_total}")
    if not health_ok:
        failures.append("/health did not answer 200 after the soak")
    if code != 0:
        failures.append(f"exit code {code} after SIGTERM")
    if growth > args.max_rss_growth_mib:
        failures.append(f"RSS grew by {growth:.1f} MiB after warm-up")
    report = {"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds, "clients": args.clients, "sent": stats.sent,
              "answered": stats.answered, "server_counted": int(counted), "by_status": {str(k): v for k, v in stats.by_status.items()},
              "requests_per_second": round(stats.sent / args.seconds, 1), "rss_mib": rss, "rss_growth_after_warmup_mib": round(growth, 1),
              "exit_code": code, "failures": failures[:50], "failure_count": len(failures)}
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mib"}, indent=1))
    print("RSS MiB (t, rss):", rss[:3], "...", rss[-3:])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
