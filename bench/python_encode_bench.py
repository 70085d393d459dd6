#!/usr/bin/env python3
"""sieve.Encoder.encode against sentence-transformers and FastEmbed, in one run (issue 17,
acceptance 3).

Same model (all-MiniLM-L6-v2), same texts, batch 32, all cores, outputs normalized as each
library does for this model:
  short  SST-2 validation sentences (872, ~25 tokens)
  long   WikiText-2 documents of the validation articles (tools/make_long_documents.py, both
         halves: 256-400 tokens each), cut at 256 tokens by all three (the model's limit in
         sentence-transformers; FastEmbed's copy of tokenizer_config.json says 256)
Sieve runs dense and with the pruning presets chosen on calibration data (issue 14: ltp:final=0.01
for sentences, ltp:final=0.004 for long documents; README, "Embeddings under pruning").

Each engine lives in its own worker process (their OpenMP/ONNX thread pools never share a process),
loads the model once, warms up, and waits; the driver then sends "encode set S with policy P" to
one worker at a time, round-robin over every (engine, set, policy) in a shuffled order per round,
so slow drift of the machine hits every engine alike. Reported: median texts/s over the rounds and
its ratio to Sieve dense measured in the same run; and how close each engine's vectors are to
Sieve dense (cosine), so the engines are seen to compute the same thing.

Peers need their own venv (PyPI torch and its CUDA libraries: ~6 GB):
  python3 -m venv .venv-bench && .venv-bench/bin/pip install "torch>=2.4" sentence-transformers fastembed==0.9.1 pyarrow
  (cd tools && ../.venv/bin/python export_onnx.py --model ../models/all-MiniLM-L6-v2 --out ../out/onnx-minilm/model.onnx)
  .venv/bin/python bench/python_encode_bench.py --peer-python .venv-bench/bin/python --json out/python_encode.json
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LENGTH = 256
PRESETS = {"short": "ltp:final=0.01", "long": "ltp:final=0.004"}


# ---------------------------------------------------------------- worker (one engine per process)

class SieveEngine:
    def __init__(self, model, threads):
        import sieve
        self.model = sieve.Encoder(model, threads=threads, max_length=MAX_LENGTH)
        self.version = f"sieve {sieve.__version__}"

    def encode(self, texts, policy):
        vectors = self.model.encode(texts, batch_size=32, policy=policy)
        return vectors, {"gflops": self.model.last_stats["gflops"],
                         "tokens_in": self.model.last_stats["tokens_in"],
                         "tokens_computed": self.model.last_stats["tokens_computed"]}


class SentenceTransformersEngine:
    def __init__(self, model, threads):
        import sentence_transformers
        import torch
        torch.set_num_threads(threads)
        self.model = sentence_transformers.SentenceTransformer(model, device="cpu")
        self.model.max_seq_length = MAX_LENGTH
        self.version = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
        self.torch = torch

    def encode(self, texts, policy):
        assert policy == "dense"
        with self.torch.inference_mode():
            return self.model.encode(texts, batch_size=32, convert_to_numpy=True), {}


class FastEmbedEngine:
    def __init__(self, model, threads, onnx_dir):
        import fastembed
        import onnxruntime
        # A local copy of the model in FastEmbed's layout: its ONNX file and the tokenizer files.
        self.model = fastembed.TextEmbedding(model_name="sentence-transformers/all-MiniLM-L6-v2",
                                             specific_model_path=onnx_dir, threads=threads)
        self.version = f"fastembed {fastembed.__version__}, onnxruntime {onnxruntime.__version__}"

    def encode(self, texts, policy):
        import numpy as np
        assert policy == "dense"
        return np.stack(list(self.model.embed(texts, batch_size=32))), {}


def worker(args):
    import numpy as np
    sets = json.loads(Path(args.texts).read_text())
    if args.worker == "sieve":
        engine = SieveEngine(args.model, args.threads)
    elif args.worker == "sentence-transformers":
        engine = SentenceTransformersEngine(args.model, args.threads)
    else:
        engine = FastEmbedEngine(args.model, args.threads, args.onnx_dir)
    for texts in sets.values():  # warm-up: first-call allocations, lazy initialization
        engine.encode(texts[:64], "dense")
    print(json.dumps({"ready": engine.version}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        texts = sets[request["set"]]
        start = time.perf_counter()
        vectors, stats = engine.encode(texts, request["policy"])
        seconds = time.perf_counter() - start
        if request.get("save"):
            np.save(request["save"], np.asarray(vectors, dtype=np.float32))
        print(json.dumps({"seconds": seconds, **stats}), flush=True)


# ---------------------------------------------------------------- driver

def load_sets(python, model):
    import pyarrow.parquet as pq
    short = [s.strip() for s in pq.read_table(ROOT.parent / "shared/data/glue/sst2/validation.parquet",
                                              columns=["sentence"]).column("sentence").to_pylist()]
    tsv = ROOT / "out/data/wiki-long-validation.tsv"
    if not tsv.exists():
        tsv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, str(ROOT / "tools/make_long_documents.py"), "--split", "validation",
                        "--model", model, "--out", str(tsv)], check=True)
    long = []
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        long.extend(line.split("\t")[:2])
    return {"short": short, "long": long}


class Worker:
    def __init__(self, engine, python, args, texts_file):
        command = [python, __file__, "--worker", engine, "--model", args.model, "--threads", str(args.threads),
                   "--texts", texts_file, "--onnx-dir", args.onnx_dir]
        self.name = engine
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = self.read()["ready"]

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited ({self.proc.wait()})")
        return json.loads(line)

    def run(self, set_name, policy, save=None):
        self.proc.stdin.write(json.dumps({"set": set_name, "policy": policy, "save": save}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def cosine_rows(a, b):
    import numpy as np
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["sieve", "sentence-transformers", "fastembed"], help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=str(ROOT / "models/all-MiniLM-L6-v2"))
    parser.add_argument("--onnx-dir", default=str(ROOT / "out/onnx-minilm"),
                        help="FastEmbed's model directory: model.onnx (tools/export_onnx.py) + tokenizer files")
    parser.add_argument("--peer-python", required=False, help="python of the venv with sentence-transformers and fastembed")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.peer_python:
        parser.error("--peer-python is required (the venv with sentence-transformers and fastembed)")

    import numpy as np
    onnx_dir = Path(args.onnx_dir)
    if not (onnx_dir / "model.onnx").exists():
        parser.error(f"{onnx_dir}/model.onnx missing: export it with tools/export_onnx.py (see --help)")
    for name in ["tokenizer.json", "special_tokens_map.json", "config.json"]:
        if not (onnx_dir / name).exists():
            (onnx_dir / name).write_bytes((Path(args.model) / name).read_bytes())
    # FastEmbed truncates at tokenizer_config.json's model_max_length (512 here; its max_length
    # argument does not override it), sentence-transformers and Sieve at the model's 256.
    tokenizer_config = json.loads((Path(args.model) / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = MAX_LENGTH
    (onnx_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    sets = load_sets(sys.executable, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = str(Path(tmp) / "texts.json")
        Path(texts_file).write_text(json.dumps(sets))
        workers = {"sieve": Worker("sieve", sys.executable, args, texts_file),
                   "sentence-transformers": Worker("sentence-transformers", args.peer_python, args, texts_file),
                   "fastembed": Worker("fastembed", args.peer_python, args, texts_file)}
        configs = [(engine, set_name, "dense") for set_name in sets for engine in workers]
        configs += [("sieve", set_name, PRESETS[set_name]) for set_name in sets]

        # Agreement: every engine's vectors against Sieve dense, and Sieve pruned against dense.
        saved = {}
        for engine, set_name, policy in configs:
            path = str(Path(tmp) / f"{engine}-{set_name}-{policy}.npy")
            workers[engine].run(set_name, policy, save=path)
            saved[engine, set_name, policy] = np.load(path)

        times = {config: [] for config in configs}
        stats = {}
        rng = random.Random(0)
        for round_index in range(args.rounds):
            order = configs[:]
            rng.shuffle(order)
            for config in order:
                result = workers[config[0]].run(config[1], config[2])
                times[config].append(result.pop("seconds"))
                stats[config] = result
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        versions = {name: w.version for name, w in workers.items()}
        for w in workers.values():
            w.close()

    rows = []
    for engine, set_name, policy in configs:
        seconds = statistics.median(times[engine, set_name, policy])
        anchor = statistics.median(times["sieve", set_name, "dense"])
        cos = cosine_rows(saved[engine, set_name, policy], saved["sieve", set_name, "dense"])
        rows.append({"engine": engine, "set": set_name, "policy": policy, "texts": len(sets[set_name]),
                     "median_s": seconds, "texts_per_s": len(sets[set_name]) / seconds,
                     "speed_vs_sieve_dense": anchor / seconds,
                     "cos_to_sieve_dense_mean": float(cos.mean()), "cos_to_sieve_dense_min": float(cos.min()),
                     "all_s": times[engine, set_name, policy], **stats.get((engine, set_name, policy), {})})
    print(f"{'set':6} {'engine':22} {'policy':18} {'texts/s':>9} {'vs sieve dense':>15} {'cos mean/min':>16}")
    for r in rows:
        print(f"{r['set']:6} {r['engine']:22} {r['policy']:18} {r['texts_per_s']:9.1f} {r['speed_vs_sieve_dense']:14.2f}x "
              f"{r['cos_to_sieve_dense_mean']:8.5f}/{r['cos_to_sieve_dense_min']:.5f}")
    if args.json:
        result = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": os.uname().nodename,
                  "cpus": os.cpu_count(), "threads": args.threads, "rounds": args.rounds, "batch_size": 32,
                  "max_length": MAX_LENGTH, "versions": versions, "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
