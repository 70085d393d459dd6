#!/usr/bin/env python3
"""Write the reference outputs that Sieve's C++ tests compare against.

OUT/hidden_states.jsonl holds one JSON line per sentence, computed by Hugging Face
transformers (fp32, eval mode, one sentence per forward pass, so no padding):
  text, ids, type_ids, last_hidden_state [tokens x hidden], mean_pooled,
  cls_pooled (only when the checkpoint has a pooler), logits (only for
  *ForSequenceClassification checkpoints).
OUT/stsb/pairs.tsv and OUT/stsb/reference.json: the first STSB_PAIRS pairs of STS-B validation and
what transformers + mean pooling + L2 normalization (sentence-transformers' pipeline for the
default model) gives on them: the cosine of each pair, Spearman and Pearson against the gold scores.
OUT/tokenizer_cases.jsonl is delegated to tools/make_tokenizer_cases.py when it exists.

Outputs are cached: they are rebuilt only when older than the model files or the tools.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import is_up_to_date, quiet_libraries, write_atomically

TOOLS_DIR = Path(__file__).resolve().parent
TOKENIZER_CASES_TOOL = TOOLS_DIR / "make_tokenizer_cases.py"
MAX_TOKENS = 512
STSB_PAIRS = 300
STSB_VALIDATION = TOOLS_DIR.parent.parent / "shared" / "data" / "stsb" / "validation.parquet"
SIGNIFICANT_DIGITS = 7

SENTENCES = [
    # Single words and tiny inputs.
    "Hello",
    "a",
    "!",
    "unbelievable",
    "42",
    "Supercalifragilisticexpialidocious",
    "x" * 120,  # longer than WordPiece's per-word limit: becomes [UNK]
    # Short everyday sentences.
    "The cat sat on the mat.",
    "How are you doing today?",
    "I love machine learning!",
    "Paris is the capital of France.",
    "This movie was terrible; I want my money back.",
    "What a wonderful day it is, isn't it?",
    "Transformers changed natural language processing forever.",
    "She sells sea shells by the sea shore.",
    # Casing, numbers and punctuation.
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "Version 3.14.159 was released on 2024-01-15 at 09:30 UTC.",
    "Call me at +1 (555) 012-3456 or email test.user@example.com.",
    "Wait... what?! No way -- that's (almost) impossible [citation needed].",
    "C++20 adds concepts, ranges & coroutines; Python 3.12 adds f-string tweaks.",
    "The price rose 12.5% to $1,234.56 (approx. EUR 1,130).",
    "\"Quoted,\" she said, 'nested quotes' too; semicolons; colons: dashes - and slashes/backslashes\\.",
    "Don't stop believin' -- it's the 90's, y'all.",
    "e-mail vs. email vs. E-Mail; snake_case vs. kebab-case vs. CamelCase",
    "#hashtag @mention https://example.org/path?query=1&other=two",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed   together",
    # Accents and other Latin-script languages.
    "Café au lait, crème brûlée et naïveté.",
    "Ünïcödé àccénts ärë strïppëd by lowercasing tokenizers.",
    "El niño comió jalapeños en la mañana.",
    "Straße, Größe und Übermut sind deutsche Wörter.",
    "São Paulo é a maior cidade do Brasil.",
    "Łódź and Kraków are cities in Poland; Dvořák was Czech.",
    "Ça va? Très bien, merci!",
    # Non-Latin scripts.
    "東京は日本の首都です。",
    "我爱自然语言处理。",
    "한국어 문장도 테스트합니다.",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Mixed 中文 and English 文本 with 日本語 too.",
    # Emoji and symbols.
    "I love pizza 🍕🍕🍕!",
    "Great job 👍🏽 team! 🎉",
    "Family: 👨‍👩‍👧‍👦 and flags: 🇫🇷🇯🇵",
    "Math: ∑ x² ≤ ∞, α β γ → λ.",
    "Currency: € £ ¥ ₹ ₿ ¢",
    "Box drawing ┌─┐ and arrows ← ↑ → ↓",
    # Medium-length sentences.
    "The committee postponed the vote until next week because several members were travelling abroad.",
    "Despite the heavy rain, thousands of fans waited outside the stadium for hours to catch a glimpse of the band.",
    "Researchers found that the new compound reduced inflammation in mice, but human trials are still years away.",
    "If you can keep your head when all about you are losing theirs, you may yet survive the meeting.",
    "A well-designed API makes the common case easy and the rare case possible, without surprising its users.",
    "The recipe calls for two cups of flour, a pinch of salt, three eggs, and a generous splash of milk.",
    "Quantum computers exploit superposition and entanglement to solve certain problems faster than classical machines.",
    "Bitte beachten Sie, dass der Zug heute wegen Bauarbeiten etwa fünfzehn Minuten Verspätung hat.",
    "Le gouvernement a annoncé de nouvelles mesures pour soutenir les petites entreprises après la crise.",
]

# Paragraphs repeated to build long inputs (about 40, 130, 260 and 300 tokens).
LONG_PARAGRAPHS = [
    "The history of computing is a story of abstraction layered upon abstraction. "
    "Early machines were programmed by rewiring panels, then by punching cards, "
    "then by typing symbolic instructions that assemblers translated into numbers. ",
    "Compilers let programmers describe intent rather than mechanism, and operating "
    "systems hid the details of disks, memory and devices behind tidy interfaces. "
    "Each layer traded a little efficiency for a great deal of human productivity. ",
    "Today, neural networks add yet another layer: instead of writing rules, engineers "
    "curate examples and let optimisation discover the rules. Whether this is progress "
    "or merely a new kind of complexity remains a lively debate — ¿quién sabe? 🤔 ",
]


def build_sentences():
    one_round = "".join(LONG_PARAGRAPHS)
    long_texts = [LONG_PARAGRAPHS[0], one_round, one_round * 2, one_round * 2 + LONG_PARAGRAPHS[0]]
    return SENTENCES + [text.strip() for text in long_texts]


def round_floats(values):
    """Round to a fixed number of significant digits: the file shrinks ~2x and fp32 keeps ~7 anyway."""
    if isinstance(values, list):
        return [round_floats(v) for v in values]
    return float(f"{values:.{SIGNIFICANT_DIGITS}g}")


def has_classification_head(model_dir: Path) -> bool:
    config = json.loads((model_dir / "config.json").read_text())
    return any(arch.endswith("ForSequenceClassification") for arch in config.get("architectures") or [])


def load_models(model_dir: Path):
    """Returns (tokenizer, encoder, pooler_is_real, classifier_or_None)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder, loading_info = AutoModel.from_pretrained(
        model_dir, torch_dtype=torch.float32, output_loading_info=True)
    # A pooler missing from the checkpoint is randomly initialised: its output would be noise.
    pooler_is_real = getattr(encoder, "pooler", None) is not None and not any(
        "pooler" in key for key in loading_info["missing_keys"])
    classifier = None
    if has_classification_head(model_dir):
        classifier = AutoModelForSequenceClassification.from_pretrained(
            model_dir, torch_dtype=torch.float32).eval()
    return tokenizer, encoder.eval(), pooler_is_real, classifier


