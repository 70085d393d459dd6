#!/usr/bin/env python3
"""llama.cpp's side of the SmolLM2 speed benchmark (Sieve's numbers are added next to these).

Batch 1, --threads (default 2) for both prompt and decode, through llama-cpp-python:
  prompt   tokens/s evaluating the first 128 and 512 tokens of wiki.test.raw from an empty cache
           (median of --reps, after one discarded warm-up run)
  decode   tokens/s over 128 greedy tokens after a 128-token prompt, for KV cache f16, q8_0 and
           q4_0 (K and V both); and 64 greedy tokens after 1024- and 4096-token prompts
           (median of --reps, --long-reps for the long prompts: a 4k prompt takes a while on 2 cores)
Needs an otherwise idle machine: with more runnable threads than cores, single reps stall by seconds
(load averages before/after are recorded; seconds_all shows each rep).
Greedy = numpy argmax of the last logits, one llama_decode per token, as Sieve's loop does.
Prompt ids: the shared wiki.test ids cache of tools/wikitext_perplexity_reference.py when it exists,
else llama.cpp's own tokenization of the text (speed does not depend on which).
Flash attention is on (llama.cpp's default 'auto' picks it on CPU; a q4_0 V cache requires it).

Output: JSON (stdout, or --out FILE). Importable: run_all(...) and the measure_* functions return dicts.
Environment: /opt/venv-llama (see tools/wikitext_perplexity_reference.py for the install command).
  /opt/venv-llama/bin/python bench/llama_cpp_speed.py --out build/bench/llama_cpp_speed.json
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from common import REPO_ROOT, log, write_atomically  # noqa: E402
from smollm2_common import WIKITEXT_TEST, default_gguf  # noqa: E402

IDS_CACHE = REPO_ROOT / "build" / "reference" / "smollm2" / "wiki.test.ids.npy"
KV_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}  # GGML type ids (ggml.h)


def open_model(gguf_path: Path, n_ctx: int, threads: int = 2, kv: str = "f16", flash_attn: bool = True):
    from llama_cpp import Llama

    return Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=threads,
                 n_threads_batch=threads, logits_all=False, flash_attn=flash_attn,
                 type_k=KV_TYPES[kv], type_v=KV_TYPES[kv], verbose=False)


def prompt_ids(llm, count: int) -> list:
    if IDS_CACHE.is_file():
        ids = np.load(IDS_CACHE)
    else:  # 1.3 MB is more than any prompt needs
        ids = np.asarray(llm.tokenize(WIKITEXT_TEST.read_bytes()[:200000], add_bos=False, special=False))
    assert len(ids) >= count
    return [int(i) for i in ids[:count]]


def last_argmax(llm) -> int:
    import llama_cpp

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def measure_prompt(llm, ids: list, reps: int = 5) -> dict:
    """Prompt processing of ids from an empty cache; median over reps after one warm-up."""
    times = []
    for rep in range(reps + 1):
        llm.reset()  # n_tokens = 0: eval() drops every cached position first
        start = time.perf_counter()
        llm.eval(ids)
        if rep:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"tokens": len(ids), "reps": reps, "seconds_median": median, "tokens_per_s": len(ids) / median,
            "tokens_per_s_best": len(ids) / min(times), "seconds_all": [round(t, 4) for t in times]}


def measure_decode(llm, ids: list, new_tokens: int, reps: int = 3) -> dict:
    """Greedy decode of new_tokens after the prompt ids; only the decode steps are timed."""
    times, generated = [], []
    for _ in range(reps):
        llm.reset()
        llm.eval(ids)
        generated = [last_argmax(llm)]
        start = time.perf_counter()
        for _ in range(new_tokens):
            llm.eval([generated[-1]])
            generated.append(last_argmax(llm))
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"prompt_tokens": len(ids), "new_tokens": new_tokens, "reps": reps, "seconds_median": median,
            "tokens_per_s": new_tokens / median, "tokens_per_s_best": new_tokens / min(times),
            "seconds_all": [round(t, 4) for t in times],
            "generated_head": generated[:16]}


def run_all(gguf_path: Path = None, threads: int = 2, reps: int = 5, decode_reps: int = 3, long_reps: int = 1,
            long_contexts=(1024, 4096), kv_types=("f16", "q8_0", "q4_0")) -> dict:
    import llama_cpp

    gguf_path = gguf_path or default_gguf()
    result = {"engine": "llama.cpp", "llama_cpp_python": llama_cpp.__version__, "model": gguf_path.name,
              "threads": threads, "batch": 1, "flash_attn": True, "host": platform.node(),
              "cpu_count": os.cpu_count(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "load_average_before": os.getloadavg(), "prompt": [], "decode": []}
    max_ctx = max(long_contexts, default=0) + 128
    for kv in kv_types:
        llm = open_model(gguf_path, max(max_ctx, 1024), threads, kv)
        ids = prompt_ids(llm, max(max_ctx, 512))
        if kv == "f16":
            for n in (128, 512):
                entry = {"kv": kv, **measure_prompt(llm, ids[:n], reps)}
                log(f"prompt {n} kv {kv}: {entry['tokens_per_s']:.1f} tok/s")
                result["prompt"].append(entry)
        entry = {"kv": kv, **measure_decode(llm, ids[:128], 128, decode_reps)}
        log(f"decode 128 after 128, kv {kv}: {entry['tokens_per_s']:.1f} tok/s")
        result["decode"].append(entry)
        for context in long_contexts:
            entry = {"kv": kv, **measure_decode(llm, ids[:context], 64, long_reps)}
            log(f"decode 64 after {context}, kv {kv}: {entry['tokens_per_s']:.1f} tok/s")
            result["decode"].append(entry)
        del llm
    # On a shared 2-core machine another process's load stalls llama.cpp's spinning threads by
    # whole seconds (seen: one 128-token decode rep at 23 s, the others 1.2 s): check these.
    result["load_average_after"] = os.getloadavg()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5, help="prompt-processing repetitions (median)")
    parser.add_argument("--decode-reps", type=int, default=3)
    parser.add_argument("--long-reps", type=int, default=1, help="repetitions for the 1k/4k-context decodes")
    parser.add_argument("--long-contexts", default="1024,4096", help="comma list; empty to skip")
    parser.add_argument("--kv", default="f16,q8_0,q4_0", help="KV cache types to decode with")
    parser.add_argument("--out", default="-", help="JSON file, or - for stdout")
    args = parser.parse_args()
    contexts = tuple(int(c) for c in args.long_contexts.split(",") if c)
    result = run_all(args.gguf, args.threads, args.reps, args.decode_reps, args.long_reps, contexts,
                     tuple(args.kv.split(",")))
    text = json.dumps(result, indent=1)
    if args.out == "-":
        print(text)
    else:
        write_atomically(Path(args.out), lambda h: h.write(text + "\n"))
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
