#!/usr/bin/env python3
"""Tokenize every line of tests/fixtures/smollm2/tokenizer.jsonl with llama.cpp (llama-cpp-python,
vocab only) and report how many ids match the reference: a check that the transformers-based
reference and llama.cpp agree (special parsing per line's "special"; no BOS).

Runs in /opt/venv-llama (see tools/wikitext_perplexity_reference.py). Exit status 1 on any mismatch.
  /opt/venv-llama/bin/python tools/check_tokenizer_llama_cpp.py
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT  # noqa: E402
from smollm2_common import default_gguf  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--cases", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "smollm2" / "tokenizer.jsonl")
    args = parser.parse_args()
    from llama_cpp import Llama

    llm = Llama(model_path=str(args.gguf or default_gguf()), vocab_only=True, verbose=False)
    # split("\n"), not splitlines(): the texts hold raw U+0085 and U+2028, which json does not escape.
    lines = args.cases.read_text(encoding="utf-8").split("\n")
    cases = [json.loads(line) for line in lines if line]
    mismatches = 0
    for case in cases:
        # add_bos=True on purpose: llama.cpp adds a BOS only if the GGUF asks (it does not).
        ids = llm.tokenize(case["text"].encode("utf-8"), add_bos=True, special=case["special"])
        if ids != case["ids"]:
            mismatches += 1
            print(f"{case['text']!r} special={case['special']}: reference {case['ids']} llama.cpp {ids}")
    print(f"{args.cases.name}: {len(cases) - mismatches}/{len(cases)} match llama.cpp")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