def reference_record(text, tokenizer, encoder, pooler_is_real, classifier):
    import torch

    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=MAX_TOKENS,
                       return_token_type_ids=True)
    with torch.no_grad():
        output = encoder(**inputs)
        hidden = output.last_hidden_state[0]
        mask = inputs["attention_mask"][0].unsqueeze(-1).to(hidden.dtype)
        mean_pooled = (hidden * mask).sum(0) / mask.sum()
        record = {
            "text": text,
            "ids": inputs["input_ids"][0].tolist(),
            "type_ids": inputs["token_type_ids"][0].tolist(),
            "last_hidden_state": round_floats(hidden.tolist()),
            "mean_pooled": round_floats(mean_pooled.tolist()),
        }
        if pooler_is_real:
            record["cls_pooled"] = round_floats(output.pooler_output[0].tolist())
        if classifier is not None:
            record["logits"] = round_floats(classifier(**inputs).logits[0].tolist())
    return record


def write_hidden_states(model_dir: Path, out_file: Path):
    import torch

    quiet_libraries()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a fixed reduction order keeps the output byte-identical across runs
    tokenizer, encoder, pooler_is_real, classifier = load_models(model_dir)
    token_counts = []

    def write(handle):
        for text in build_sentences():
            record = reference_record(text, tokenizer, encoder, pooler_is_real, classifier)
            token_counts.append(len(record["ids"]))
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    write_atomically(out_file, write)
    extras = [name for name, present in (("cls_pooled", pooler_is_real),
                                         ("logits", classifier is not None)) if present]
    print(f"{out_file}: {len(token_counts)} sentences, {sum(token_counts)} tokens "
          f"(min {min(token_counts)}, max {max(token_counts)}), "
          f"extras: {', '.join(extras) or 'none'}, {out_file.stat().st_size / 1e6:.1f} MB")


