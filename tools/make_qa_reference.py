#!/usr/bin/env python3
"""Write the reference Sieve's question-answering tests compare against (tests/qa_test.cpp).

OUT/minilm-qa/         the default model (all-MiniLM-L6-v2) as a BertForQuestionAnswering whose
                       qa_outputs head is random (seeded): parity of the head, the windows and the
                       span decoding does not need a trained head, and no registry package has one.
OUT/minilm-qa/blockskim/  random (seeded) Block-Skim predictors, one per layer (tools/train_qa.py's
                       module and file format), BatchNorm with random running statistics.
OUT/qa_reference.json  per case: question, context, gold answers, max_length, doc_stride; per window the ids,
                       type ids and transformers' fp32 start/end logits; the best answer as
                       transformers' run_qa.py postprocessing (utils_qa.postprocess_qa_predictions,
                       re-implemented below: n-best 20, max answer 30 tokens) picks it, as byte
                       offsets into the context, the score margin to the runner-up, and its
                       exact match and F1 by evaluate-v1.1.py's definitions (copied below);
                       normalize_cases: that script's normalize_answer on tricky strings;
                       blockskim: for the first windows, every layer's predictor logits on every
                       context block of transformers' attention maps (blocks of 32 from the first
                       context token, the last one zero-padded).
Cases: the first 5 questions of the first paragraph of each evaluation article of SQuAD v1.1 dev
(src/eval/squad.h: article i with i % 4 == 3) at max_length 384 / stride 128, and each article's
first one again at max_length 96 / stride 24, so its context spans several windows.
Windows come from the fast tokenizer exactly as run_qa.py makes them (truncation="only_second",
return_overflowing_tokens, return_offsets_mapping), each run alone (no padding).

Cached: rebuilt only when older than the model or this tool.
  .venv/bin/python tools/make_qa_reference.py --model models/all-MiniLM-L6-v2 --out build/reference/qa
"""

import argparse
import collections
import json
import re
import shutil
import string
import sys
from pathlib import Path

import numpy as np

from common import is_up_to_date, quiet_libraries, write_atomically

TRAIN_QA = Path(__file__).resolve().parent / "train_qa.py"  # the Block-Skim module and file format
SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"
N_BEST, MAX_ANSWER = 20, 30
BLOCK_SIZE, SKIM_CASES = 32, 6
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def cases(path: Path):
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    picked = []
    for index, article in enumerate(articles):
        if index % 4 != 3:
            continue
        paragraph = article["paragraphs"][0]
        for qa in paragraph["qas"][:5]:
            picked.append({"id": qa["id"], "question": qa["question"], "context": paragraph["context"],
                           "golds": [a["text"] for a in qa["answers"]]})
    long_windows = [dict(c, max_length=96, doc_stride=24) for c in picked[::5]]  # one per article
    return [dict(c, max_length=384, doc_stride=128) for c in picked] + long_windows


# evaluate-v1.1.py's definitions, as the official script writes them.
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


NORMALIZE_CASES = [
    "The Broncos!", "an apple a day", "Denver Broncos", "  spaced\tout\n words ", "A-ha", "the_the", "thé café",
    "anthem and the an", "Santa Clara, California", "1998–2003", "İstanbul", "THE END.", "a", "",
    "l'amour", "(the) [a] {an}", "naïve the end", "½ of the Ⅰ", "x_the_y", "“quoted”",
]


