#!/usr/bin/env python3
"""Train early-exit classifiers on a frozen fine-tuned BERT classifier by self-distillation
(FastBERT; Magic Pyramid eq. 3-4) and export them for `sieve`.

    python tools/train_exits.py --model models/minilm-sst2 --data ../shared/data/glue/sst2 \
        --variant block --ltp-final 0.02

One exit sits after each encoder layer l = 0 .. L-2 (the last layer has the model's own head). Loss =
sum over exits of KL(p_final || p_exit), p_final being the model's own softmax on the same input
(always the dense, unpruned model). The backbone and its head stay frozen.
  light  exit = pooler (Linear H->H, tanh) on the [CLS] row + classifier, from the model's own head
  block  exit = one BertLayer (a copy of the model's last layer) on layer l's hidden states, then
         pooler + classifier on the block's [CLS] row
  fastbert  exit = FastBERT's student classifier (see Exit), new weights
With --ltp-final T > 0 the backbone runs with LTP threshold pruning (threshold T*(l+1)/L on the mean
attention probability a token receives; [CLS] and [SEP] kept): pruned tokens are masked as keys in
all later layers and exits, which equals removing them (Magic Pyramid step 4).

Writes OUT/exits.json, OUT/exits.safetensors (exit.{l}.pooler.*, exit.{l}.classifier.*, and for block
exit.{l}.block.<BertLayer parameter names>, for fastbert exit.{l}.{reduce,query,key,value,output}.*) and
OUT/reference.jsonl (20 dev sentences, one per pass,
no pruning: ids, exit_logits per exit layer, final_logits) for the C++ parity test.
"""
import argparse
import copy
import json
import os
import random
import struct
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from common import quiet_libraries, write_atomically  # noqa: E402
from finetune_classifier import batches  # noqa: E402
from glue_data import encode as encode_rows, shuffled_train_and_dev  # noqa: E402

DEFAULT_LR = {"light": 1e-3, "block": 2e-4, "fastbert": 1e-3}
FASTBERT_HIDDEN, FASTBERT_HEADS = 128, 2
REFERENCE_SENTENCES = 20
NEG = torch.finfo(torch.float32).min  # what transformers puts in its additive masks


class Exit(torch.nn.Module):
    """One exit head. The block variant computes only the [CLS] query row of its BertLayer (keys and
    values over all live rows): every other output row is discarded, so this is exact and ~5x cheaper.
    The fastbert variant is FastBERT's student classifier: Linear H->128 + tanh, 2-head self-attention
    in 128 dimensions (again only the [CLS] query row is needed), [CLS] pooling, Linear 128->128 + tanh,
    Linear 128->N; its weights are ~15x fewer bytes than a BertLayer's, which is what batch-1 latency
    pays for."""

    def __init__(self, model, variant):
        super().__init__()
        self.variant = variant
        self.block = copy.deepcopy(model.bert.encoder.layer[-1]) if variant == "block" else None
        if variant == "fastbert":
            H, D = model.config.hidden_size, FASTBERT_HIDDEN
            self.reduce = torch.nn.Linear(H, D)
            self.query, self.key, self.value, self.output = (torch.nn.Linear(D, D) for _ in range(4))
            self.pooler = torch.nn.Linear(D, D)
            self.classifier = torch.nn.Linear(D, model.config.num_labels)
        else:
            self.pooler = copy.deepcopy(model.bert.pooler.dense)
            self.classifier = copy.deepcopy(model.classifier)
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, hidden, key_mask):
        if self.variant == "fastbert":
            r = torch.tanh(self.reduce(hidden))  # [B, S, D]
            B, S, D = r.shape
            d = D // FASTBERT_HEADS
            q = self.query(r[:, 0]).view(B, FASTBERT_HEADS, 1, d)
            k = self.key(r).view(B, S, FASTBERT_HEADS, d).transpose(1, 2)
            v = self.value(r).view(B, S, FASTBERT_HEADS, d).transpose(1, 2)
            scores = q @ k.transpose(-1, -2) / d ** 0.5 + key_mask  # [B, heads, 1, S]
            context = (torch.softmax(scores, -1) @ v).reshape(B, D)
            return self.classifier(torch.tanh(self.pooler(self.output(context))))
        cls = hidden[:, :1]
        if self.block is not None:
            # Cross-attention form of BertSelfAttention: query from the [CLS] row, keys/values from all rows.
            cls = self.block.attention(cls, encoder_hidden_states=hidden, encoder_attention_mask=key_mask)[0]
            cls = self.block.output(self.block.intermediate(cls), cls)
        return self.classifier(torch.tanh(self.pooler(cls[:, 0])))


def additive_mask(keep):
    """[B, S] bool of live tokens -> the [B, 1, 1, S] additive key mask BertLayer takes."""
    return (1.0 - keep.float())[:, None, None, :] * NEG


