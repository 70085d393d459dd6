#!/usr/bin/env python3
"""Writes tokenizer parity cases: what Hugging Face's fast BERT tokenizer gives for varied text.

Each output line is one JSON case for tests/tokenizer_test.cpp:
  {"vocab": path to vocab.txt, "lowercase": bool, "strip_accents": bool|null, "text": str,
   "text_pair": str|null, "max_length": int, "ids": [int], "type_ids": [int], "truncated": bool}

The reference for the model's own settings is transformers.AutoTokenizer.from_pretrained(model);
the other settings use BertTokenizerFast(vocab_file=..., do_lower_case=..., strip_accents=...) on
the same vocab. Usage: make_tokenizer_cases.py --model DIR --out FILE
"""

import argparse
import json
import os
import sys
import unicodedata
from pathlib import Path

from common import default_model_dir, quiet_libraries, write_atomically

DEFAULT_MAX_LENGTH = 512

BASIC = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's not butter!",
    "unaffable tokenization: playing, played, replaying",
    "Mr. O'Neil's e-mail is john.doe@example.com.",
    "HELLO World, iPhone, McDonald's, USA vs. usa",
    "Transformers are neural networks that use attention.",
    "it’s a ‘quoted’ “word” and ʼapostrophe and don`t",
    "foo_bar-baz qux/quux",
]
ACCENTS = [
    "café", "naïve", "Ångström", "résumé Crème brûlée", "façade São Paulo Zürich",
    "Ærøskøbing Dvořák Łódź", "İstanbul", "ﬁnancial ﬂow", "Straße ẞ", "ΣΊΣΥΦΟΣ σίσυφος",
    "ǅemal ǈ", "K Ω Å (Kelvin, Ohm and Angstrom signs)", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ！",
    "𝐁𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐 math letters", "ᴀʙᴄ small capitals", "Ĳssel ŉ ǰ",
]
CJK = [
    "中文分词测试", "我爱北京天安门。", "日本語のテキスト、カタカナとひらがな。", "ｶﾀｶﾅ ﾊﾝｶｸ",
    "한국어 텍스트입니다", "漢字かな交じり文", "𠀀𠀁 extension B", "\U0002B740\U0002B81F edge",
    "\U0002B820\U0002B91F outside HF's list", "\U0002B920\U0002CEAF inside", "豈更車 compatibility",
    "⼀⼁ radicals", "〇 ideographic zero", "ㄅㄆㄇ bopomofo", "中a文b字c", "北京is中国的capital",
    "\U0002F800\U0002FA1D supplement",
]
EMOJI = [
    "I love 🍕 and 🍺!", "👨‍👩‍👧‍👦 family", "👍🏽 thumbs", "❤️ heart", "🏳️‍🌈 flag", "🥰🤩🥺 newer emoji",
    "©®™ marks", "☃ snowman ★☆", "1️⃣ keycap", "🇫🇷🇯🇵 flags", "emoji🙂inside",
]
PUNCTUATION = [
    "!!!???...", "--- *** ###", "«Bonjour» „Hallo“", "¿Qué tal? ¡Hola!", "a—b–c―d", "§¶†‡•",
    "Hello...world", "(nested [brackets {here}])", "#hashtag @mention $100 50% ^caret~tilde`",
    "a/b\\c|d", "<html><body>x</body></html>", "。、「」『』【】", "⁉‼⸘", "‹›′″‴",
]
URLS_AND_NUMBERS = [
    "https://www.example.com/path?query=1&b=2#frag", "ftp://files.example.org/a-b_c.tar.gz",
    "www.google.com user@mail.example.co.uk", "3.14159 1,000,000 2024-01-15 12:30pm",
    "10^9 -42 1e-5 +7", "٣٤٥ ۱۲۳ arabic digits", "①②③ ½ ¾ Ⅻ ²³", "$3.50 €20 £5 ¥100 ₹80",
]
LONG_WORDS = [
    "a" * 100, "a" * 101, "supercalifragilisticexpialidocious" * 3, "x" * 200, "é" * 100,
    "é" * 101, "e\u0301" * 60, "ab" * 51 + "!", "short " + "y" * 150 + " words",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "中" * 120,
]
CONTROL = [
    "a\x00b", "a\x01b\x7fc", "tab\there", "new\nline\r\nwindows", "\x0bvt\x0cff", "a\x85b",
    "zero\u200bwidth", "soft\u00adhyphen", "bom\ufeffhere", "\u2028line sep\u2029", "rtl \u202eoverride\u202c",
    "a\ufffdb", "\ufffd", "\ufffd\ufffd \ufffd", "priv\ue000ate", "a\u180eb", "a\x1cb\x1fc", "\x00",
    "\U000E0001tag\U000E007F",
]
WHITESPACE = ["", " ", "   \t\n  ", "\u3000", "\u00a0\u2003\u2009", "\r\n\r\n", "\u1680x\u205f"]
SCRIPTS = [
    "Καλημέρα κόσμε", "Ελληνικά ΆΈΉ ΐ", "Привет, мир!", "Ёлка и йогурт", "мама мыла раму",
    "مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "नमस्ते दुनिया", "हिन्दी भाषा", "שָׁלוֹם עוֹלָם",
    "สวัสดีครับ", "ქართული ენა", "Հայերեն", "ᚠᚢᚦ runes", "Tiếng Việt có dấu", "ລາວ ພາສາ",
]
COMBINING = [
    "e\u0301", "a\u0308\u0304", "Z̴̡̛͎͔a̷l̶g̸o̷", "n\u0303o", "\u0301alone", "x\u20dd enclosed",
    "q\u0323\u0307", "a\u0307\u0323", "\U0001D16D\U0001D165 music", "Å vs A\u030a",
]
SPECIAL_TOKENS = [
    "[CLS] hi [SEP]", "[MASK] is [mask]", "[UNK][PAD]", "x[SEP]y", "[SE P] [CLS", "[[SEP]]",
]
# Characters where HF's Unicode tables (about Unicode 8) disagree with current Unicode.
OLD_UNICODE_TABLES = [
    "a\u2e43b", "a\u0898b", "a\u0890b", "a\u166db", "a\u1734b", "a\U00011938b", "a\U000111c9b",
    "a\u061db x\u1ac0y", "ᜑ\u1734",
]
PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("", ""),
    ("", "only the second"),
    ("only the first", ""),
    ("中文问题", "日本語の答え"),
    ("Café crème", "naïve résumé"),
    ("a" * 101, "b" * 101),
    ("[CLS] inside", "and [SEP] too"),
    ("tab\there\x00", "new\nline\ufffd"),
    ("Привет", "мир 👋"),
    ("same length here", "same length there"),
    ("https://example.com?a=1", "12,345.67"),
]
LONG_PARAGRAPH = ("Sieve is an inference engine for transformer encoders; it tokenizes text, runs "
                  "attention layers and pools the hidden states. ") * 30
