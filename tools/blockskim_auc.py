#!/usr/bin/env python3
"""How well each layer's Block-Skim predictor tells answer blocks from the others, on SQuAD articles
the training never saw (the calibration articles by default): per layer, the ROC AUC of P(keep)
between blocks holding an answer token and the rest, the mean P(keep) of each kind, and the share
of the other blocks a threshold would skim while keeping 95 % / 99 % of the answer blocks.

A threshold can only move along a layer's ROC curve; an AUC near 0.5 means no threshold skims that
layer well. (beta, the weight of answer blocks in training, moves P(keep) of every block towards
its prior, beta * answers / (beta * answers + others), and so the threshold, not the AUC.)

    .venv-train/bin/python tools/blockskim_auc.py models/minilm-squad --out docs/results/squad/predictor_auc.json
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from train_qa import (SQUAD_DEV, AttentionTap, BlockSkim, block_labels, diagonal_blocks, make_windows,  # noqa: E402
                      squad_examples)


def auc(positive, negative):
    """P(a random positive scores above a random negative), ties half (Mann-Whitney)."""
    scores = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum, i = 0.0, 0
    while i < len(scores):
        j = i
        while j < len(scores) and scores[j][0] == scores[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2  # ranks i+1 .. j
        rank_sum += mean_rank * sum(1 for k in range(i, j) if scores[k][1])
        i = j
    p, n = len(positive), len(negative)
    return (rank_sum - p * (p + 1) / 2) / (p * n) if p and n else float("nan")


def skimmed_at_recall(positive, negative, recall):
    """The share of negatives below the threshold that keeps `recall` of the positives."""
    ordered = sorted(positive)
    threshold = ordered[int((1 - recall) * len(ordered))] if ordered else 0.0
    return sum(1 for s in negative if s < threshold) / max(len(negative), 1), threshold


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a tools/train_qa.py output (with blockskim/)")
    ap.add_argument("--squad", type=Path, default=SQUAD_DEV)
    ap.add_argument("--split", default="calibration", choices=["calibration", "train"])
    ap.add_argument("--limit", type=int, default=0, help="the first N questions only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertForQuestionAnswering

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model), use_fast=True)
    model = BertForQuestionAnswering.from_pretrained(str(args.model), attn_implementation="eager").eval()
    meta = json.loads((args.model / "blockskim" / "blockskim.json").read_text())
    block_size, heads = meta["block_size"], meta["heads"]
    state = load_file(str(args.model / "blockskim" / "blockskim.safetensors"))
    skims = []
    for layer in range(meta["layers"]):
        skim = BlockSkim(heads, block_size)
        prefix = f"layer.{layer}."
        # The export leaves out BatchNorm's num_batches_tracked; any other missing or extra tensor
        # would leave random weights behind and make the AUC meaningless.
        result = skim.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            sys.exit(f"{args.model}/blockskim: layer {layer}: missing {missing}, unexpected {result.unexpected_keys}")
        skims.append(skim.eval())
    tap = AttentionTap(model)

    examples = squad_examples(args.squad, args.split)
    if args.limit:
        examples = examples[:args.limit]
    windows = make_windows(tokenizer, examples, 384, 128)
    scores = [([], []) for _ in skims]  # per layer: P(keep) of answer blocks, of the others
    with torch.no_grad():
        for w in windows:
            if w["start"] == 0:
                continue  # a window without the answer has no answer block
            tap.probs.clear()
            model(input_ids=torch.tensor([w["ids"]]), token_type_ids=torch.tensor([w["type_ids"]]))
            begin, end = w["context"]
            labels = block_labels(begin, end, block_size, w["start"], w["end"])
            for layer, probs in enumerate(tap.probs):
                blocks = torch.stack(diagonal_blocks(probs[0], begin, end, block_size))
                keep = torch.softmax(skims[layer](blocks), dim=1)[:, 1].tolist()
                for p, label in zip(keep, labels):
                    scores[layer][0 if label else 1].append(p)

    rows = []
    for layer, (positive, negative) in enumerate(scores):
        skim95, t95 = skimmed_at_recall(positive, negative, 0.95)
        skim99, t99 = skimmed_at_recall(positive, negative, 0.99)
        rows.append({"layer": layer, "answer_blocks": len(positive), "other_blocks": len(negative), "auc": auc(positive, negative),
                     "mean_keep_answer": sum(positive) / max(len(positive), 1), "mean_keep_other": sum(negative) / max(len(negative), 1),
                     "other_skimmed_at_95_recall": skim95, "threshold_95": t95, "other_skimmed_at_99_recall": skim99, "threshold_99": t99})
        r = rows[-1]
        print(f"layer {layer}: AUC {r['auc']:.3f}, P(keep) answer {r['mean_keep_answer']:.3f} / other {r['mean_keep_other']:.3f}, "
              f"others skimmed keeping 95 % of answer blocks {skim95:.1%} (t {t95:.3f}), 99 % {skim99:.1%} (t {t99:.3f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": str(args.model), "split": args.split, "questions": len(examples),
                                        "windows": len(windows), "layers": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
