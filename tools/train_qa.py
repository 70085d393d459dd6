#!/usr/bin/env python3
"""Fine-tune a BERT-family checkpoint for extractive QA on SQuAD v1.1's training articles, with
Block-Skim's relevance predictors trained jointly (the paper's recipe), and export both.

    .venv-train/bin/python tools/train_qa.py --model models/all-MiniLM-L6-v2 \
        --squad ../shared/data/squad/dev-v1.1.json --out models/minilm-squad

Data: only SQuAD's dev set is at hand, so it is split by article as src/eval/squad.h states
(article i evaluates when i % 4 == 3, calibrates when i % 12 == 1, trains otherwise): this tool
reads the training articles only; the calibration articles choose Sieve's skim threshold; the
evaluation articles are answered once, by `sieve eval`.

Block-Skim (Guan et al., AAAI 2022; ../shared/seeds/token-pruning-survey-slides.txt, "Method 1"):
after each layer's attention, a small CNN reads the diagonal block of the attention map of each
block of `block_size` context tokens (all heads as channels: conv 3x3 + BatchNorm + ReLU + 2x2
average pool, twice, then a linear layer to 2 classes) and predicts whether the block holds the
answer. Trained jointly with the QA loss, no skimming while training:
    L = L_QA + alpha * sum over layers (beta * CE over answer blocks + CE over the other blocks)
with alpha 0.1 and beta 20, the released scripts' values for SQuAD (CE summed over blocks and
divided by the number of blocks, so alpha keeps its meaning whatever the batch). Blocks start at
the first context token (the released code cuts the padded sequence from position 0; Sieve's
packed rows have no padding, and question tokens are never skimmed anyway); a last short block is
zero-padded to block_size x block_size, here and in Sieve alike. The attention map is read before
attention dropout, as the released module reads it.

Exports OUT/ (a Hugging Face BertForQuestionAnswering directory: config.json, model.safetensors,
tokenizer files) and OUT/blockskim/ (blockskim.safetensors: layer.<l>.conv1.weight ...,
bn1.{weight,bias,running_mean,running_var}, conv2..., bn2..., fc.{weight,bias}; blockskim.json:
block size, layers, heads, BatchNorm eps). Training windows: max_length / doc_stride as run_qa.py
makes them (the answer's window labelled, the others point at [CLS]).
"""
import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from finetune_classifier import optimizer_and_schedule  # noqa: E402

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def split_of_article(index: int) -> str:
    """src/eval/squad.h's rule (squad_split_of_article)."""
    if index % 4 == 3:
        return "eval"
    if index % 12 == 1:
        return "calibration"
    return "train"


def squad_examples(path: Path, split: str):
    examples = []
    for index, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        if split_of_article(index) != split:
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                examples.append({"question": qa["question"].lstrip(), "context": paragraph["context"],
                                 "answer_start": answer["answer_start"], "answer_text": answer["text"]})
    return examples