TRUNCATION_TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "unaffable tokenization of wonderfully long words",
    "中文分词测试 and more",
    "a b",
]
TRUNCATION_PAIRS = [
    ("a b c d e f g", "h i"),
    ("a b", "c d e f g h i j k"),
    ("a b c d e f g", "h i j k l m n o p"),
    ("a b c d e f g h i", "j k l m n o p q"),
    ("a b c d", "e f g h"),
    ("one two three four five six seven", "eight nine ten eleven twelve thirteen fourteen"),
    ("", "a b c d e f"),
    ("a b c d e f", ""),
    ("unaffable playing", "naïve café"),
]
TRUNCATION_LENGTHS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 16]


def unicode_sweep_texts(words_per_case=300):
    """Words 'a' + c + 'a' for every punctuation, mark, format and space character (and a sample
    of the rest), and capitals alone, so the character tables are checked across Unicode."""
    words = []
    for code_point in range(0x110000):
        char = chr(code_point)
        category = unicodedata.category(char)
        if category in ("Cs", "Cn") or (category == "Co" and code_point % 997):
            continue
        if category in ("Lu", "Lt"):
            words.append(char)
        elif category[0] in "PMCZ" or code_point % 101 == 0:
            words.append("a" + char + "a")
    return [" ".join(words[i:i + words_per_case]) for i in range(0, len(words), words_per_case)]