@torch.no_grad()
def backbone(model, enc, ltp_final, sep_id):
    """Run the frozen encoder layer by layer. Returns ([(hidden_l, key_mask_l)] for every layer, where
    key_mask_l is the mask layer l attended with, i.e. before layer l's own pruning), final logits."""
    layers = model.bert.encoder.layer
    L = len(layers)
    keep = enc["attention_mask"].bool()
    never_pruned = enc["input_ids"] == sep_id
    never_pruned[:, 0] = True
    hidden = model.bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
    states = []
    for l, layer in enumerate(layers):
        mask = additive_mask(keep)
        prune = ltp_final > 0 and l < L - 1  # pruning after the last layer would change nothing
        out = layer(hidden, attention_mask=mask, output_attentions=prune)
        hidden = out[0]
        states.append((hidden, mask))
        if prune:
            probs = out[1]  # [B, heads, query, key]
            live = keep.float()
            # LTP eq. 7: mean over heads and live queries of the probability each key receives.
            received = torch.einsum("bhqk,bq->bk", probs, live) / (probs.shape[1] * live.sum(1, keepdim=True))
            keep = keep & ((received >= ltp_final * (l + 1) / L) | never_pruned)
    logits = model.classifier(model.bert.pooler(hidden))
    return states, logits


def encode(tokenizer, rows, max_length):
    return encode_rows(tokenizer, rows, max_length)


@torch.no_grad()
def evaluate(model, exits, tokenizer, rows, args, sep_id):
    """Dev accuracy of each exit alone and of the final head, all under the same pruning setting."""
    for e in exits:
        e.eval()
    correct = [0] * (len(exits) + 1)
    for batch in batches(rows, 64, False, None):
        enc = encode(tokenizer, batch, args.max_length)
        states, final = backbone(model, enc, args.ltp_final, sep_id)
        labels = torch.tensor([r[1] for r in batch])
        logits = [e(*states[l]) for l, e in enumerate(exits)] + [final]
        for i, lg in enumerate(logits):
            correct[i] += int((lg.argmax(-1) == labels).sum())
    return [c / len(rows) for c in correct]


def save_safetensors(path, tensors):
    try:
        from safetensors.torch import save
        data = save(tensors, metadata={"format": "pt"})
    except ImportError:
        # The format by hand: u64 LE header length, JSON header, then the raw little-endian tensors.
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, t in tensors.items():
            n = t.numel() * 4
            header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n
        head = json.dumps(header).encode()
        head += b" " * (-len(head) % 8)  # keeps the tensor data 8-byte aligned
        data = struct.pack("<Q", len(head)) + head + b"".join(t.numpy().tobytes() for t in tensors.values())
    write_atomically(path, lambda f: f.write(data), "wb")


def export(out, model, exits, args, train_rows, accuracies, tokenizer, dev):
    cfg = model.config
    layers = list(range(len(exits)))
    tensors = {}
    for l, e in zip(layers, exits):
        for name, t in e.state_dict().items():
            tensors[f"exit.{l}.{name}"] = t.detach().float().contiguous().clone()
    meta = {"format": "sieve-exits", "version": 1, "variant": args.variant, "num_labels": cfg.num_labels,
            "hidden_size": cfg.hidden_size, "layers": layers}
    if args.variant == "block":
        meta["block"] = {"num_attention_heads": cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
                         "layer_norm_eps": cfg.layer_norm_eps}
    if args.variant == "fastbert":
        meta["fastbert"] = {"hidden_size": FASTBERT_HIDDEN, "num_attention_heads": FASTBERT_HEADS}
    meta["trained"] = {"data": str(args.data), "train_rows": train_rows, "epochs": args.epochs, "lr": args.lr,
                       "ltp_final": args.ltp_final, "calibration_accuracy_per_exit": accuracies[:-1],
                       "final_calibration_accuracy": accuracies[-1]}
    save_safetensors(out / "exits.safetensors", tensors)
    write_atomically(out / "exits.json", lambda f: f.write(json.dumps(meta, indent=2) + "\n"))

    # One sentence per pass (no padding) and no pruning, as the C++ parity test runs them.
    lines = []
    with torch.no_grad():
        for row in dev[:REFERENCE_SENTENCES]:
            enc = encode_rows(tokenizer, [row], args.max_length)
            states, final = backbone(model, enc, 0.0, tokenizer.sep_token_id)
            lines.append(json.dumps({"text": row[0], "ids": enc["input_ids"][0].tolist(),
                                     "exit_logits": [e(*states[l])[0].tolist() for l, e in zip(layers, exits)],
                                     "final_logits": final[0].tolist()}))
    write_atomically(out / "reference.jsonl", lambda f: f.write("\n".join(lines) + "\n"))


