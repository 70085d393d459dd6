#!/usr/bin/env python3
"""Write tests/data/wordpiece_offsets_reference.json: Hugging Face's WordPiece offsets in bytes.

For each text, what transformers' fast tokenizer for all-MiniLM-L6-v2 (AutoTokenizer,
use_fast=True) gives with add_special_tokens=False and return_offsets_mapping=True, the offsets
turned from Python character (code point) indices into UTF-8 byte indices of the text:
  {"model", "transformers", "tokenizers", "cases": [{"source", "text", "ids", "byte_ranges"}]}
WordPieceTokenizer::pieces (tests/tokenizer_test.cpp) must give exactly these ids and ranges.

Texts: the first paragraph of each SQuAD v1.1 dev article and its first question, and hand-written
strings for the edge cases (see TRICKY). Usage (the committed file was made with the defaults):
  /work/main/.venv/bin/python tools/make_wordpiece_offsets_reference.py
"""

import argparse
import json
import os
from pathlib import Path

from common import REPO_ROOT, default_model_dir, quiet_libraries, write_atomically

DEFAULT_SQUAD = Path("/work/shared/data/squad/dev-v1.1.json")
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "wordpiece_offsets_reference.json"

TRICKY = [
    "café Ñandú", "CAFÉ crème brûlée", "İstanbul İİ", "Straße ẞ ǅemal", "ﬁnancial ΐ Ⅻ ½",
    "cafe\u0301", "e\u0301t\u0301e", "\u0301alone", "q\u0323\u0307x", "Z̴̡̛͎͔a̷l̶g̸o̷", "Å vs A\u030a",
    # Hangul syllables decompose into jamo, so pieces start inside a syllable; each covers all of it.
    "한국어 텍스트입니다", "日本語のテキスト、カタカナ", "中文abc北京is中国的capital", "ｶﾀｶﾅ Ｆｕｌｌ",
    "I love 🍕 and 🍺!", "👨‍👩‍👧‍👦 family 👍🏽", "emoji🙂inside 1️⃣",
    "tab\there\nnew\r\nline", "a\x00b\x01c\x7fd", "a\ufffdb \ufffd", "\x0bvt\x0cff a\x85b",
    "zero\u200bwidth join\u200dme bom\ufeffhere soft\u00adhyphen",
    "nbsp\u00a0here\u3000there",
    "x" * 101, "é" * 101, "short " + "y" * 150 + " words", "a" * 100,
    "pneumonoultramicroscopicsilicovolcanoconiosis", "qzxqzxqzx", "ħħħ",
    "[MASK] is [mask]", "x[SEP]y [CLS]z", "[[SEP]]", "[SE P] [CLS", "[UNK][PAD]",
    "!!!???...", "Hello...world", "(nested [brackets {here}])", "«Bonjour» „Hallo“ ¿Qué tal?",
    "a  b   c    d", "   leading and trailing   ", " ", "", "\t\n ",
]


def byte_ranges(text, offsets):
    """Python character offsets -> UTF-8 byte offsets of text."""
    starts = [0]
    for char in text:
        starts.append(starts[-1] + len(char.encode("utf-8")))
    return [[starts[begin], starts[end]] for begin, end in offsets]


def squad_texts(path):
    """Each article's first paragraph and that paragraph's first question."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    texts = []
    for article in articles:
        paragraph = article["paragraphs"][0]
        texts += [("squad context", paragraph["context"]), ("squad question", paragraph["qas"][0]["question"])]
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: all-MiniLM-L6-v2)")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD v1.1 dev JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    import tokenizers
    import transformers

    model_link = args.model or default_model_dir()
    model_dir = model_link.resolve()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    if not tokenizer.is_fast:
        raise SystemExit(f"{model_dir}: no fast tokenizer, and only it gives offsets")

    cases = []
    for source, text in squad_texts(args.squad) + [("tricky", text) for text in TRICKY]:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        cases.append({"source": source, "text": text, "ids": encoded["input_ids"],
                      "byte_ranges": byte_ranges(text, encoded["offset_mapping"])})

    header = {"model": model_link.name, "transformers": transformers.__version__,
              "tokenizers": tokenizers.__version__}

    def write(handle):
        # One case a line keeps the file small and its diffs readable; ASCII escapes keep control
        # characters and U+2028-style line breaks intact.
        handle.write(json.dumps(header)[:-1] + ', "cases": [\n')
        handle.write(",\n".join(json.dumps(case) for case in cases))
        handle.write("\n]}\n")

    write_atomically(args.out, write)
    print(f"{args.out}: {len(cases)} texts, {sum(len(c['ids']) for c in cases)} pieces")


if __name__ == "__main__":
    main()
