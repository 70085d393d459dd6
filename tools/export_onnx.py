#!/usr/bin/env python3
"""Export a Hugging Face BERT-style encoder to ONNX and check it against PyTorch.

The graph takes input_ids, attention_mask and token_type_ids (int64, [batch, sequence],
both axes dynamic) and returns last_hidden_state. The export is cached: it is skipped
when FILE is newer than the model's weights and this tool.
"""

import argparse
from pathlib import Path

from common import is_up_to_date, quiet_libraries, write_atomically

OPSET = 14  # torch 1.13 exports up to 17; 14 is enough for BERT and widely supported
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
TOLERANCE = 1e-4


def sample_inputs(vocab_size: int, batch: int, sequence: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, vocab_size, (batch, sequence), generator=generator)
    attention_mask = torch.ones(batch, sequence, dtype=torch.int64)
    attention_mask[-1, sequence // 2:] = 0  # one padded row exercises the mask path
    token_type_ids = torch.zeros(batch, sequence, dtype=torch.int64)
    return input_ids, attention_mask, token_type_ids


def load_encoder(model_dir: Path):
    import torch
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()

    class LastHiddenState(torch.nn.Module):
        """Keeps the graph to the single output the benchmarks and tests use."""

        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    return LastHiddenState().eval(), encoder.config.vocab_size


def export(model_dir: Path, out_file: Path):
    import torch

    wrapper, vocab_size = load_encoder(model_dir)
    sequence_axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        write_atomically(out_file, lambda handle: torch.onnx.export(
            wrapper, sample_inputs(vocab_size, batch=2, sequence=16, seed=0), handle,
            input_names=INPUT_NAMES, output_names=["last_hidden_state"],
            dynamic_axes={**{name: sequence_axes for name in INPUT_NAMES},
                          "last_hidden_state": sequence_axes},
            opset_version=OPSET, do_constant_folding=True), mode="wb")
    return wrapper, vocab_size


def verify(wrapper, vocab_size: int, onnx_file: Path) -> float:
    """Max |onnxruntime - torch| on a shape unlike the export sample, so dynamic axes are tested."""
    import onnxruntime
    import torch

    inputs = sample_inputs(vocab_size, batch=3, sequence=37, seed=1)
    with torch.no_grad():
        expected = wrapper(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {name: tensor.numpy() for name, tensor in zip(INPUT_NAMES, inputs)})
    return float(abs(actual - expected).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model directory")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--force", action="store_true", help="export even if FILE looks fresh")
    args = parser.parse_args()

    weights = sorted(args.model.glob("*.safetensors")) or [args.model]
    if not args.force and is_up_to_date(args.out, [*weights, Path(__file__)]):
        print(f"{args.out}: up to date")
        return
    quiet_libraries()
    wrapper, vocab_size = export(args.model, args.out)
    max_difference = verify(wrapper, vocab_size, args.out)
    if max_difference > TOLERANCE:
        args.out.unlink()  # a bad export must not pass the cache check next time
        raise SystemExit(f"{args.out}: onnxruntime differs from torch by {max_difference:.2e} "
                         f"(> {TOLERANCE:g}); file removed")
    print(f"{args.out}: opset {OPSET}, {args.out.stat().st_size / 1e6:.1f} MB, "
          f"max |ort - torch| = {max_difference:.1e}")


if __name__ == "__main__":
    main()