class BlockSkim(nn.Module):
    """The relevance predictor of one layer: [blocks, heads, bs, bs] attention -> [blocks, 2] logits."""

    def __init__(self, heads: int, block_size: int):
        super().__init__()
        if block_size % 4:
            raise ValueError("block size must be a multiple of 4 (two 2x2 poolings)")
        self.block_size = block_size
        self.conv1 = nn.Conv2d(heads, heads, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(heads)
        self.conv2 = nn.Conv2d(heads, heads, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(heads)
        self.fc = nn.Linear(heads * block_size * block_size // 16, 2)

    def forward(self, blocks):
        x = nn.functional.avg_pool2d(torch.relu(self.bn1(self.conv1(blocks))), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, start_dim=1))


def diagonal_blocks(probs, context_begin: int, context_end: int, block_size: int):
    """The diagonal blocks of one window's attention [heads, L, L] over context tokens
    [context_begin, context_end), each [heads, bs, bs], the last one zero-padded."""
    blocks = []
    for start in range(context_begin, context_end, block_size):
        stop = min(start + block_size, context_end)
        block = probs[:, start:stop, start:stop]
        pad = block_size - (stop - start)
        blocks.append(nn.functional.pad(block, (0, pad, 0, pad)) if pad else block)
    return blocks


def block_labels(context_begin: int, context_end: int, block_size: int, start: int, end: int):
    """1 for the blocks holding some token of the answer span [start, end] (0 when start is [CLS])."""
    labels = []
    for b in range(context_begin, context_end, block_size):
        stop = min(b + block_size, context_end)
        labels.append(int(start > 0 and start < stop and end >= b))
    return labels


def make_windows(tokenizer, examples, max_length: int, doc_stride: int):
    """run_qa.py's prepare_train_features, one window at a time (no padding)."""
    windows = []
    for ex in examples:
        enc = tokenizer(ex["question"], ex["context"], truncation="only_second", max_length=max_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        char_start = ex["answer_start"]
        char_end = char_start + len(ex["answer_text"])
        for w in range(len(enc["input_ids"])):
            sequence = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            context = [k for k, s in enumerate(sequence) if s == 1]
            begin, end = context[0], context[-1] + 1
            start_pos = end_pos = 0
            if offsets[begin][0] <= char_start and offsets[end - 1][1] >= char_end:
                start_pos = next(k for k in range(begin, end) if offsets[k][1] > char_start)
                end_pos = next(k for k in range(end - 1, begin - 1, -1) if offsets[k][0] < char_end)
            windows.append({"ids": enc["input_ids"][w], "type_ids": enc["token_type_ids"][w],
                            "context": (begin, end), "start": start_pos, "end": end_pos})
    return windows


def length_batches(windows, size, rng):
    """Shuffled batches of similar length (sorted within shuffled stretches of 50 batches): padding
    to the longest window of a batch would otherwise be a third of the work."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    groups = []
    for w in range(0, len(order), size * 50):
        chunk = sorted(order[w:w + size * 50], key=lambda j: len(windows[j]["ids"]))
        groups += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(groups)
    for g in groups:
        yield [windows[j] for j in g]


def padded_batch(windows):
    length = max(len(w["ids"]) for w in windows)
    ids = torch.zeros(len(windows), length, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, w in enumerate(windows):
        n = len(w["ids"])
        ids[i, :n] = torch.tensor(w["ids"])
        types[i, :n] = torch.tensor(w["type_ids"])
        mask[i, :n] = 1
    return ids, types, mask


class AttentionTap:
    """Keeps each layer's attention probabilities as they enter attention dropout."""

    def __init__(self, model):
        self.probs = []
        for layer in model.bert.encoder.layer:
            layer.attention.self.dropout.register_forward_pre_hook(lambda module, inputs: self.probs.append(inputs[0]))


def skim_loss(skims, tap, batch, block_size, beta):
    """Sum over layers of (beta * CE over answer blocks + CE over the others) / blocks; and how many
    blocks each layer predicted right (for the log)."""
    total, right, count = 0.0, 0, 0
    for layer, probs in enumerate(tap.probs):
        blocks, labels = [], []
        for i, w in enumerate(batch):
            begin, end = w["context"]
            blocks += diagonal_blocks(probs[i], begin, end, block_size)
            labels += block_labels(begin, end, block_size, w["start"], w["end"])
        logits = skims[layer](torch.stack(blocks))
        target = torch.tensor(labels)
        losses = nn.functional.cross_entropy(logits, target, reduction="none")
        weights = torch.where(target == 1, torch.full_like(losses, beta), torch.ones_like(losses))
        total = total + (weights * losses).sum() / len(labels)
        right += int((logits.argmax(dim=1) == target).sum())
        count += len(labels)
    return total, right, count


def save_block_skim(skims, out: Path, block_size: int, heads: int):
    """OUT/blockskim/blockskim.{safetensors,json}, the format src/policies/block_skim.h reads."""
    from safetensors.torch import save_file

    tensors = {}
    for l, skim in enumerate(skims):
        for name, value in skim.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                tensors[f"layer.{l}.{name}"] = value.detach().float().contiguous()
    (out / "blockskim").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "blockskim" / "blockskim.safetensors"))
    meta = {"format": "sieve-blockskim", "version": 1, "block_size": block_size, "layers": len(skims), "heads": heads,
            "bn_eps": skims[0].bn1.eps, "classes": ["skim", "keep"], "source": "tools/train_qa.py"}
    (out / "blockskim" / "blockskim.json").write_text(json.dumps(meta, indent=1) + "\n")


def export(model, skims, tokenizer_dir: Path, out: Path, block_size: int, heads: int):
    model.save_pretrained(str(out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            (out / name).write_bytes((tokenizer_dir / name).read_bytes())
    save_block_skim(skims, out, block_size, heads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="BERT-family Hugging Face directory")
    parser.add_argument("--squad", type=Path, default=SQUAD_DEV)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the skim loss (0: plain QA fine-tuning)")
    parser.add_argument("--beta", type=float, default=20.0, help="weight of answer blocks in the skim loss")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N questions only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--freeze-word-embeddings", action="store_true",
                        help="keep the word embeddings as they are (multilingual-e5-small: 96M of its 118M weights, "
                             "and most of a step's optimizer time; SQuAD's English words touch few rows)")
    args = parser.parse_args()

    from transformers import AutoTokenizer, BertForQuestionAnswering

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model), use_fast=True)
    model = BertForQuestionAnswering.from_pretrained(str(args.model), attn_implementation="eager")
    heads, layers = model.config.num_attention_heads, model.config.num_hidden_layers
    skims = nn.ModuleList(BlockSkim(heads, args.block_size) for _ in range(layers))
    tap = AttentionTap(model)
    if args.freeze_word_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)

    examples = squad_examples(args.squad, "train")
    if args.limit:
        examples = examples[:args.limit]
    windows = make_windows(tokenizer, examples, args.max_length, args.doc_stride)
    answered = sum(w["start"] > 0 for w in windows)
    print(f"{len(examples)} training questions -> {len(windows)} windows ({answered} hold the answer)", flush=True)

    steps = math.ceil(len(windows) / args.batch_size * args.epochs)
    params = nn.ModuleList([model, skims])
    opt, sched = optimizer_and_schedule(params, args.lr, steps)
    model.train()
    skims.train()
    step, started = 0, time.time()
    qa_sum = skim_sum = right = count = 0.0
    while step < steps:
        for batch in length_batches(windows, args.batch_size, rng):
            if step >= steps:
                break
            ids, types, mask = padded_batch(batch)
            tap.probs.clear()
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask,
                        start_positions=torch.tensor([w["start"] for w in batch]),
                        end_positions=torch.tensor([w["end"] for w in batch]))
            loss = out.loss
            if args.alpha > 0:
                s_loss, r, c = skim_loss(skims, tap, batch, args.block_size, args.beta)
                loss = loss + args.alpha * s_loss
                skim_sum += float(s_loss.detach())
                right, count = right + r, count + c
            qa_sum += float(out.loss)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == steps:
                n = 50 if step % 50 == 0 else step % 50
                print(f"step {step}/{steps}: QA loss {qa_sum / n:.3f}, skim loss {skim_sum / n:.3f}, "
                      f"block accuracy {right / max(count, 1):.3f}, {time.time() - started:.0f} s", flush=True)
                qa_sum = skim_sum = right = count = 0.0

    model.eval()
    skims.eval()
    export(model, skims, args.model, args.out, args.block_size, heads)
    info = {"model": str(args.model), "questions": len(examples), "windows": len(windows), "epochs": args.epochs,
            "batch_size": args.batch_size, "lr": args.lr, "max_length": args.max_length, "doc_stride": args.doc_stride,
            "block_size": args.block_size, "alpha": args.alpha, "beta": args.beta, "seed": args.seed,
            "threads": args.threads, "freeze_word_embeddings": args.freeze_word_embeddings, "seconds": round(time.time() - started, 1), "torch": torch.__version__}
    (args.out / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {args.out} in {info['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
