#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, cut from the repository's real files and test fixtures.

Usage: make_seeds.py OUT_DIR. Writes OUT_DIR/<target>/<name> for each fuzz target; a source file
that is missing (no models/ yet) is skipped. Only the standard library is used, so it runs before
the project's venv exists. Large real files are cut down (a 700 kB tokenizer.json would make every
fuzz input that long) while keeping their structure.
"""
import json
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"
GPT2_TOKENIZER = ROOT / "models" / "gpt2-tokenizer"
REFERENCE = Path(os.environ.get("SIEVE_REFERENCE_DIR", ROOT / "build" / "reference"))
SEPARATOR = "\n----\n"


def write(out: Path, target: str, name: str, data) -> None:
    path = out / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def safetensors(tensors) -> bytes:
    """A valid file: {name: (dtype, shape, raw bytes)}."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds(out: Path) -> None:
    floats = struct.pack("<6f", 0.5, -1.0, 2.0, 0.0, 1e-3, 3.0)
    write(out, "fuzz_safetensors", "f32", safetensors({"w": ("F32", [2, 3], floats)}))
    write(out, "fuzz_safetensors", "mixed", safetensors({
        "a": ("F16", [2], b"\x00\x3c\x00\xc0"), "b": ("BF16", [2], b"\x80\x3f\x00\x40"),
        "ids": ("I64", [1], struct.pack("<q", 7)), "empty": ("F32", [0], b"")}))
    header = json.dumps({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    write(out, "fuzz_safetensors", "metadata", struct.pack("<Q", len(header)) + header.encode() + floats[:4])
    # The real header of an exit-classifier file, with the first 4 kB of its data.
    for variant in ("exits-light", "exits-fastbert"):
        path = REFERENCE / "exit-fixture" / variant / "exits.safetensors"
        if path.exists():
            with path.open("rb") as f:
                length = struct.unpack("<Q", f.read(8))[0]
                write(out, "fuzz_safetensors", variant, struct.pack("<Q", length) + f.read(length + 4096))


def model_json_seeds(out: Path) -> None:
    sources = [MINILM / "config.json", MINILM / "sentence_bert_config.json", MINILM / "modules.json",
               MINILM / "1_Pooling" / "config.json", REFERENCE / "gpt2-random" / "config.json",
               REFERENCE / "exit-fixture" / "model" / "config.json"]
    sources += sorted((REFERENCE / "exit-fixture").glob("exits-*/exits.json"))
    for path in sources:
        if path.exists():
            write(out, "fuzz_model_json", "-".join(path.parts[-2:]), path.read_bytes())
    # `sieve sim` traces and configs go through the same target.
    write(out, "fuzz_model_json", "encoder-trace.json",
          '{"kind": "encoder", "source": "s", "shape": {"layers": 2, "heads": 2, "hidden": 16, "head_dim": 8, '
          '"max_tokens": 64}, "settings": [{"spec": "dense", "inputs": [[[10, 2, 0, 0, 0, 0], [10, 2, 0, 0, 0, 0]]]}, '
          '{"spec": "cta", "inputs": [[[10, 2, 2, 8, 6, 2], [4, 1, 0, 0, 0, 0]]]}]}')
    write(out, "fuzz_model_json", "decoder-trace.json",
          '{"kind": "decoder", "shape": {"layers": 2, "kv_heads": 1, "query_heads": 3, "head_dim": 4}, "settings": '
          '[{"spec": "dense", "steps": 10, "perplexity": 20.5, "key_elements": 100, "key_bits": 3200, '
          '"refetched_key_elements": 0, "key_bytes": 400, "value_elements": 100, "value_bytes": 400, '
          '"head_reads": 2, "lsb_refetches": 0}]}')
    write(out, "fuzz_model_json", "sim-config.json", '{"sa_width": 8, "dense_bits": 12, "paper_token_width": 1}')


def wordpiece_seeds(out: Path) -> None:
    vocab_path, tokenizer_path = MINILM / "vocab.txt", MINILM / "tokenizer.json"
    if not vocab_path.exists() or not tokenizer_path.exists():
        return
    vocab = vocab_path.read_text(encoding="utf-8").split("\n")[:400]
    document = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    document["model"]["vocab"] = {token: i for i, token in enumerate(vocab) if token}
    document["added_tokens"] = [t for t in document.get("added_tokens", []) if t["id"] < len(vocab)]
    tokenizer_json = json.dumps(document)
    config = (MINILM / "tokenizer_config.json").read_text(encoding="utf-8")
    write(out, "fuzz_wordpiece_files", "tokenizer-json-only", tokenizer_json)
    write(out, "fuzz_wordpiece_files", "all-three", tokenizer_json + SEPARATOR + "\n".join(vocab) + SEPARATOR + config)
    write(out, "fuzz_wordpiece_files", "vocab-txt", "{}" + SEPARATOR + "\n".join(vocab))


def text_seeds(out: Path) -> None:
    texts = ["Hello, world!", "unaffable naïve café", "你好世界 and 日本語", "a\u0301\u0316 e\u0308", "[CLS] [MASK] [SEP]",
             "it's 2024 <|endoftext|> done", "\t tabs \r\n and   spaces ", "emoji 🤗🎉", "\x00\x01 controls"]
    cases = REFERENCE / "tokenizer_cases.jsonl"
    if cases.exists():
        for line in cases.read_text(encoding="utf-8").splitlines()[:150]:
            case = json.loads(line)
            texts.append(case["text"] + ("\0" + case["text_pair"] if case.get("text_pair") else ""))
    for i, text in enumerate(texts):
        data = text.encode("utf-8")
        write(out, "fuzz_wordpiece_encode", f"text-{i}", bytes([i % 256]) + data)
        write(out, "fuzz_bpe_encode", f"text-{i}", data)


def bpe_file_seeds(out: Path) -> None:
    vocab_path, merges_path = GPT2_TOKENIZER / "vocab.json", GPT2_TOKENIZER / "merges.txt"
    if not vocab_path.exists() or not merges_path.exists():
        return
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    small = {token: i for token, i in vocab.items() if i < 600}
    merges = []
    for line in merges_path.read_text(encoding="utf-8").splitlines()[1:]:
        left, right = line.split(" ")
        if left in small and right in small and left + right in small:
            merges.append(line)
    write(out, "fuzz_bpe_files", "vocab-and-merges", json.dumps(small) + SEPARATOR + "#version: 0.2\n" + "\n".join(merges))
    tokenizer_json = {"added_tokens": [{"id": 599, "content": "<|endoftext|>"}],
                      "model": {"type": "BPE", "vocab": small, "merges": merges[:50]}}
    write(out, "fuzz_bpe_files", "tokenizer-json", json.dumps(tokenizer_json))


def policy_seeds(out: Path) -> None:
    specs = ["dense", "spatten:tokens=0.3,heads=0.75", "spatten:token_ratios=1/1/0.8/0.6/0.5/0.4,start=2,at=next",
             "ltp:final=0.02", "ltp:thresholds=0/0.01/0.02/0.03/0.04/0.05", "cta:w=24,l=6,seed=3,layers=0-2/5,share=layer",
             "spatten:tokens=0.2+cta:w=16", "kv_prune:keep=0.5,recent=4", "value_prune:k=16,renorm=1",
             "progressive:msb=4,lsb=4,threshold=0.1", "kv_prune:keep=0.5+value_prune:k=16+progressive"]
    for i, spec in enumerate(specs):
        write(out, "fuzz_policy_spec", f"spec-{i}", spec)


def gguf(metadata, tensors) -> bytes:
    """A valid GGUF v3 file: metadata {key: (type id, value)} (8 = string, 9 = (element type, list)),
    tensors {name: (ggml type, ne, raw bytes)}, data aligned to 32."""
    def string(text):
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    scalar = {0: "<B", 1: "<b", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def value(kind, v):
        if kind == 8:
            return string(v)
        if kind == 9:
            element, items = v
            return struct.pack("<IQ", element, len(items)) + b"".join(value(element, i) for i in items)
        return struct.pack(scalar[kind], v)

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, (kind, v) in metadata.items():
        out += string(key) + struct.pack("<I", kind) + value(kind, v)
    data, offsets = b"", []
    for name, (ggml_type, ne, raw) in tensors.items():
        offsets.append(len(data))
        data += raw + b"\0" * (-len(raw) % 32)
    for (name, (ggml_type, ne, raw)), offset in zip(tensors.items(), offsets):
        out += string(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", ggml_type, offset)
    return out + b"\0" * (-len(out) % 32) + data


def gguf_seeds(out: Path) -> None:
    types = ROOT / "tests" / "fixtures" / "smollm2" / "types.gguf"
    if types.exists():
        write(out, "fuzz_gguf", "types", types.read_bytes())
    # A tiny "llama": the metadata the decoder and the tokenizer read, one F32 and one Q8_0 tensor.
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = [b for b in range(256) if b not in printable]  # GPT-2's bytes_to_unicode: these map to U+0100..
    byte_tokens = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))] + ["\u0120a", "ab"]
    metadata = {
        "general.architecture": (8, "llama"), "llama.embedding_length": (4, 32), "llama.feed_forward_length": (4, 64),
        "llama.block_count": (4, 1), "llama.attention.head_count": (4, 4), "llama.attention.head_count_kv": (4, 2),
        "llama.context_length": (4, 64), "llama.rope.freq_base": (6, 10000.0),
        "llama.attention.layer_norm_rms_epsilon": (6, 1e-5), "tokenizer.ggml.model": (8, "gpt2"),
        "tokenizer.ggml.pre": (8, "smollm"), "tokenizer.ggml.tokens": (9, (8, byte_tokens)),
        "tokenizer.ggml.token_type": (9, (5, [1] * len(byte_tokens))), "tokenizer.ggml.merges": (9, (8, ["\u0120 a", "a b"])),
        "tokenizer.ggml.eos_token_id": (4, 0),
    }
    q8_block = struct.pack("<H", 0x3C00) + bytes(range(32))  # d = 1.0 (fp16), codes 0..31
    tensors = {"output_norm.weight": (0, [32], struct.pack("<32f", *([1.0] * 32))),
               "token_embd.weight": (8, [32, 2], q8_block * 2)}
    write(out, "fuzz_gguf", "tiny_llama", gguf(metadata, tensors))


def main() -> None:
    out = Path(sys.argv[1])
    safetensors_seeds(out)
    gguf_seeds(out)
    model_json_seeds(out)
    wordpiece_seeds(out)
    text_seeds(out)
    bpe_file_seeds(out)
    policy_seeds(out)


if __name__ == "__main__":
    main()
