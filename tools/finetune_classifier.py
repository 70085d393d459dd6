#!/usr/bin/env python3
"""Fine-tune a BERT-family checkpoint for GLUE-style sentence classification (default: SST-2) and
export a Hugging Face directory with the classification head, which `sieve classify/eval` load.

    python tools/finetune_classifier.py --model models/all-MiniLM-L6-v2 \
        --data ../shared/data/glue/sst2 --out models/minilm-sst2

The data directory holds train/validation files as GLUE parquet (columns sentence, label; or
sentence1, sentence2, label for pair tasks such as MRPC) or TSV. Training is plain PyTorch (AdamW,
linear warmup/decay) on the training split minus its calibration slice (glue_data.split_train); the
epoch with the best calibration-slice accuracy is exported, and validation is measured once, at the
end, on the exported model (never used to choose anything).
"""
import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from glue_data import encode, shuffled_train_and_dev  # noqa: E402


def batches(rows, size, shuffle, rng):
    """Batches of similar length (sorted within shuffled windows of 50 batches): padding is most of
    the cost on a CPU when short and long sentences share a batch."""
    order = list(range(len(rows)))
    if shuffle:
        rng.shuffle(order)
    window = size * 50
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda j: text_length(rows[j][0]))
        groups = [chunk[i:i + size] for i in range(0, len(chunk), size)]
        if shuffle:
            rng.shuffle(groups)
        for g in groups:
            yield [rows[j] for j in g]


def text_length(text):
    return sum(len(t) for t in text) if isinstance(text, tuple) else len(text)