class Reference:
    """One Hugging Face tokenizer and the settings the C++ side needs to mirror it."""

    def __init__(self, tokenizer, vocab, lowercase, strip_accents):
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = strip_accents

    def case(self, text, text_pair=None, max_length=DEFAULT_MAX_LENGTH):
        encoded = self.tokenizer(text, text_pair, truncation=True, max_length=max_length)
        untruncated = self.tokenizer(text, text_pair, truncation=False)
        return {
            "vocab": self.vocab, "lowercase": self.lowercase, "strip_accents": self.strip_accents,
            "text": text, "text_pair": text_pair, "max_length": max_length,
            "ids": encoded["input_ids"], "type_ids": encoded["token_type_ids"],
            "truncated": len(untruncated["input_ids"]) > len(encoded["input_ids"]),
        }


def load_references(model_dir: Path):
    from transformers import AutoTokenizer, BertTokenizerFast

    vocab = model_dir / "vocab.txt"
    if not vocab.is_file():
        sys.exit(f"{vocab} is missing; the parity cases need the model's vocab.txt")
    model_tokenizer = AutoTokenizer.from_pretrained(model_dir)
    state = json.loads(model_tokenizer.backend_tokenizer.normalizer.__getstate__())
    if not state.get("handle_chinese_chars", True):
        sys.exit("the cases assume tokenize_chinese_chars, which this model turns off")

    def from_vocab(lowercase, strip_accents):
        tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=lowercase, strip_accents=strip_accents)
        return Reference(tokenizer, str(vocab), lowercase, strip_accents)

    model = Reference(model_tokenizer, str(vocab), state["lowercase"], state["strip_accents"])
    return {
        "model": model,
        "cased": from_vocab(False, None),
        "lowercase_keep_accents": from_vocab(True, False),
        "cased_strip_accents": from_vocab(False, True),
    }


def build_cases(refs):
    single_texts = (BASIC + ACCENTS + CJK + EMOJI + PUNCTUATION + URLS_AND_NUMBERS + LONG_WORDS + CONTROL
                    + WHITESPACE + SCRIPTS + COMBINING + SPECIAL_TOKENS + OLD_UNICODE_TABLES + [LONG_PARAGRAPH])
    cases = []
    for name in ("model", "cased"):
        ref = refs[name]
        cases += [ref.case(text) for text in single_texts]
        cases += [ref.case(first, second) for first, second in PAIRS]
        cases += [ref.case(LONG_PARAGRAPH, LONG_PARAGRAPH[:400])]
        cases += [ref.case(text, max_length=n) for text in TRUNCATION_TEXTS for n in TRUNCATION_LENGTHS]
        cases += [ref.case(first, second, max_length=n)
                  for first, second in TRUNCATION_PAIRS for n in TRUNCATION_LENGTHS if n >= 3]
        cases += [ref.case(text) for text in unicode_sweep_texts()]
    # The two settings where accent stripping does not follow lowercasing.
    for name in ("lowercase_keep_accents", "cased_strip_accents"):
        cases += [refs[name].case(text) for text in ACCENTS + SCRIPTS + COMBINING + OLD_UNICODE_TABLES]
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: all-MiniLM-L6-v2)")
    parser.add_argument("--out", type=Path, required=True, help="the .jsonl file to write")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    model_dir = (args.model or default_model_dir()).resolve()
    cases = build_cases(load_references(model_dir))

    def write(handle):
        for case in cases:
            handle.write(json.dumps(case) + "\n")  # ASCII escapes keep odd characters intact

    write_atomically(args.out, write)
    print(f"{args.out}: {len(cases)} tokenizer cases")


if __name__ == "__main__":
    main()