def best_answer(context, windows):
    """utils_qa.postprocess_qa_predictions for one example (SQuAD v1: no null answer)."""
    found = []
    for w in windows:
        start, end, offsets = np.array(w["start_logits"]), np.array(w["end_logits"]), w["char_offsets"]
        for s in np.argsort(start)[-1:-N_BEST - 1:-1]:
            for e in np.argsort(end)[-1:-N_BEST - 1:-1]:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > MAX_ANSWER:
                    continue
                found.append((float(start[s] + end[e]), offsets[s][0], offsets[e][1]))
    found.sort(key=lambda f: f[0], reverse=True)  # stable, as sorted() in utils_qa
    score, begin, end = found[0]
    # Byte offsets, as Sieve reports them; the margin lets a test tell a real mismatch from a near tie.
    margin = score - next((f[0] for f in found[1:] if (f[1], f[2]) != (begin, end)), float("-inf"))
    return {"text": context[begin:end], "byte_begin": len(context[:begin].encode()),
            "byte_end": len(context[:end].encode()), "score": score, "margin": margin}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--squad", type=Path, default=SQUAD_DEV)
    args = parser.parse_args()
    reference = args.out / "qa_reference.json"
    if is_up_to_date(reference, [args.model / "model.safetensors", Path(__file__), TRAIN_QA]):
        print(f"{reference} is up to date")
        return 0
    if not args.squad.is_file():
        print(f"SQuAD dev set not found at {args.squad}", file=sys.stderr)
        return 1

    quiet_libraries()
    import torch
    from transformers import AutoTokenizer, BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering.from_pretrained(str(args.model), attn_implementation="eager").eval()
    with torch.no_grad():  # a head with logits of a few units, so spans differ clearly
        model.qa_outputs.weight.normal_(0.0, 0.3)
        model.qa_outputs.bias.copy_(torch.tensor([0.1, -0.1]))
    model_out = args.out / "minilm-qa"
    model.save_pretrained(str(model_out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (args.model / name).is_file():
            shutil.copy(args.model / name, model_out / name)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model), use_fast=True)

    from train_qa import BlockSkim, diagonal_blocks, save_block_skim

    heads, layers = model.config.num_attention_heads, model.config.num_hidden_layers
    skims = torch.nn.ModuleList(BlockSkim(heads, BLOCK_SIZE) for _ in range(layers))
    with torch.no_grad():
        for skim in skims:
            for bn in (skim.bn1, skim.bn2):
                bn.running_mean.normal_(0.0, 0.1)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.normal_(1.0, 0.2)
                bn.bias.normal_(0.0, 0.2)
            skim.conv1.weight.mul_(50.0)  # probabilities in a tile are ~1/n: make the logits depend on them
            skim.fc.weight.mul_(5.0)
    skims.eval()
    save_block_skim(skims, model_out, BLOCK_SIZE, heads)

    out_cases, skim_cases = [], []
    for case in cases(args.squad):
        enc = tokenizer(case["question"].lstrip(), case["context"], truncation="only_second",
                        max_length=case["max_length"], stride=case["doc_stride"],
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        windows = []
        for w in range(len(enc["input_ids"])):
            ids, types = enc["input_ids"][w], enc["token_type_ids"][w]
            with torch.no_grad():
                out = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]))
            sequence = enc.sequence_ids(w)
            offsets = [tuple(o) if sequence[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][w])]
            windows.append({"ids": ids, "type_ids": types,
                            "start_logits": [round(float(x), 6) for x in out.start_logits[0]],
                            "end_logits": [round(float(x), 6) for x in out.end_logits[0]],
                            "char_offsets": offsets})
        if len(skim_cases) < SKIM_CASES:
            with torch.no_grad():
                out = model(input_ids=torch.tensor([windows[0]["ids"]]), token_type_ids=torch.tensor([windows[0]["type_ids"]]),
                            output_attentions=True)
                sequence = enc.sequence_ids(0)
                context = [k for k, s_id in enumerate(sequence) if s_id == 1]
                logits = [skims[l](torch.stack(diagonal_blocks(out.attentions[l][0], context[0], context[-1] + 1, BLOCK_SIZE)))
                          for l in range(layers)]
            skim_cases.append({"case": len(out_cases), "logits": [[[round(float(v), 6) for v in b] for b in l] for l in logits]})
        answer = best_answer(case["context"], windows)
        for w in windows:
            del w["char_offsets"]
        golds = case.pop("golds")
        answer["em"] = max(float(exact_match_score(answer["text"], g)) for g in golds)
        answer["f1"] = max(f1_score(answer["text"], g) for g in golds)
        out_cases.append(dict(case, golds=golds, windows=windows, best=answer))

    info = {"model": str(args.model), "head": "qa_outputs ~ N(0, 0.3), seed 0, bias [0.1, -0.1]",
            "n_best": N_BEST, "max_answer_length": MAX_ANSWER, "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "cases": out_cases,
            "normalize_cases": [{"text": t, "normalized": normalize_answer(t)} for t in NORMALIZE_CASES],
            "blockskim": {"block_size": BLOCK_SIZE, "cases": skim_cases}}
    write_atomically(reference, lambda h: json.dump(info, h))
    windows = sum(len(c["windows"]) for c in out_cases)
    print(f"wrote {reference}: {len(out_cases)} cases, {windows} windows; model in {model_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