def optimizer_and_schedule(model, lr, steps):
    """AdamW over the trainable parameters, linear warmup over the first 10 % of steps, then linear decay."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    decay = max(1, steps - warmup)  # a one-step run (tests, smoke runs) has no decay phase
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / decay)))
    return opt, sched


def distillation_loss(logits, teacher_logits, labels, alpha, temperature):
    """(1 - alpha) x cross-entropy + alpha x T^2 x KL(teacher || student) on logits softened by T
    (Hinton et al.; block and movement pruning of BERT train with it)."""
    loss = torch.nn.functional.cross_entropy(logits, labels)
    soft = torch.softmax(teacher_logits / temperature, -1)
    kd = torch.nn.functional.kl_div(torch.log_softmax(logits / temperature, -1), soft, reduction="batchmean")
    return (1 - alpha) * loss + alpha * temperature ** 2 * kd


def hidden_state_loss(student_hidden, teacher_hidden, attention_mask, layer_masks=None):
    """Mean squared difference of two models' hidden states after every layer (the embeddings, entry
    0, are left out), over the real tokens, averaged over the layers: layer-wise distillation as
    TinyBERT and CoFi pruning use it. layer_masks (one [batch, seq] bool per layer, or None): the
    rows that count after each layer, where the student prunes tokens (their rows mean nothing)."""
    real = attention_mask.unsqueeze(-1).to(student_hidden[-1].dtype)
    if layer_masks is None:
        masks = [real] * (len(student_hidden) - 1)
    else:
        masks = [real * m.unsqueeze(-1).to(real.dtype) for m in layer_masks]
    per_layer = [((hs - ht) ** 2 * mask).sum() / (mask.sum() * hs.shape[-1])
                 for hs, ht, mask in zip(student_hidden[1:], teacher_hidden[1:], masks)]
    return torch.stack(per_layer).mean()


def distillation(teacher_dir, alpha, temperature, hidden_weight, layer_masks=None):
    """loss_fn(model, inputs, labels) for train_epoch: the frozen classifier in `teacher_dir` runs
    beside the model on each batch; distillation_loss on the logits, plus hidden_weight x
    hidden_state_loss when hidden_weight > 0. The pruning and CTA tools train with it.
    layer_masks: called after the student's forward pass, returns hidden_state_loss's layer_masks."""
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    hidden = hidden_weight > 0

    def loss_fn(model, inputs, labels):
        with torch.no_grad():
            taught = teacher(**inputs, output_hidden_states=hidden)
        out = model(**inputs, output_hidden_states=hidden)
        loss = distillation_loss(out.logits, taught.logits, labels, alpha, temperature)
        if hidden:
            loss = loss + hidden_weight * hidden_state_loss(out.hidden_states, taught.hidden_states, inputs["attention_mask"],
                                                            layer_masks() if layer_masks else None)
        return loss

    return loss_fn


def train_epoch(model, tokenizer, rows, opt, sched, args, rng, epoch, step, steps, report_every, loss_fn=None):
    """One shuffled pass over `rows` (args.batch_size, args.max_length); returns the step count after it.
    loss_fn(model, inputs, labels) -> loss replaces the model's own cross-entropy (distillation)."""
    model.train()
    t0 = time.time()
    for batch in batches(rows, args.batch_size, True, rng):
        inputs = encode(tokenizer, batch, args.max_length)
        labels = torch.tensor([r[1] for r in batch])
        loss = model(**inputs, labels=labels).loss if loss_fn is None else loss_fn(model, inputs, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        step += 1
        if step % report_every == 0:
            print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    return step


def evaluate(model, tokenizer, rows, max_length, batch_size):
    """(accuracy, F1 of label 1): F1 is what GLUE reports beside accuracy for MRPC."""
    model.eval()
    tp = fp = fn = correct = 0
    with torch.no_grad():
        for batch in batches(rows, batch_size, False, None):
            pred = model(**encode(tokenizer, batch, max_length)).logits.argmax(-1)
            for p, (_, label) in zip(pred.tolist(), batch):
                correct += int(p == label)
                tp += int(p == 1 and label == 1)
                fp += int(p == 1 and label != 1)
                fn += int(p != 1 and label == 1)
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return correct / len(rows), f1


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
    ap.add_argument("--train-word-embeddings", action="store_true",
                    help="also train the word-embedding table (frozen by default: on a CPU its AdamW update is "
                         "most of a step for large vocabularies, e.g. multilingual-e5's 250k rows, for no accuracy)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train, calibration, dev = shuffled_train_and_dev(args.data, rng)
    if args.train_limit:
        train = train[:args.train_limit]
    labels = sorted({r[1] for r in train})
    print(f"train {len(train)} rows, calibration {len(calibration)} rows (held out), validation {len(dev)} rows, "
          f"labels {labels}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    names = {0: "negative", 1: "positive"} if labels == [0, 1] else {i: f"LABEL_{i}" for i in labels}
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=names, label2id={v: k for k, v in names.items()})
    if not args.train_word_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    opt, sched = optimizer_and_schedule(model, args.lr, steps)

    best, best_epoch = -1.0, 0
    start = time.time()
    out = Path(args.out)
    step = 0
    for epoch in range(args.epochs):
        t0 = time.time()
        step = train_epoch(model, tokenizer, train, opt, sched, args, rng, epoch, step, steps, 200)
        acc, f1 = evaluate(model, tokenizer, calibration, args.max_length, 64)
        print(f"epoch {epoch}: calibration accuracy {acc:.4f} F1 {f1:.4f} ({time.time() - t0:.0f}s)", flush=True)
        if acc > best:
            best, best_epoch = acc, epoch
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
    # Validation, once, on the exported epoch.
    model = AutoModelForSequenceClassification.from_pretrained(out)
    dev_acc, dev_f1 = evaluate(model, tokenizer, dev, args.max_length, 64)
    (out / "finetune_result.json").write_text(json.dumps({
        "base_model": str(args.model), "data": str(args.data), "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "word_embeddings_trained": args.train_word_embeddings, "train_rows": len(train), "calibration_rows": len(calibration),
        "chosen_epoch": best_epoch, "calibration_accuracy": best, "validation_accuracy": dev_acc,
        "validation_f1": dev_f1, "torch": torch.__version__, "threads": args.threads,
        "seconds": round(time.time() - start, 1)}, indent=2) + "\n")
    print(f"epoch {best_epoch} exported (calibration accuracy {best:.4f}); validation accuracy {dev_acc:.4f} "
          f"F1 {dev_f1:.4f}; wrote {out}")


if __name__ == "__main__":
    main()