def write_tokenizer_cases(model_dir: Path, out_file: Path):
    subprocess.run([sys.executable, str(TOKENIZER_CASES_TOOL), "--model", str(model_dir),
                    "--out", str(out_file)], check=True)
    with open(out_file, encoding="utf-8") as handle:
        case_count = sum(1 for _ in handle)
    print(f"{out_file}: {case_count} tokenizer cases")


def average_ranks(values):
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's default)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def write_stsb_reference(model_dir: Path, out_dir: Path):
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from glue_data import read_rows, write_tsv

    quiet_libraries()
    torch.set_num_threads(1)
    rows = read_rows(STSB_VALIDATION)[:STSB_PAIRS]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]

    def embed(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)

    first, second = embed([r[0][0] for r in rows]), embed([r[0][1] for r in rows])
    cosines = (first * second).sum(1).double().numpy()
    gold = np.array([r[1] for r in rows])
    record = {"pairs": len(rows), "cosines": cosines.tolist(),
              "spearman": float(np.corrcoef(average_ranks(cosines), average_ranks(gold))[0, 1]),
              "pearson": float(np.corrcoef(cosines, gold)[0, 1])}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "pairs.tsv", lambda handle: write_tsv(rows, handle))
    write_atomically(out_dir / "reference.json", lambda handle: handle.write(json.dumps(record) + "\n"))
    print(f"{out_dir}: {len(rows)} STS-B validation pairs, Spearman {record['spearman']:.5f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--force", action="store_true", help="rebuild even if outputs look fresh")
    args = parser.parse_args()

    own_sources = [Path(__file__), TOOLS_DIR / "common.py"]
    hidden_states = args.out / "hidden_states.jsonl"
    if args.force or not is_up_to_date(hidden_states, [args.model, *own_sources]):
        write_hidden_states(args.model, hidden_states)
    else:
        print(f"{hidden_states}: up to date")

    exit_fixture = args.out / "exit-fixture"
    exit_tool = TOOLS_DIR / "train_exits.py"
    if args.force or not is_up_to_date(exit_fixture / "exits-block" / "reference.jsonl",
                                       [args.model, exit_tool, TOOLS_DIR / "common.py"]):
        from train_exits import write_fixture  # imports torch: only when the fixture is stale

        write_fixture(args.model, exit_fixture)
    else:
        print(f"{exit_fixture}: up to date")

    stsb = args.out / "stsb"
    if not STSB_VALIDATION.is_file():
        print(f"{STSB_VALIDATION}: not found, no STS-B reference")
    elif args.force or not is_up_to_date(stsb / "reference.json", [args.model, *own_sources, STSB_VALIDATION]):
        write_stsb_reference(args.model, stsb)
    else:
        print(f"{stsb}: up to date")

    if TOKENIZER_CASES_TOOL.is_file():
        cases = args.out / "tokenizer_cases.jsonl"
        if args.force or not is_up_to_date(cases, [args.model, TOKENIZER_CASES_TOOL, TOOLS_DIR / "common.py"]):
            write_tokenizer_cases(args.model, cases)
        else:
            print(f"{cases}: up to date")


if __name__ == "__main__":
    main()
