#!/usr/bin/env python3
"""Write a BERT model directory with random weights, for latency benchmarks only.

The default shape is BERT-base (12 layers, hidden 768, 12 heads, FFN 3072). Weights go
to model.safetensors; the tokenizer files are copied from the default model so the
directory tokenizes like all-MiniLM-L6-v2 (same uncased WordPiece vocabulary).
Cached: skipped when OUT already holds a model with the same shape and seed.
"""

import argparse
import json
import shutil
from pathlib import Path

from common import TOKENIZER_FILES, default_model_dir, quiet_libraries

# Records the seed (config.json has no field for it); written last, so it also marks
# a complete directory.
SEED_FILE = "random_seed.txt"


def requested_config(args, vocab_size: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=args.hidden,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      intermediate_size=args.intermediate, max_position_embeddings=512,
                      architectures=["BertModel"])


def already_written(out: Path, config, seed: int) -> bool:
    try:
        existing = json.loads((out / "config.json").read_text())
        written_seed = int((out / SEED_FILE).read_text())
    except (OSError, ValueError):
        return False
    shape_keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size")
    return (written_seed == seed and (out / "model.safetensors").is_file()
            and all(existing.get(key) == getattr(config, key) for key in shape_keys))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite even if OUT matches")
    args = parser.parse_args()

    quiet_libraries()
    import torch
    from transformers import BertModel

    source = default_model_dir()
    vocab_size = json.loads((source / "config.json").read_text())["vocab_size"]
    config = requested_config(args, vocab_size)
    if not args.force and already_written(args.out, config, args.seed):
        print(f"{args.out}: up to date")
        return

    torch.manual_seed(args.seed)
    model = BertModel(config).eval()  # BERT's own init: N(0, 0.02) weights, unit LayerNorm
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / SEED_FILE).unlink(missing_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, args.out / name)
    (args.out / SEED_FILE).write_text(f"{args.seed}\n")
    parameter_count = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
          f"FFN {args.intermediate}, {parameter_count / 1e6:.1f}M parameters, seed {args.seed}")


if __name__ == "__main__":
    main()
