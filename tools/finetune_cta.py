#!/usr/bin/env python3
"""Fine-tune a sequence classifier with compressed token attention (CTA) in its forward pass, the
paper's recipe for recovering accuracy at a given compression (section V, "Methodology": the
approximation is differentiable and the model is fine-tuned with it). The LSH draws are Sieve's
(tools/cta_torch.py, parity-tested), so the exported model is served by `sieve eval/classify` with
the same `cta:` spec, which is written to <out>/cta.json.

    python tools/finetune_cta.py --model models/minilm-sst2 --cta w=24,l=6,seed=0 \\
        --train out/data/sst2-long-train-minilm-sst2.tsv \\
        --calibration out/data/sst2-long-calibration-minilm-sst2.tsv --out models/minilm-sst2-cta-w24

--train and --calibration are GLUE TSV files (tools/make_long_inputs.py --split train / calibration:
documents built from the training split minus its calibration slice, and from the slice). The
epoch with the best calibration accuracy (CTA on unless --cta none) is exported; validation is never read here.

--distill-alpha A and --distill-hidden B (not in the paper, whose recipe is labels only: both 0 by
default): the dense start model (or --teacher) runs beside the CTA model on each batch; the loss mixes
its softened logits in (finetune_classifier.distillation_loss) and adds B x the mean squared
difference of the two models' hidden states after every layer, so each CTA layer is pulled towards
what the dense layer computed, not only the output towards the labels.

--spatten tokens=R[,start=S] (not in the CTA paper): SpAtten's cascade token pruning runs in the same
forward pass, ranked by CTA's attention (cta_torch.TokenPruning, parity-tested against Sieve), so
the model learns to classify from the tokens Sieve will keep; the exported spec is
spatten:tokens=R,..+cta:... The hidden-state loss then counts only the rows still alive.
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

import cta_torch  # noqa: E402
from finetune_classifier import distillation, evaluate, optimizer_and_schedule, train_epoch  # noqa: E402
from glue_data import read_rows  # noqa: E402


def parse_cta(text):
    """'w=24,l=6,seed=0[,share=layer][,layers=a-b]' -> keyword arguments for cta_torch.CtaConfig."""
    fields = dict(kv.split("=", 1) for kv in text.split(",") if kv)
    unknown = set(fields) - {"w", "l", "seed", "share", "layers"}
    if unknown or "w" not in fields:
        raise SystemExit(f"--cta {text}: expected w=W[,l=L][,seed=S][,share=head|layer][,layers=a-b]")
    layers = None
    if "layers" in fields:
        a, _, b = fields["layers"].partition("-")
        layers = range(int(a), int(b or a) + 1)
    return {"w": float(fields["w"]), "l": int(fields.get("l", 6)), "seed": int(fields.get("seed", 0)),
            "shared": fields.get("share", "head") == "layer", "layers": layers}


def parse_spatten(text, num_layers):
    """'tokens=0.3[,start=1]' -> the per-layer keep ratios of Sieve's spatten:tokens=..,start=.. (at=ffn)."""
    fields = dict(kv.split("=", 1) for kv in text.split(",") if kv)
    if set(fields) - {"tokens", "start"} or "tokens" not in fields:
        raise SystemExit(f"--spatten {text}: expected tokens=R[,start=S]")
    return cta_torch.TokenPruning.progressive(float(fields["tokens"]), int(fields.get("start", 1)), num_layers)


