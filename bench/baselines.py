#!/usr/bin/env python3
"""Latency baselines for Sieve: ONNX Runtime, PyTorch eager, CTranslate2 and OpenVINO on the same inputs.

`sieve bench` spawns this script and merges its JSON, so the CLI is stable and stdout
carries nothing but the JSON when --out is '-' (the default); progress and the table go
to stderr. Inputs match the C++ bench exactly: for batch row j and position i of a
sequence of length s, the token id is 101 ([CLS]) at i == 0, 102 ([SEP]) at i == s-1,
else 1000 + (i * 7919 + j * 104729) % 20000; attention mask all ones, token types zero.

Engines: ort (fp32), ort-int8 (onnxruntime.quantization.quantize_dynamic, per channel, on the same
ONNX export), torch (eager fp32), ct2-int8 (CTranslate2's BERT converter, int8), ov-fp32 / ov-bf16
(OpenVINO on the ONNX export, compiled per shape with that inference precision), ov-int8 (OpenVINO
after NNCF's static post-training quantization, calibrated on --calibration sentences). The int8
peers need PyPI's ctranslate2, openvino and nncf (not in the README's setup: bench only).
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from common import log, quiet_libraries  # noqa: E402


def benchmark_inputs(batch: int, sequence: int):
    positions = np.arange(sequence, dtype=np.int64)[None, :]
    rows = np.arange(batch, dtype=np.int64)[:, None]
    input_ids = 1000 + (positions * 7919 + rows * 104729) % 20000
    input_ids[:, 0] = 101
    input_ids[:, sequence - 1] = 102
    return {
        "input_ids": input_ids,
        "attention_mask": np.ones((batch, sequence), dtype=np.int64),
        "token_type_ids": np.zeros((batch, sequence), dtype=np.int64),
    }


def time_calls(run, warmup: int, repeats: int):
    """Per-call wall times in milliseconds, after warmup calls that are discarded."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


class OrtEngine:
    name = "ort"

    def __init__(self, onnx_file: Path):
        import onnxruntime

        self.onnxruntime = onnxruntime
        self.version = onnxruntime.__version__
        self.onnx_file = onnx_file
        self.sessions = {}  # one per thread count: ORT fixes its thread pool at creation

    def runner(self, inputs, threads: int):
        if threads not in self.sessions:
            options = self.onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = self.onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[threads] = self.onnxruntime.InferenceSession(
                str(self.onnx_file), options, providers=["CPUExecutionProvider"])
        session = self.sessions[threads]
        feeds = {node.name: inputs[node.name] for node in session.get_inputs()}
        return lambda: session.run(None, feeds)


class OrtInt8Engine(OrtEngine):
    """ONNX Runtime on the dynamically quantized export: int8 weights per channel, activations at run time."""

    name = "ort-int8"

    def __init__(self, onnx_file: Path):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = onnx_file.with_name(onnx_file.stem + "-int8-dynamic.onnx")
        if not quantized.is_file() or quantized.stat().st_mtime < onnx_file.stat().st_mtime:
            quantize_dynamic(str(onnx_file), str(quantized), per_channel=True, weight_type=QuantType.QInt8)
        super().__init__(quantized)


class Ct2Engine:
    name = "ct2-int8"

    def __init__(self, model_dir: Path, work_dir: Path):
        import ctranslate2

        self.ctranslate2 = ctranslate2
        self.version = ctranslate2.__version__
        # Converted once (ctranslate2 4.8 calls from_pretrained(dtype=), which transformers < 4.56
        # rejects; a converter from ctranslate2 4.4 writes the same format, see README).
        self.converted = work_dir / f"ct2-int8-{model_dir.name}"
        if not (self.converted / "model.bin").is_file():
            ctranslate2.converters.TransformersConverter(str(model_dir)).convert(
                str(self.converted), quantization="int8", force=True)
        self.encoders = {}

    def runner(self, inputs, threads: int):
        if threads not in self.encoders:
            self.encoders[threads] = self.ctranslate2.Encoder(
                str(self.converted), device="cpu", compute_type="int8", intra_threads=threads)
        encoder = self.encoders[threads]
        ids = inputs["input_ids"].tolist()
        return lambda: encoder.forward_batch(ids)


