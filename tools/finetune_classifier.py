#!/usr/bin/env python3
"""Fine-tune a BERT-family checkpoint for GLUE-style sentence classification (default: SST-2) and
export a Hugging Face directory with the classification head, which `sieve classify/eval` load.

    python tools/finetune_classifier.py --model models/all-MiniLM-L6-v2 \
        --data ../shared/data/glue/sst2 --out models/minilm-sst2

The data directory holds train/validation files as GLUE parquet (columns sentence, label) or TSV.
Training is plain PyTorch (AdamW, linear warmup/decay); the best dev-accuracy epoch is exported.
"""
import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from glue_data import shuffled_train_and_dev  # noqa: E402


def batches(rows, size, shuffle, rng):
    """Batches of similar length (sorted within shuffled windows of 50 batches): padding is most of
    the cost on a CPU when short and long sentences share a batch."""
    order = list(range(len(rows)))
    if shuffle:
        rng.shuffle(order)
    window = size * 50
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda j: len(rows[j][0]))
        groups = [chunk[i:i + size] for i in range(0, len(chunk), size)]
        if shuffle:
            rng.shuffle(groups)
        for g in groups:
            yield [rows[j] for j in g]


def evaluate(model, tokenizer, rows, max_length, batch_size):
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in batches(rows, batch_size, False, None):
            enc = tokenizer([r[0] for r in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1)
            correct += sum(int(p == r[1]) for p, r in zip(pred.tolist(), batch))
    return correct / len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory to start from")
    ap.add_argument("--data", required=True, help="directory with train and validation files (parquet or tsv)")
    ap.add_argument("--out", required=True, help="output HF directory")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--train-limit", type=int, default=0, help="use only the first N shuffled training rows (0 = all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train, dev = shuffled_train_and_dev(args.data, rng)
    if args.train_limit:
        train = train[:args.train_limit]
    labels = sorted({r[1] for r in train})
    print(f"train {len(train)} rows, dev {len(dev)} rows, labels {labels}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    names = {0: "negative", 1: "positive"} if labels == [0, 1] else {i: f"LABEL_{i}" for i in labels}
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=names, label2id={v: k for k, v in names.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))

    best = -1.0
    out = Path(args.out)
    step = 0
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        for batch in batches(train, args.batch_size, True, rng):
            enc = tokenizer([r[0] for r in batch], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([r[1] for r in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 200 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        acc = evaluate(model, tokenizer, dev, args.max_length, 64)
        print(f"epoch {epoch}: dev accuracy {acc:.4f}", flush=True)
        if acc > best:
            best = acc
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
    (out / "finetune_result.json").write_text(json.dumps({
        "base_model": str(args.model), "data": str(args.data), "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "train_rows": len(train), "dev_accuracy": best}, indent=2) + "\n")
    print(f"best dev accuracy {best:.4f}; wrote {out}")


if __name__ == "__main__":
    main()