def spec_of(cta, spatten=None):
    spec = "dense" if cta == "none" else "cta:" + cta
    return spec if not spatten else f"spatten:{spatten}+{spec}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fine-tuned HF classifier to start from")
    ap.add_argument("--cta", required=True, help="CTA settings as in Sieve's spec without 'cta:', or 'none' (dense)")
    ap.add_argument("--train", required=True, help="training TSV (long documents from the fit rows)")
    ap.add_argument("--calibration", required=True, help="calibration TSV (long documents from the calibration slice)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--train-limit", type=int, default=0, help="first N shuffled training documents (0 = all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distill-alpha", type=float, default=0.0,
                    help="weight of a dense teacher's soft labels (0, the paper's recipe: labels only)")
    ap.add_argument("--spatten", help="SpAtten token pruning in the loop beside CTA, as Sieve's spatten: options "
                                      "'tokens=R[,start=S]' (pruned before each layer's FFN, Sieve's default); needs --cta")
    ap.add_argument("--teacher", help="dense classifier to distill from (default: --model, run without CTA)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--distill-hidden", type=float, default=0.0,
                    help="weight of the mean squared difference between the teacher's and the CTA model's hidden "
                         "states after every layer (real tokens only); needs the teacher")
    args = ap.parse_args()
    if not 0 <= args.distill_alpha <= 1 or args.distill_hidden < 0:
        raise SystemExit("--distill-alpha must be in [0, 1] and --distill-hidden >= 0")

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train, calibration = read_rows(args.train), read_rows(args.calibration)
    rng.shuffle(train)
    if args.train_limit:
        train = train[:args.train_limit]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    hf = model.config
    # --cta none: the same loop without CTA, the dense model that CTA's accuracy is compared with.
    state = None
    if args.spatten and args.cta == "none":
        raise SystemExit("--spatten needs --cta: the tokens are ranked by CTA's attention")
    if args.cta != "none":
        cta = cta_torch.CtaConfig(num_layers=hf.num_hidden_layers, hidden=hf.hidden_size, heads=hf.num_attention_heads,
                                  **parse_cta(args.cta))
        pruning = cta_torch.TokenPruning(parse_spatten(args.spatten, hf.num_hidden_layers)) if args.spatten else None
        state = cta_torch.attach_cta(model, cta, pruning)
    model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    # The teacher is the start model without CTA (loaded again: CTA is attached in place above).
    distilled = args.distill_alpha > 0 or args.distill_hidden > 0
    # Pruned tokens' rows mean nothing after the layer that dropped them: the hidden-state loss skips them.
    layer_masks = (lambda: state.pruning.alive) if args.spatten else None
    loss_fn = distillation(args.teacher or args.model, args.distill_alpha, args.temperature,
                           args.distill_hidden, layer_masks) if distilled else None
    print(f"train {len(train)} documents, calibration {len(calibration)}; {spec_of(args.cta, args.spatten)}; "
          f"distillation: logits {args.distill_alpha}, hidden states {args.distill_hidden}", flush=True)

    def calibrate():
        if state is None:
            return evaluate(model, tokenizer, calibration, args.max_length, 16)[0], 1.0, 1.0
        state.record = []
        acc, _ = evaluate(model, tokenizer, calibration, args.max_length, 16)
        rl, ra = cta_torch.rl_ra(state.record, hf.hidden_size, hf.hidden_size // hf.num_attention_heads)
        state.record = None
        return acc, rl, ra

    t0 = time.time()
    acc, rl, ra = calibrate()
    history = [{"epoch": -1, "calibration_accuracy": acc, "rl": rl, "ra": ra, "seconds": round(time.time() - t0, 1)}]
    mode = "dense" if state is None else "CTA + token pruning on" if args.spatten else "CTA on"
    print(f"before fine-tuning: calibration accuracy {acc:.4f} ({mode}), RL {rl:.3f} RA {ra:.3f}", flush=True)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    opt, sched = optimizer_and_schedule(model, args.lr, steps)
    best, best_epoch, step = -1.0, -1, 0
    out = Path(args.out)
    for epoch in range(args.epochs):
        t0 = time.time()
        step = train_epoch(model, tokenizer, train, opt, sched, args, rng, epoch, step, steps, 20, loss_fn)
        acc, rl, ra = calibrate()
        history.append({"epoch": epoch, "calibration_accuracy": acc, "rl": rl, "ra": ra, "seconds": round(time.time() - t0, 1)})
        print(f"epoch {epoch}: calibration accuracy {acc:.4f} ({mode}), RL {rl:.3f} RA {ra:.3f} ({time.time() - t0:.0f}s)", flush=True)
        if acc > best:
            best, best_epoch = acc, epoch
            # Export plain BERT modules (the CTA wrappers share their Linear layers, so the weights
            # are the fine-tuned ones): Sieve reads a standard HF directory.
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
    (out / "cta.json").write_text(json.dumps({
        "spec": spec_of(args.cta, args.spatten), "base_model": str(args.model), "train": str(args.train), "calibration": str(args.calibration),
        "train_documents": len(train), "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "distill_alpha": args.distill_alpha, "distill_hidden": args.distill_hidden,
        "teacher": str(args.teacher or args.model) if distilled else None, "temperature": args.temperature,
        "chosen_epoch": best_epoch, "history": history, "torch": torch.__version__, "threads": args.threads}, indent=2) + "\n")
    print(f"epoch {best_epoch} exported to {out} (calibration accuracy {best:.4f}, {mode})")


if __name__ == "__main__":
    main()
