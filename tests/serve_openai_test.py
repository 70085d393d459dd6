#!/usr/bin/env python3
"""Acceptance test 1 of issue 16: the official `openai` client, pointed at `sieve serve` with
base_url, gets the embeddings `sieve embed` prints (float and base64, with and without
`dimensions`).

Starts `sieve serve --port 0` on loopback, reads the chosen port from its first line on stderr,
and stops it with SIGTERM at the end (which must exit 0). Exit code 77 (CTest: skipped) when the
openai package or the default model is missing.

    .venv/bin/python tests/serve_openai_test.py --sieve build/sieve [--model DIR]
"""
import argparse
import array
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell today.",
    "Ünïcödé, emoji 🎸 and CJK 音楽 go through the same tokenizer.",
    "word " * 300,  # over the model's 256 tokens: truncated by both, as `sieve embed` does
]
TOLERANCE = 1e-5  # `sieve embed` prints 7 significant digits


def start_server(sieve, model):
    proc = subprocess.Popen(
        [sieve, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0", "--threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    sys.exit("sieve serve did not start:\n" + "".join(lines))


def sieve_embed(sieve, model, texts):
    out = subprocess.run([sieve, "embed", "--model", str(model), *texts], check=True, capture_output=True, text=True)
    return [row["vector"] for row in json.loads(out.stdout)["embeddings"]]


def cut(vector, dims):
    head = vector[:dims]
    norm = sum(x * x for x in head) ** 0.5
    return [x / norm for x in head]


def max_diff(a, b):
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sieve", required=True)
    parser.add_argument("--model", default=os.environ.get("SIEVE_DEFAULT_MODEL") or str(ROOT / "models" / "all-MiniLM-L6-v2"))
    args = parser.parse_args()
    try:
        import openai
    except ImportError:
        print("the openai package is not installed (pip install -r python/requirements.txt): skipped")
        return 77
    model = Path(args.model)
    if not (model / "model.safetensors").exists():
        print(f"{model} is missing (run scripts/setup.sh): skipped")
        return 77

    expected = sieve_embed(args.sieve, model, TEXTS)
    proc, port = start_server(args.sieve, model)
    failures = []
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="not-needed", max_retries=0, timeout=120)
        for dims in (None, 128, 32):
            want = expected if dims is None else [cut(v, dims) for v in expected]
            extra = {} if dims is None else {"dimensions": dims}
            # The client's default: it asks for base64 and decodes it itself.
            cases = {"default (base64, decoded by the client)": client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, **extra),
                     "float": client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float", **extra)}
            raw = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="base64", **extra)
            for name, response in cases.items():
                got = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
                for i, (g, w) in enumerate(zip(got, want)):
                    if max_diff(g, w) > TOLERANCE:
                        failures.append(f"{name}, dimensions={dims}, input {i}: max diff {max_diff(g, w):.3g}")
                if response.usage.prompt_tokens <= 0 or response.usage.total_tokens != response.usage.prompt_tokens:
                    failures.append(f"{name}: usage {response.usage}")
            for i, d in enumerate(sorted(raw.data, key=lambda d: d.index)):
                floats = array.array("f")
                floats.frombytes(base64.b64decode(d.embedding))
                if max_diff(list(floats), want[i]) > TOLERANCE:
                    failures.append(f"explicit base64, dimensions={dims}, input {i}: max diff {max_diff(list(floats), want[i]):.3g}")
            print(f"dimensions={dims}: default/float/base64 compared on {len(TEXTS)} inputs")
        single = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS[0], encoding_format="float")
        if max_diff(single.data[0].embedding, expected[0]) > TOLERANCE:
            failures.append("a single string input differs")
        try:
            client.embeddings.create(model="all-MiniLM-L6-v2", input="")
            failures.append("an empty string was accepted")
        except openai.BadRequestError as error:
            if error.status_code != 400 or "empty" not in str(error):
                failures.append(f"empty string: unexpected error {error!r}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "hung after SIGTERM"
        if code != 0:
            failures.append(f"sieve serve exit code after SIGTERM: {code}; stderr: {proc.stderr.read()}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("openai client == sieve embed: all cases passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
