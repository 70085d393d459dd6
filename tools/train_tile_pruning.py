#!/usr/bin/env python3
"""E.T.-style tensor-tile weight pruning while fine-tuning (issue 22): prune the encoder's linear
weights in whole tiles, gradually, while training the classifier, and export one ordinary Hugging
Face directory per target sparsity (the pruned tiles are exact zeros, which Sieve detects at load)
plus `tile_mask.json` saying what was pruned.

    .venv-train/bin/python tools/train_tile_pruning.py --model models/minilm-sst2 \
        --data ../shared/data/glue/sst2 --out models/minilm-sst2-tiles --sparsities 0.5,0.7,0.8,0.9

Method (E.T., SC'21, `../shared/seeds/et-efficient-transformer-slides.txt`: "prune the model as
fine-tuning", tensor-tile pruning):
- Every encoder linear weight W [out, in] (Q, K, V, attention output, FFN in, FFN out) is cut into
  tiles of --tile OUTxIN; a tile's importance is its L2 norm (magnitude pruning at tile grain); each
  weight keeps its (1 - s) most important tiles, so every matrix has the same tile sparsity s.
- Sparsity rises gradually (Zhu & Gupta's cubic schedule) over --ramp-steps, then --recover-steps
  train at that sparsity; the model is exported, and the next target starts from it. Masks only
  grow: a pruned tile is zero after every optimizer step, so its norm stays the smallest.
- `--scheme attention-aware` is E.T.'s variant for self-attention (its released encoder_prune_test:
  Q, K, O and the FFN tile-pruned, V row-pruned): V loses whole output rows (the same number in each
  head), so the attention's P.V product shrinks with it.
- Knowledge distillation (`--distill-alpha`, default 0.9; 0 turns it off): the unpruned start model
  is the teacher (or `--teacher`), and the loss is (1 - alpha) x cross-entropy + alpha x T^2 x KL(teacher || student)
  on logits softened by `--temperature` (Hinton et al.; what block and movement pruning of BERT train
  with). E.T. fine-tunes on labels only; `--distill-alpha 0` is that reading. `--distill-hidden B`
  adds B x the mean squared difference of the teacher's and the pruned model's hidden states after
  every layer (layer-wise distillation, as TinyBERT and CoFi pruning use).
- The learning rate stays at --lr while sparsity ramps and decays linearly to --lr-floor x lr over
  each target's recovery steps (then starts again for the next target).
Embeddings, pooler and classifier are not pruned. Knobs are judged on the calibration slice of the
training split only; validation is left to `sieve eval`, once.
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
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from finetune_classifier import batches, distillation, evaluate  # noqa: E402
from glue_data import encode, shuffled_train_and_dev  # noqa: E402


def prunable_weights(model):
    """(name, Linear) of every encoder linear layer: what E.T. prunes."""
    out = []
    for name, module in model.base_model.encoder.named_modules():
        if isinstance(module, torch.nn.Linear):
            out.append((name, module))
    return out


def tile_norms(weight, tile_out, tile_in):
    """L2 norm of every tile of `weight` [out, in] -> [out / tile_out, in / tile_in]."""
    out, inp = weight.shape
    if out % tile_out or inp % tile_in:
        raise SystemExit(f"weight {tuple(weight.shape)} is not a whole number of {tile_out}x{tile_in} tiles")
    tiles = weight.detach().reshape(out // tile_out, tile_out, inp // tile_in, tile_in)
    return tiles.pow(2).sum(dim=(1, 3)).sqrt()


def tile_mask(weight, sparsity, tile_out, tile_in):
    """Mask keeping the (1 - sparsity) highest-norm tiles of `weight`."""
    norms = tile_norms(weight, tile_out, tile_in)
    pruned = int(round(sparsity * norms.numel()))
    keep = torch.ones_like(norms, dtype=torch.bool)
    if pruned > 0:
        order = torch.argsort(norms.flatten(), stable=True)
        keep.view(-1)[order[:pruned]] = False
    return keep.repeat_interleave(tile_out, 0).repeat_interleave(tile_in, 1)


def global_tile_masks(named_weights, sparsity, tile_out, tile_in, max_weight_sparsity):
    """Masks pruning the `sparsity` fraction of lowest-norm tiles ranked across all the weights
    together (not E.T.'s same fraction per matrix), so matrices that matter keep more tiles. No
    weight loses more than `max_weight_sparsity` of its tiles (a whole Q or K would go otherwise)."""
    norms = {name: tile_norms(w, tile_out, tile_in) for name, w in named_weights}
    flat = torch.cat([n.flatten() for n in norms.values()])
    pruned = int(round(sparsity * flat.numel()))
    if pruned == 0:
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in named_weights}
    threshold = torch.sort(flat).values[pruned - 1]
    masks = {}
    for name, w in named_weights:
        keep = norms[name] > threshold
        cap = min(max_weight_sparsity, 1 - 1 / keep.numel())  # at least one tile stays
        if 1 - keep.float().mean().item() > cap:
            masks[name] = tile_mask(w, cap, tile_out, tile_in)
            continue
        masks[name] = keep.repeat_interleave(tile_out, 0).repeat_interleave(tile_in, 1)
    return masks


def row_mask(weight, sparsity, heads):
    """E.T.'s V row pruning: the same number of lowest-norm output rows removed in every head."""
    out = weight.shape[0]
    per_head = out // heads
    pruned = int(round(sparsity * per_head))
    norms = weight.detach().pow(2).sum(1).reshape(heads, per_head)
    keep = torch.ones_like(norms, dtype=torch.bool)
    if pruned > 0:
        order = torch.argsort(norms, dim=1, stable=True)
        keep.scatter_(1, order[:, :pruned], False)
    return keep.reshape(out, 1).expand_as(weight)


def current_sparsity(step, start, target, ramp):
    """Zhu & Gupta's gradual schedule: fast at first, flat near the target."""
    if step >= ramp:
        return target
    t = step / ramp
    return target + (start - target) * (1 - t) ** 3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fine-tuned HF classifier to start from")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="output prefix: OUT-s50, OUT-s70, ... are written")
    ap.add_argument("--sparsities", default="0.5,0.7,0.8,0.9", help="increasing targets, each exported")
    ap.add_argument("--tile", default="16x16", help="OUTxIN tile shape")
    ap.add_argument("--scheme", choices=["tile", "attention-aware"], default="tile")
    ap.add_argument("--ranking", choices=["per-weight", "global"], default="per-weight",
                    help="per-weight: every matrix at the target sparsity (E.T.); global: tiles ranked across all "
                         "matrices (tile scheme only)")
    ap.add_argument("--max-weight-sparsity", type=float, default=0.97,
                    help="with --ranking global: the most any one weight may lose")
    ap.add_argument("--ramp-steps", type=int, default=300)
    ap.add_argument("--recover-steps", type=int, default=300)
    ap.add_argument("--mask-every", type=int, default=25, help="recompute masks every N steps while ramping")
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--lr-floor", type=float, default=1.0, help="lr at the end of recovery, as a fraction of --lr")
    ap.add_argument("--distill-alpha", type=float, default=0.9, help="weight of the teacher's soft labels (0: labels only)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--distill-hidden", type=float, default=0.0,
                    help="weight of the teacher's hidden states after every layer (mean squared difference, real "
                         "tokens); needs the teacher (--distill-alpha > 0)")
    ap.add_argument("--teacher", help="unpruned classifier to distill from (default: --model)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tile_out, tile_in = (int(x) for x in args.tile.lower().split("x"))
    targets = [float(s) for s in args.sparsities.split(",")]
    if targets != sorted(targets) or not all(0 <= s < 1 for s in targets):
        raise SystemExit("--sparsities must increase, each in [0, 1)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train, calibration, _ = shuffled_train_and_dev(args.data, rng)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    heads = model.config.num_attention_heads
    if args.distill_hidden > 0 and args.distill_alpha <= 0:
        raise SystemExit("--distill-hidden needs a teacher (--distill-alpha > 0)")
    # With a teacher: the unpruned start model (or --teacher) beside the pruned one on each batch.
    distilled = distillation(args.teacher or args.model, args.distill_alpha, args.temperature,
                             args.distill_hidden) if args.distill_alpha > 0 else None
    weights = prunable_weights(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)

    if args.ranking == "global" and args.scheme != "tile":
        raise SystemExit("--ranking global works with --scheme tile only")

    def make_masks(sparsity):
        if args.ranking == "global":
            return global_tile_masks([(n, l.weight) for n, l in weights], sparsity, tile_out, tile_in,
                                     args.max_weight_sparsity)
        masks = {}
        for name, linear in weights:
            if args.scheme == "attention-aware" and name.endswith("attention.self.value"):
                masks[name] = row_mask(linear.weight, sparsity, heads)
            else:
                masks[name] = tile_mask(linear.weight, sparsity, tile_out, tile_in)
        return masks

    def apply(masks):
        with torch.no_grad():
            for name, linear in weights:
                linear.weight.mul_(masks[name])

    base_acc, _ = evaluate(model, tokenizer, calibration, args.max_length, 64)
    print(f"start: calibration accuracy {base_acc:.4f}; {len(weights)} weights, tile {tile_out}x{tile_in}, "
          f"scheme {args.scheme}", flush=True)
    stream = iter(())
    results = []
    sparsity_before = 0.0
    start = time.time()
    for target in targets:
        masks = make_masks(sparsity_before)
        t0 = time.time()
        for step in range(args.ramp_steps + args.recover_steps):
            if step < args.ramp_steps and step % args.mask_every == 0:
                masks = make_masks(current_sparsity(step, sparsity_before, target, args.ramp_steps))
            if step == args.ramp_steps:
                masks = make_masks(target)
            apply(masks)
            batch = next(stream, None)
            if batch is None:
                stream = batches(train, args.batch_size, True, rng)
                batch = next(stream)
            for group in opt.param_groups:
                done = max(0, step - args.ramp_steps) / max(1, args.recover_steps)
                group["lr"] = args.lr * (1 - (1 - args.lr_floor) * done)
            model.train()
            inputs = encode(tokenizer, batch, args.max_length)
            labels = torch.tensor([r[1] for r in batch])
            if distilled is None:
                loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
            else:
                loss = distilled(model, inputs, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            if (step + 1) % 100 == 0:
                print(f"target {target}: step {step + 1} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if args.ramp_steps + args.recover_steps == 0:  # one-shot magnitude pruning, no training
            masks = make_masks(target)
        apply(masks)
        zeros = sum(int((~masks[n]).sum()) for n, _ in weights)
        total = sum(masks[n].numel() for n, _ in weights)
        acc, _ = evaluate(model, tokenizer, calibration, args.max_length, 64)
        out = Path(f"{args.out}-s{round(target * 100)}")
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        record = {"base_model": str(args.model), "tile": [tile_out, tile_in], "scheme": args.scheme,
                  "ranking": args.ranking,
                  "target_sparsity": target, "pruned_weight_fraction": zeros / total,
                  "calibration_accuracy": acc, "start_calibration_accuracy": base_acc,
                  "ramp_steps": args.ramp_steps, "recover_steps": args.recover_steps, "lr": args.lr,
                  "lr_floor": args.lr_floor, "distill_alpha": args.distill_alpha, "temperature": args.temperature,
                  "distill_hidden": args.distill_hidden,
                  "batch_size": args.batch_size, "seconds": round(time.time() - start, 1),
                  "torch": torch.__version__, "threads": args.threads,
                  "weights": {n: round(float((~masks[n]).float().mean()), 4) for n, _ in weights}}
        (out / "tile_mask.json").write_text(json.dumps(record, indent=2) + "\n")
        results.append(record)
        print(f"target {target}: calibration accuracy {acc:.4f} (start {base_acc:.4f}), "
              f"{zeros / total:.3f} of the encoder's linear weights zero; wrote {out} "
              f"({time.time() - t0:.0f}s)", flush=True)
        sparsity_before = target
    if not math.isfinite(sum(r["calibration_accuracy"] for r in results)):
        raise SystemExit("non-finite accuracy")


if __name__ == "__main__":
    main()