FIXTURE_SENTENCES = [
    "As a visual treat, the film is almost perfect.",
    "The plot is thin, the dialogue worse, and the ending drags on for what feels like an hour.",
    "Un film étonnant, Ça marche!",
    "short",
    "Nothing in this movie, not the acting, not the score, not even the popcorn, could save the evening "
    "from the relentless tedium of its second half, which seems to exist only to pad the running time.",
    "日本語の文も入れておく。",
]


def write_fixture(base_model, out):
    """Test fixture for the C++ parity test (no training, seconds on a CPU): OUT/model = base_model with a
    seeded random 2-label classification head, OUT/exits-light and OUT/exits-block = exits perturbed by
    seeded noise (so no exit equals the model's own head), each with its reference.jsonl."""
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(base_model, num_labels=2, architectures=["BertForSequenceClassification"])
    model = AutoModelForSequenceClassification.from_pretrained(base_model, config=config, attn_implementation="eager")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    (out / "model").mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model", safe_serialization=True)
    tokenizer.save_pretrained(out / "model")
    dev = [(t, 0) for t in FIXTURE_SENTENCES]
    for variant in ("light", "block", "fastbert"):
        exits = torch.nn.ModuleList(Exit(model, variant) for _ in range(model.config.num_hidden_layers - 1))
        with torch.no_grad():
            for p in exits.parameters():
                p.add_(0.05 * torch.randn_like(p))
        args = argparse.Namespace(variant=variant, data="(fixture)", epochs=0, lr=0.0, ltp_final=0.0, max_length=128)
        export(out / f"exits-{variant}", model, exits, args, 0, [0.0] * len(exits) + [0.0], tokenizer, dev)
    print(f"wrote test fixture {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fine-tuned BertForSequenceClassification HF directory")
    ap.add_argument("--data", help="GLUE task directory with train and validation files")
    ap.add_argument("--fixture", help="instead of training: write the C++ test fixture (see write_fixture) here")
    ap.add_argument("--variant", choices=["light", "block", "fastbert"], default="block")
    ap.add_argument("--train-limit", type=int, default=20000, help="first N shuffled training rows (0 = all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=None, help="default 1e-3 for light, 2e-4 for block")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ltp-final", type=float, default=0.0, help="train on LTP-pruned activations (0 = dense)")
    ap.add_argument("--out", help="output directory (default: MODEL/exits)")
    args = ap.parse_args()
    if args.fixture:
        quiet_libraries()
        write_fixture(args.model, Path(args.fixture))
        return
    if not args.data:
        ap.error("--data is required for training")
    if args.lr is None:
        args.lr = DEFAULT_LR[args.variant]
    out = Path(args.out) if args.out else Path(args.model) / "exits"

    quiet_libraries()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    # Exits are judged on the calibration slice (held out from fine-tuning and from this training);
    # validation is left for the one final report.
    train, dev, _ = shuffled_train_and_dev(args.data, rng)
    if args.train_limit:
        train = train[:args.train_limit]

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, attn_implementation="eager")
    model.eval()  # no dropout in the frozen backbone
    for p in model.parameters():
        p.requires_grad_(False)
    sep_id = tokenizer.sep_token_id
    L = model.config.num_hidden_layers
    exits = torch.nn.ModuleList(Exit(model, args.variant) for _ in range(L - 1))
    print(f"train {len(train)} rows, calibration {len(dev)} rows, {args.variant} exits after layers 0..{L - 2}, "
          f"lr {args.lr}, ltp_final {args.ltp_final}", flush=True)

    opt = torch.optim.AdamW(exits.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))

    step, t0 = 0, time.time()
    for epoch in range(args.epochs):
        exits.train()
        for batch in batches(train, args.batch_size, True, rng):
            enc = encode(tokenizer, batch, args.max_length)
            states, teacher = backbone(model, enc, args.ltp_final, sep_id)
            if args.ltp_final > 0:
                _, teacher = backbone(model, enc, 0.0, sep_id)  # distill toward the dense model
            log_teacher = F.log_softmax(teacher, -1)
            loss = sum(F.kl_div(F.log_softmax(e(*states[l]), -1), log_teacher, log_target=True, reduction="batchmean")
                       for l, e in enumerate(exits))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(exits.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    seconds = time.time() - t0
    print(f"trained in {seconds:.0f}s: {1000 * seconds / max(1, len(train) * args.epochs):.1f}s per 1000 examples "
          f"({args.threads} threads)", flush=True)

    accuracies = evaluate(model, exits, tokenizer, dev, args, sep_id)
    setting = f"ltp:final={args.ltp_final}" if args.ltp_final > 0 else "dense"
    for l, acc in enumerate(accuracies[:-1]):
        print(f"exit after layer {l}: calibration accuracy {acc:.4f} ({setting})")
    print(f"final classifier: calibration accuracy {accuracies[-1]:.4f} ({setting})", flush=True)

    export(out, model, exits, args, len(train), accuracies, tokenizer, dev)
    print(f"wrote {out}/exits.json, exits.safetensors, reference.jsonl")


if __name__ == "__main__":
    main()
