#!/usr/bin/env python3
"""Learned Token Pruning (LTP), the two-stage recipe as the Magic Pyramid paper restates it (eq. 7-10):
learn per-layer thresholds with a soft mask, then fine-tune the model under the hard mask, and
export an HF directory plus the `sieve eval` spec with the learned thresholds.

    python tools/train_ltp.py --model models/minilm-sst2 --data ../shared/data/glue/sst2 \
        --out models/minilm-sst2-ltp --final 0.01

Importance (eq. 7): s_l(x_i) = mean over heads and live queries of the attention probability token i
receives in layer l: the score Sieve's `ltp:` policy uses.
Stage 1, soft (eq. 8-9): after layer l (all but the last), H_l(x_i) *= sigmoid((s_l(x_i) - D_l) / T);
thresholds D_l start at final * (l + 1) / L and are trained with the model; loss = cross-entropy +
lambda * mean soft mask (LTP's L1 regularizer: the masks are positive, so L1 is their mean).
Stage 2, hard (eq. 10, read as s > D): thresholds frozen, tokens below them are removed from layer
l + 1 on (masked as keys; their own rows are never read again, the [CLS] and [SEP] tokens are kept),
which equals what `sieve eval -p "ltp:thresholds=...,at=next"` computes; the model is fine-tuned.
Writes OUT (model + tokenizer) and OUT/ltp.json {"thresholds": [...], "spec": "...", calibration-slice accuracies}.
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

from finetune_classifier import batches  # noqa: E402
from glue_data import encode, shuffled_train_and_dev  # noqa: E402

NEG = -1e4  # additive key mask, as BERT's own extended attention mask


def importance(probs, live):
    """LTP eq. 7: [B, heads, query, key] probabilities, [B, S] live queries -> [B, S] mean received."""
    return torch.einsum("bhqk,bq->bk", probs, live) / (probs.shape[1] * live.sum(1, keepdim=True))


def forward(model, enc, thresholds, mode, temperature, sep_id):
    """Logits with LTP in `mode` ("soft" or "hard"), the mean soft mask (for the regularizer) and the
    fraction of token-layers kept (hard)."""
    layers = model.bert.encoder.layer
    L = len(layers)
    live = enc["attention_mask"].float()
    never_pruned = enc["input_ids"] == sep_id
    never_pruned[:, 0] = True
    keep = enc["attention_mask"].bool()
    hidden = model.bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
    mask_terms, kept, total = [], 0.0, 0.0
    for l, layer in enumerate(layers):
        key_mask = (1.0 - keep.float())[:, None, None, :] * NEG
        out = layer(hidden, attention_mask=key_mask, output_attentions=l < L - 1)
        hidden = out[0]
        if l == L - 1:
            break
        queries = keep.float() if mode == "hard" else live
        score = importance(out[1], queries)
        if mode == "soft":
            soft = torch.sigmoid((score - thresholds[l]) / temperature)
            soft = torch.where(never_pruned, torch.ones_like(soft), soft)
            hidden = hidden * soft[:, :, None]
            mask_terms.append((soft * live).sum() / live.sum())
        else:
            keep = keep & ((score > thresholds[l]) | never_pruned)
            kept += float((keep.float() * live).sum())
            total += float(live.sum())
    logits = model.classifier(model.bert.pooler(hidden))
    mean_mask = torch.stack(mask_terms).mean() if mask_terms else torch.zeros(())
    return logits, mean_mask, (kept / total if total else 1.0)


@torch.no_grad()
def evaluate(model, tokenizer, rows, thresholds, mode, args, sep_id):
    model.eval()
    correct, keep_sum, n = 0, 0.0, 0
    for batch in batches(rows, 64, False, None):
        enc = encode(tokenizer, batch, args.max_length)
        logits, _, kept = forward(model, enc, thresholds, mode, args.temperature, sep_id)
        correct += int((logits.argmax(-1) == torch.tensor([r[1] for r in batch])).sum())
        keep_sum += kept * len(batch)
        n += len(batch)
    return correct / n, keep_sum / n


def train_stage(model, tokenizer, rows, thresholds, mode, args, sep_id, rng):
    groups = [{"params": list(model.parameters()), "weight_decay": 0.01}]
    if mode == "soft":  # the thresholds learn in the soft stage only, without weight decay
        groups.append({"params": [thresholds], "weight_decay": 0.0, "lr": args.threshold_lr})
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    model.train()
    t0, step = time.time(), 0
    for batch in batches(rows, args.batch_size, True, rng):
        enc = encode(tokenizer, batch, args.max_length)
        logits, mean_mask, _ = forward(model, enc, thresholds, mode, args.temperature, sep_id)
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([r[1] for r in batch]))
        if mode == "soft":
            loss = loss + args.l1 * mean_mask
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if mode == "soft":
            with torch.no_grad():
                thresholds.clamp_(min=0.0)
        step += 1
        if step % 50 == 0:
            print(f"{mode} step {step}: loss {loss.item():.4f}, mean mask {float(mean_mask):.3f}, "
                  f"thresholds {[round(float(t), 4) for t in thresholds]} ({time.time() - t0:.0f}s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fine-tuned HF classifier directory")
    ap.add_argument("--data", required=True, help="directory with train and validation files (parquet or tsv)")
    ap.add_argument("--out", required=True, help="output HF directory")
    ap.add_argument("--final", type=float, default=0.01, help="initial last-layer threshold (lower layers linear)")
    ap.add_argument("--temperature", type=float, default=5e-5, help="soft-mask temperature T (paper: 1e-5..5e-5)")
    ap.add_argument("--l1", type=float, default=0.01, help="lambda of the soft-mask regularizer (paper: 0.001..0.2)")
    ap.add_argument("--lr", type=float, default=2e-5, help="model learning rate (paper: 2e-5)")
    ap.add_argument("--threshold-lr", type=float, default=2e-5, help="threshold learning rate")
    ap.add_argument("--soft-rows", type=int, default=4000, help="training rows for stage 1")
    ap.add_argument("--hard-rows", type=int, default=4000, help="training rows for stage 2")
    ap.add_argument("--dev-limit", type=int, default=0, help="evaluate on the first N calibration rows only (0 = all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    # "dev" here is the calibration slice: held out from fine-tuning, never validation.
    train, dev, _ = shuffled_train_and_dev(args.data, rng)
    dev = dev[:args.dev_limit] if args.dev_limit else dev
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, attn_implementation="eager")
    sep_id = tokenizer.sep_token_id
    L = model.config.num_hidden_layers
    thresholds = torch.nn.Parameter(torch.tensor([args.final * (l + 1) / L for l in range(L - 1)]))

    start_acc, start_keep = evaluate(model, tokenizer, dev, thresholds, "hard", args, sep_id)
    print(f"before: calibration accuracy {start_acc:.4f} with the initial thresholds hard (keep {start_keep:.3f})", flush=True)
    train_stage(model, tokenizer, train[:args.soft_rows], thresholds, "soft", args, sep_id, rng)
    thresholds.requires_grad_(False)
    soft_acc, soft_keep = evaluate(model, tokenizer, dev, thresholds, "hard", args, sep_id)
    print(f"after soft stage: thresholds {[round(float(t), 5) for t in thresholds]}, hard calibration accuracy "
          f"{soft_acc:.4f} (keep {soft_keep:.3f})", flush=True)
    train_stage(model, tokenizer, train[args.soft_rows:args.soft_rows + args.hard_rows], thresholds, "hard", args, sep_id, rng)
    acc, keep = evaluate(model, tokenizer, dev, thresholds, "hard", args, sep_id)
    print(f"after hard stage: calibration accuracy {acc:.4f} (keep {keep:.3f} of token-layers)", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    per_layer = [float(t) for t in thresholds] + [0.0]  # nothing to prune after the last layer
    spec = "ltp:thresholds=" + "/".join(f"{t:.6g}" for t in per_layer) + ",at=next"
    (out / "ltp.json").write_text(json.dumps({
        "thresholds": per_layer, "spec": spec, "base_model": str(args.model), "final": args.final,
        "temperature": args.temperature, "l1": args.l1, "lr": args.lr, "soft_rows": args.soft_rows,
        "hard_rows": args.hard_rows, "calibration_accuracy_initial_hard": start_acc, "calibration_accuracy_after_soft": soft_acc,
        "calibration_accuracy": acc, "calibration_keep": keep}, indent=2) + "\n")
    print(f"wrote {out}; evaluate with: sieve eval --model {out} -p \"{spec}\"")


if __name__ == "__main__":
    main()
