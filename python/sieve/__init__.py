"""Sieve from Python: sentence embeddings and classification on Sieve's C++ engine, with pruning.

    >>> import sieve
    >>> m = sieve.Encoder("models/all-MiniLM-L6-v2")
    >>> m.encode(["A man is playing a guitar.", "Someone plays an instrument."]).shape
    (2, 384)
    >>> m.encode(texts, policy="ltp:final=0.004")   # pruned; m.last_stats says what was computed

The API follows sentence-transformers' ``SentenceTransformer.encode``. The engine releases the GIL
while it computes, so several Python threads can call one Encoder at once.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ._sieve import Encoder as _Engine
from ._sieve import ModelError

__all__ = ["Encoder", "ModelError", "InputError", "__version__"]
__version__ = "0.1.0"


class InputError(ValueError, TypeError):
    """Bad input to encode/classify/tokenize: None, a non-string item, an empty list.

    A ValueError (as the issue asks for bad input) and a TypeError (what Python code usually
    expects for a wrong type), so either ``except`` catches it.
    """


def _as_texts(texts: Any, what: str) -> List[str]:
    if texts is None:
        raise InputError(f"{what}: texts is None; give a string or a list of strings")
    if isinstance(texts, (bytes, bytearray)):
        raise InputError(f"{what}: texts must be str, not bytes (decode them first)")
    if isinstance(texts, str):
        texts = [texts]
    else:
        try:
            texts = list(texts)
        except TypeError:
            raise InputError(f"{what}: texts must be a string or a list of strings, not {type(texts).__name__}") from None
    if not texts:
        raise InputError(f"{what}: the list of texts is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{what}: texts[{i}] is {type(t).__name__}, not str")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(f"{what}: texts[{i}] is not valid Unicode ({e.reason} at character {e.start})") from None
    return texts


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


class Encoder:
    """A Hugging Face BERT-family model directory loaded into Sieve's engine.

    Args:
        model_dir: the model directory (config.json, model.safetensors, vocab.txt or tokenizer.json;
            sentence-transformers directories declare their pooling and normalization). None: $SIEVE_MODEL,
            else the all-MiniLM-L6-v2 that scripts/setup.sh installs.
        policy: the default pruning policy spec for every call ("dense", "ltp:final=0.004",
            "spatten:tokens=0.3", ...; the README's table); each call can override it.
        precision: "fp32" (default; matches the reference), "bf16" (oneDNN bf16 GEMMs, ~1e-2 error) or
            "int8" (per-channel weights, per-token activations, exact int32 sums; needs AVX-512 VNNI).
        threads: OpenMP threads per call (None: all cores). Each calling thread uses this many.
        max_length: tokens per input (None: the model's limit); longer inputs are truncated,
            or split into windows with long_inputs="chunk".
        pruned_pooling: "frozen" (default) or "survivors": how mean pooling counts pruned tokens.
        long_inputs: "truncate" (default) or "chunk".
        chunk_overlap: tokens two windows share when chunking.

    Raises:
        FileNotFoundError: model_dir does not exist.
        sieve.ModelError: it exists but its files are missing or corrupt.
        ValueError: a bad option (precision, pooling, policy).
    """

    def __init__(
        self,
        model_dir: Union[str, "os.PathLike[str]", None] = None,
        policy: str = "dense",
        precision: str = "fp32",
        threads: Optional[int] = None,
        max_length: Optional[int] = None,
        pruned_pooling: str = "frozen",
        long_inputs: str = "truncate",
        chunk_overlap: int = 32,
    ) -> None:
        if precision not in ("fp32", "bf16", "int8"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'int8', not {precision!r}")
        if threads is not None:
            threads = _positive_int(threads, "threads")
        if max_length is not None:
            max_length = _positive_int(max_length, "max_length")
        if not isinstance(policy, str):
            raise InputError(f"policy must be a string spec, not {type(policy).__name__}")
        self.model_dir = os.fspath(model_dir) if model_dir is not None else ""
        self._engine = _Engine(self.model_dir, precision, threads or 0, max_length or 0,
                               pruned_pooling, long_inputs, int(chunk_overlap))
        self.policy = policy
        # Checks the default policy now, so a bad spec fails at construction, not at the first call.
        self._engine.tokenize(["."])
        self._engine.embed(["."], policy, 1, None)
        self._last_stats: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()

    # -- properties -----------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """Embedding size (the model's hidden size)."""
        return self._engine.dimension

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for :attr:`dimension`."""
        return self._engine.dimension

    @property
    def max_length(self) -> int:
        """Tokens per input, special tokens included."""
        return self._engine.max_length

    @property
    def precision(self) -> str:
        return self._engine.precision

    @property
    def num_labels(self) -> int:
        """Classes of the sequence-classification head (0: none)."""
        return self._engine.num_labels

    @property
    def last_stats(self) -> Optional[Dict[str, Any]]:
        """What the most recent encode/classify call (from any thread) computed.

        Keys: texts, sequences (forward sequences; more than texts when chunking), tokens_in
        (tokens entering layer 0), tokens_computed (token-layers run: tokens entering each layer,
        summed over layers; pruning lowers it), layers_run (summed over sequences), gflops,
        tokens_per_layer, heads_per_layer, truncated_inputs (indices), seconds, policy.
        """
        return self._last_stats

    def _set_stats(self, stats: Dict[str, Any], policy: str) -> None:
        stats["policy"] = policy
        with self._lock:
            self._last_stats = stats

    # -- encode ---------------------------------------------------------------------------------
    def encode(
        self,
        sentences: Union[str, Sequence[str]],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        policy: Optional[str] = None,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Sentence embeddings, as ``SentenceTransformer.encode`` computes them.

        Args:
            sentences: a string (gives a 1-D array) or a list of strings (a 2-D array, one row each).
            batch_size: sequences per forward call.
            normalize_embeddings: L2-normalize each vector (after truncate_dim), as sentence-transformers.
            truncate_dim: keep the first truncate_dim dimensions (Matryoshka), before normalizing.
            show_progress_bar: a progress bar on stderr (tqdm when installed).
            convert_to_numpy: True: one float32 array; False: a list of 1-D float32 arrays.
            policy: this call's pruning policy instead of the Encoder's.

        Returns the pooled (and, where the model declares it, normalized) float32 embeddings, equal
        bit for bit to ``sieve embed`` with the same options.

        Raises:
            sieve.InputError (a ValueError and TypeError): None, a non-string, an empty list.
            ValueError: a bad policy spec, batch_size or truncate_dim, invalid text (lone surrogates).
        """
        single = isinstance(sentences, str)
        texts = _as_texts(sentences, "encode")
        batch_size = _positive_int(batch_size, "batch_size")
        if truncate_dim is not None:
            truncate_dim = _positive_int(truncate_dim, "truncate_dim")
        spec = self.policy if policy is None else policy
        if not isinstance(spec, str):
            raise InputError(f"policy must be a string spec, not {type(spec).__name__}")
        progress = _progress_bar(len(texts)) if show_progress_bar else None
        try:
            vectors, stats = self._engine.embed(texts, spec, batch_size, progress)
        finally:
            if progress is not None:
                progress.close()
        self._set_stats(stats, spec)
        if truncate_dim is not None and truncate_dim < vectors.shape[1]:
            vectors = np.ascontiguousarray(vectors[:, :truncate_dim])
        if normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, np.float32(1e-12))  # torch.nn.functional.normalize's eps
            vectors = vectors.astype(np.float32, copy=False)
        if single:
            return vectors[0]
        if not convert_to_numpy:
            return list(vectors)
        return vectors

    # -- classify -------------------------------------------------------------------------------
    def classify(
        self,
        texts: Union[str, Sequence[str]],
        batch_size: int = 32,
        policy: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Labels and probabilities from the model's sequence-classification head.

        Returns one dict per text: {"label": str, "score": float (its probability),
        "probabilities": {label: float}}; the same numbers ``sieve classify`` prints.

        Raises:
            sieve.ModelError: the model has no classification head.
            sieve.InputError / ValueError: as :meth:`encode`.
        """
        single = isinstance(texts, str)
        items = _as_texts(texts, "classify")
        batch_size = _positive_int(batch_size, "batch_size")
        spec = self.policy if policy is None else policy
        if not isinstance(spec, str):
            raise InputError(f"policy must be a string spec, not {type(spec).__name__}")
        labels, best, probabilities, stats = self._engine.classify(items, spec, batch_size)
        self._set_stats(stats, spec)
        results = [
            {"label": labels[b], "score": float(p[b]), "probabilities": dict(zip(labels, map(float, p)))}
            for b, p in zip(best, probabilities)
        ]
        return results[0] if single else results

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32, policy: Optional[str] = None) -> np.ndarray:
        """Class probabilities as a float32 array [texts, classes] (columns in the head's label order)."""
        items = _as_texts(texts, "predict_proba")
        spec = self.policy if policy is None else policy
        _, _, probabilities, stats = self._engine.classify(items, spec, _positive_int(batch_size, "batch_size"))
        self._set_stats(stats, spec)
        return probabilities

    # -- tokenize -------------------------------------------------------------------------------
    def tokenize(self, texts: Union[str, Sequence[str]]) -> Dict[str, List[Any]]:
        """Token ids as the engine sees them ([CLS] text [SEP], truncated to max_length).

        Returns {"input_ids": [[int]], "token_type_ids": [[int]], "attention_mask": [[int]],
        "tokens": [[str]], "truncated": [bool]}, one inner list per text, unpadded.
        """
        out = self._engine.tokenize(_as_texts(texts, "tokenize"))
        out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
        return out

    def __repr__(self) -> str:
        return (f"sieve.Encoder({self.model_dir or '<default model>'!r}, policy={self.policy!r}, "
                f"precision={self.precision!r}, dimension={self.dimension})")


class _SimpleProgress:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, n: int) -> None:
        import sys
        self.done += n
        sys.stderr.write(f"\rencoding {self.done}/{self.total}")
        sys.stderr.flush()

    def close(self) -> None:
        import sys
        sys.stderr.write("\n")


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm  # type: ignore
    except ImportError:
        return _SimpleProgress(total)
    bar = tqdm(total=total, desc="encoding", unit="seq")

    class _Tqdm:
        def __call__(self, n: int) -> None:
            bar.update(n)

        def close(self) -> None:
            bar.close()

    return _Tqdm()
