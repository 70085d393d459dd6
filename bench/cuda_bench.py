#!/usr/bin/env python3
"""Sieve CUDA vs PyTorch on the same GPU, in one run (issue 6).

Measures, for a BERT-base-sized model (12 layers, hidden 768, 12 heads, FP16):
  attention alone   Sieve's fused kernels (one pass; two passes without and with the pruning statistics)
                    vs torch.nn.functional.scaled_dot_product_attention on [batch, 12, seq, 64]
  end to end        Sieve CUDA (dense and pruned policies) vs Hugging Face BertModel, eager
                    attention and SDPA attention, both .half() on the device
at seq 128/384/512 and batch 1/8/32 by default, and writes one JSON file plus a table on stdout.

  python3 bench/cuda_bench.py --sieve-bench build-cuda/sieve_cuda_bench --out out/cuda_bench.json

Without --model it writes a random-weight BERT-base checkpoint (FP16 safetensors, HF layout) to
--scratch first, so Sieve and PyTorch run the very same weights. Needs torch with CUDA and
transformers (the device image has both).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile


def parse_list(s):
    return [int(x) for x in s.split(",") if x]


def synthetic_ids(batch, seq):
    # The same ids as `sieve bench` and sieve_cuda_bench: [CLS] w... [SEP].
    rows = []
    for j in range(batch):
        rows.append([101 if i == 0 else 102 if i == seq - 1 else 1000 + (i * 7919 + j * 104729) % 20000
                     for i in range(seq)])
    return rows


def summarize(ms):
    ms = sorted(ms)
    at = lambda q: ms[int(q * (len(ms) - 1) + 0.5)]
    return {"median_ms": at(0.5), "p10_ms": at(0.1), "p90_ms": at(0.9), "runs": len(ms)}


def time_cuda(torch, fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ms.append(start.elapsed_time(stop))
    return summarize(ms)


def make_random_bert_base(path, torch, transformers):
    if os.path.exists(os.path.join(path, "model.safetensors")):
        return path
    config = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, max_position_embeddings=512, hidden_act="gelu")
    torch.manual_seed(0)
    model = transformers.BertModel(config).half()
    model.save_pretrained(path)  # safetensors is the default format since transformers 4.35
    return path


def bench_torch(args, torch, transformers, model_dir):
    results = []
    dev = torch.device("cuda")
    # Attention alone: SDPA on the shapes Sieve's kernel runs (equal lengths: no padding either side).
    for seq in args.seq:
        for batch in args.batch:
            q, k, v = (torch.randn(batch, 12, seq, 64, device=dev, dtype=torch.float16) for _ in range(3))
            with torch.inference_mode():
                r = time_cuda(torch, lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
                              args.warmup, args.repeats)
            r.update(engine="torch-sdpa-attention", seq=seq, batch=batch, heads=12, head_dim=64)
            results.append(r)
            print(f"torch sdpa attention seq {seq} batch {batch}: {r['median_ms']:.3f} ms", file=sys.stderr)
    # End to end: HF BertModel in FP16, eager and SDPA attention.
    for impl in ("eager", "sdpa"):
        # transformers 5 renamed torch_dtype to dtype.
        dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        model = transformers.BertModel.from_pretrained(model_dir, attn_implementation=impl,
                                                       **{dtype_arg: torch.float16}).to(dev).eval()
        for seq in args.seq:
            for batch in args.batch:
                ids = torch.tensor(synthetic_ids(batch, seq), device=dev)
                mask = torch.ones_like(ids)
                with torch.inference_mode():
                    r = time_cuda(torch, lambda: model(input_ids=ids, attention_mask=mask), args.warmup,
                                  args.repeats)
                r.update(engine=f"hf-bert-{impl}", seq=seq, batch=batch)
                results.append(r)
                print(f"hf bert {impl} seq {seq} batch {batch}: {r['median_ms']:.3f} ms", file=sys.stderr)
        del model
        torch.cuda.empty_cache()
    return results


def run_sieve(args, model_dir, attention_only):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [args.sieve_bench, "--seq", ",".join(map(str, args.seq)), "--batch", ",".join(map(str, args.batch)),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--json", out]
    if attention_only:
        cmd += ["--attention-only", "--heads", "12", "--head-dim", "64"]
    else:
        cmd += ["--model", model_dir]
        for p in args.policy:
            cmd += ["--policy", p]
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    with open(out) as f:
        data = json.load(f)
    os.unlink(out)
    return data


def table(results):
    by = {(r["engine"], r.get("policy", ""), r["seq"], r["batch"]): r["median_ms"] for r in results}
    lines = ["| seq | batch | Sieve 1-pass ms | Sieve 2-pass ms | Sieve 2-pass+stats ms | SDPA ms | Sieve 1-pass/SDPA |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["seq"], r["batch"]) for r in results})
    for seq, batch in keys:
        a = by.get(("sieve-cuda-attention", "", seq, batch))
        two = by.get(("sieve-cuda-attention-two-pass", "", seq, batch))
        s = by.get(("sieve-cuda-attention+stats", "", seq, batch))
        t = by.get(("torch-sdpa-attention", "", seq, batch))
        if a and t:
            fmt = lambda x: f"{x:.3f}" if x else "-"
            lines.append(f"| {seq} | {batch} | {a:.3f} | {fmt(two)} | {fmt(s)} | {t:.3f} | {a / t:.2f} |")
    policies = sorted({r.get("policy") for r in results if r["engine"] == "sieve-cuda"})
    lines += ["", "| seq | batch | HF eager ms | HF sdpa ms | " + " | ".join(f"Sieve {p} ms" for p in policies) + " |",
              "|---:|---:|---:|---:|" + "---:|" * len(policies)]
    for seq, batch in keys:
        e = by.get(("hf-bert-eager", "", seq, batch))
        d = by.get(("hf-bert-sdpa", "", seq, batch))
        cells = [by.get(("sieve-cuda", p, seq, batch)) for p in policies]
        fmt = lambda x: f"{x:.3f}" if x is not None else "-"
        lines.append(f"| {seq} | {batch} | {fmt(e)} | {fmt(d)} | " + " | ".join(fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sieve-bench", default="build-cuda/sieve_cuda_bench")
    ap.add_argument("--model", help="HF BERT directory (default: a random BERT-base written to --scratch)")
    ap.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "sieve-bert-base-random-fp16"))
    ap.add_argument("--seq", type=parse_list, default=[128, 384, 512])
    ap.add_argument("--batch", type=parse_list, default=[1, 8, 32])
    ap.add_argument("--policy", action="append",
                    help="Sieve policies (repeatable; default dense, spatten:tokens=0.5, spatten:tokens=0.3, "
                         "spatten:tokens=0.5,heads=0.75)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--skip-torch", action="store_true", help="only run Sieve")
    ap.add_argument("--out", default="out/cuda_bench.json")
    args = ap.parse_args()
    if not args.policy:
        args.policy = ["dense", "spatten:tokens=0.5", "spatten:tokens=0.3", "spatten:tokens=0.5,heads=0.75"]
    elif "dense" not in args.policy:
        args.policy.insert(0, "dense")

    import torch
    import transformers
    if not torch.cuda.is_available():
        sys.exit("cuda_bench.py: torch sees no CUDA device")
    model_dir = args.model or make_random_bert_base(args.scratch, torch, transformers)

    # Each part is recorded even when another fails: device time is scarce, a rerun may not be possible.
    results, errors = [], []
    sieve_attn, sieve_e2e = {}, {}
    for name, attention_only in (("attention", True), ("end-to-end", False)):
        try:
            part = run_sieve(args, model_dir, attention_only)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            errors.append(f"sieve {name}: {e}")
            print(f"cuda_bench.py: sieve {name} failed: {e}", file=sys.stderr)
            continue
        results += part["results"]
        if attention_only:
            sieve_attn = part
        else:
            sieve_e2e = part
    if not args.skip_torch:
        results += bench_torch(args, torch, transformers, model_dir)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0),
        "sieve_device": sieve_e2e.get("device") or sieve_attn.get("device"),
        "errors": errors,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": model_dir,
        "dtype": "float16",
        "warmup": args.warmup,
        "repeats": args.repeats,
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"{report['device']}, {report['date']}, torch {report['torch']}")
    print(table(results))
    if errors:
        sys.exit("cuda_bench.py: " + "; ".join(errors))


if __name__ == "__main__":
    main()