class OpenVinoEngine:
    """OpenVINO on the ONNX export, compiled for each shape (static shapes: its best case)."""

    def __init__(self, onnx_file: Path, precision: str, model_dir: Path, calibration: Path = None):
        import openvino

        self.version = openvino.__version__
        self.core = openvino.Core()
        self.precision = precision
        self.name = f"ov-{precision}"
        self.model = self.core.read_model(str(onnx_file))
        if precision == "int8":
            self.model = self.quantized(model_dir, calibration)

    def quantized(self, model_dir: Path, calibration: Path):
        """NNCF's static quantization (activations' ranges fixed from calibration sentences)."""
        import nncf
        from transformers import AutoTokenizer

        if calibration is None:
            raise SystemExit("ov-int8 needs --calibration TSV (sentences for NNCF's static quantization)")
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        lines = calibration.read_text(encoding="utf-8").splitlines()[1:301]
        names = {p.get_any_name() for p in self.model.inputs}
        samples = []
        for line in lines:
            encoded = tokenizer(line.split("\t")[0], truncation=True, max_length=256, return_tensors="np")
            samples.append({name: encoded[name].astype(np.int64) for name in names})
        return nncf.quantize(self.model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(samples))

    def runner(self, inputs, threads: int):
        model = self.model.clone()
        model.reshape({name: list(array.shape) for name, array in inputs.items()
                       if name in {p.get_any_name() for p in model.inputs}})
        hint = "bf16" if self.precision == "bf16" else "f32"
        compiled = self.core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": hint})
        request = compiled.create_infer_request()
        feeds = {p.get_any_name(): inputs[p.get_any_name()] for p in compiled.inputs}
        return lambda: request.infer(feeds)


class TorchEngine:
    name = "torch"

    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoModel

        self.torch = torch
        self.version = torch.__version__
        torch.set_num_interop_threads(1)  # allowed only before any parallel work
        self.model = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()

    def runner(self, inputs, threads: int):
        torch = self.torch
        torch.set_num_threads(threads)
        tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}

        def run():
            with torch.inference_mode():
                self.model(**tensors)

        return run


ENGINES = ["ort", "ort-int8", "torch", "ct2-int8", "ov-fp32", "ov-bf16", "ov-int8"]


def make_engine(name: str, args):
    if name == "ort":
        return OrtEngine(args.onnx)
    if name == "ort-int8":
        return OrtInt8Engine(args.onnx)
    if name == "torch":
        return TorchEngine(args.model)
    if name == "ct2-int8":
        return Ct2Engine(args.model, args.work_dir)
    return OpenVinoEngine(args.onnx, name.split("-", 1)[1], args.model, args.calibration)


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def comma_ints(text: str):
    return [int(part) for part in text.split(",") if part]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model directory")
    parser.add_argument("--name", help="model name for the report (default: the directory name)")
    parser.add_argument("--onnx", type=Path, help="ONNX export of the model (needed for ort)")
    parser.add_argument("--seq", type=comma_ints, default=[32, 128, 384], help="e.g. 32,128,384")
    parser.add_argument("--batch", type=comma_ints, default=[1, 8], help="e.g. 1,8")
    parser.add_argument("--threads", type=comma_ints, default=[2], help="e.g. 2 or 1,2")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--engines", default="ort,torch",
                        help="comma list of: " + ", ".join(ENGINES))
    parser.add_argument("--calibration", type=Path,
                        help="TSV whose first column holds calibration sentences (ov-int8)")
    parser.add_argument("--work-dir", type=Path, default=Path("out/peers"),
                        help="where converted models are cached (ct2-int8)")
    parser.add_argument("--out", default="-", help="JSON file to write, '-' for stdout")
    args = parser.parse_args()
    args.engines = [name for name in args.engines.split(",") if name]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    needs_onnx = [name for name in args.engines if name.startswith(("ort", "ov-"))]
    if needs_onnx and (args.onnx is None or not args.onnx.is_file()):
        parser.error(f"engine '{needs_onnx[0]}' needs --onnx FILE (see tools/export_onnx.py)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main():
    args = parse_args()
    quiet_libraries()
    engines = [make_engine(name, args) for name in args.engines]
    model_name = args.name or args.model.name
    results = []
    log(f"{'engine':<6} {'model':<20} {'seq':>4} {'batch':>5} {'thr':>3} "
        f"{'median ms':>10} {'p10 ms':>9} {'p90 ms':>9}")
    for engine in engines:
        for threads in args.threads:
            for sequence in args.seq:
                for batch in args.batch:
                    run = engine.runner(benchmark_inputs(batch, sequence), threads)
                    times = time_calls(run, args.warmup, args.repeats)
                    p10, median, p90 = np.percentile(times, [10, 50, 90])
                    results.append({
                        "engine": engine.name, "model": model_name, "seq": sequence,
                        "batch": batch, "threads": threads, "median_ms": round(float(median), 3),
                        "p10_ms": round(float(p10), 3), "p90_ms": round(float(p90), 3),
                    })
                    log(f"{engine.name:<6} {model_name:<20} {sequence:>4} {batch:>5} {threads:>3} "
                        f"{median:>10.2f} {p10:>9.2f} {p90:>9.2f}")

    versions = {"python": platform.python_version(),
                **{engine.name: engine.version for engine in engines}}
    report = {"machine": {**machine_info(), "versions": versions},
              "results": results}
    text = json.dumps(report, indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
