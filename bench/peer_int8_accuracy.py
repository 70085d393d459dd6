#!/usr/bin/env python3
"""Accuracy of the int8 peers (issue 19), fp32 peers beside them as the anchor:
- a sentence-pair TSV with scores (STS-B): each engine's embeddings, mean-pooled over the attention
  mask and normalized as sentence-transformers does for all-MiniLM-L6-v2 -> Spearman;
- a labelled TSV (sentence<TAB>label, SST-2) and a BertForSequenceClassification directory: each
  engine's last hidden state of [CLS] through the checkpoint's own pooler (dense + tanh) and
  classifier, in fp32 numpy for every engine (the engines export the encoder only) -> accuracy.
Sieve's own numbers come from `sieve eval --precision int8` on the same file (README, "int8 on the CPU").

Needs the peers' Python (bench/run_int8_bench.sh says how to make it).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines  # noqa: E402


def read_pairs(path: Path):
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([float(r[2]) for r in rows])


def read_labelled(path: Path):
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def classifier_head(model_dir: Path):
    """[CLS] hidden state [b, h] -> logits [b, labels], BertForSequenceClassification's pooler and classifier."""
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    pool_w, pool_b = weights["bert.pooler.dense.weight"], weights["bert.pooler.dense.bias"]
    out_w, out_b = weights["classifier.weight"], weights["classifier.bias"]
    return lambda cls: np.tanh(cls @ pool_w.T + pool_b) @ out_w.T + out_b


def hidden_states(engine, tokenizer, texts, batch: int, max_length: int, threads: int):
    """Yields (last_hidden_state [b, s, h], attention_mask [b, s]) per batch, padded to the batch's longest."""
    for start in range(0, len(texts), batch):
        encoded = tokenizer(texts[start:start + batch], padding=True, truncation=True, max_length=max_length,
                            return_tensors="np")
        inputs = {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        yield engine(inputs, threads), inputs["attention_mask"]


def make_runner(name: str, args):
    """A function inputs -> last_hidden_state, for variable shapes."""
    if name.startswith("ort"):
        engine = baselines.make_engine(name, args)
        session = None

        def run(inputs, threads):
            nonlocal session
            if session is None:
                engine.runner(inputs, threads)  # makes the session for this thread count
                session = engine.sessions[threads]
            feeds = {node.name: inputs[node.name] for node in session.get_inputs()}
            return session.run(None, feeds)[0]
        return run
    if name.startswith("ov-"):
        engine = baselines.make_engine(name, args)
        compiled = None

        def run(inputs, threads):
            nonlocal compiled
            if compiled is None:  # dynamic shapes: compiled once
                hint = "bf16" if engine.precision == "bf16" else "f32"
                compiled = engine.core.compile_model(engine.model, "CPU", {
                    "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint})
            feeds = {p.get_any_name(): inputs[p.get_any_name()] for p in compiled.inputs}
            return next(iter(compiled(feeds).values()))
        return run
    if name == "ct2-int8":
        engine = baselines.make_engine(name, args)

        def run(inputs, threads):
            encoder = engine.encoders.get(threads)
            if encoder is None:
                engine.runner(inputs, threads)
                encoder = engine.encoders[threads]
            ids = [row[mask.astype(bool)].tolist() for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
            out = np.array(encoder.forward_batch(ids).last_hidden_state)
            return out[:, :inputs["input_ids"].shape[1]]
        return run
    if name == "deepsparse":
        # Neural Magic's DeepSparse (issue 22: the CPU engine built for sparse BERTs). It compiles
        # for fixed shapes, as its own pipelines run it: every batch padded to --batch rows and
        # --deepsparse-length tokens (the extra rows dropped after), one engine made on first use.
        import deepsparse
        engines = {}

        def run(inputs, threads):
            rows, length = inputs["input_ids"].shape
            batch, fixed = args.batch, args.deepsparse_length
            if length > fixed:
                raise SystemExit(f"deepsparse: a batch has {length} tokens, over --deepsparse-length {fixed}")
            engine = engines.get(threads)
            if engine is None:
                engine = engines[threads] = deepsparse.Engine(model=str(args.onnx), batch_size=batch, num_cores=threads,
                                                              input_shapes=[[batch, fixed]] * 3)
            feeds = []
            for name in ("input_ids", "attention_mask", "token_type_ids"):
                padded = np.zeros((batch, fixed), dtype=np.int64)
                padded[:rows, :length] = inputs[name]
                feeds.append(padded)
            return engine.run(feeds)[0][:rows, :length]
        return run
    raise SystemExit(f"unknown engine {name}")


def spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).correlation)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True, help="sentences for ov-int8 (a train slice)")
    parser.add_argument("--data", type=Path, required=True, help="sentence1<TAB>sentence2<TAB>score, or sentence<TAB>label, with a header")
    parser.add_argument("--work-dir", type=Path, default=Path("out/peers"))
    parser.add_argument("--engines", default="ort,ort-int8,ct2-int8,ov-fp32,ov-int8")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    baselines.quiet_libraries()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    header = args.data.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
    classify = header == ["sentence", "label"]
    if classify:
        texts, labels = read_labelled(args.data)
        head = classifier_head(args.model)
    else:
        first, second, gold = read_pairs(args.data)
        texts = first + second
    results = []
    anchor = None
    for name in [n for n in args.engines.split(",") if n]:
        run = make_runner(name, args)
        if classify:
            logits = np.concatenate([head(hidden[:, 0, :].astype(np.float32)) for hidden, _ in
                                     hidden_states(run, tokenizer, texts, args.batch, args.max_length, args.threads)])
            result = {"engine": name, "accuracy": round(100 * float(np.mean(logits.argmax(axis=1) == labels)), 2)}
            if anchor is None:
                anchor = logits
            else:
                result["prediction_agreement_with_first"] = round(
                    100 * float(np.mean(logits.argmax(axis=1) == anchor.argmax(axis=1))), 2)
            results.append(result)
            baselines.log(json.dumps(result))
            continue
        vectors = []
        for hidden, mask in hidden_states(run, tokenizer, texts, args.batch, args.max_length, args.threads):
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            vectors.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        vectors = np.concatenate(vectors)
        n = len(first)
        cosines = np.sum(vectors[:n] * vectors[n:], axis=1)
        result = {"engine": name, "spearman": round(100 * spearman(cosines, gold), 2)}
        if anchor is None:
            anchor = vectors
        else:
            result["mean_cos_to_first"] = round(float(np.mean(np.sum(vectors * anchor, axis=1))), 5)
        results.append(result)
        baselines.log(json.dumps(result))
    args.out.write_text(json.dumps({"data": str(args.data), "machine": baselines.machine_info(),
                                    "results": results}, indent=2) + "\n")
    baselines.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
