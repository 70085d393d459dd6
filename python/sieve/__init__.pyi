# Type stubs for the sieve package (the implementation, with the full docstrings, is __init__.py).
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, TypedDict, Union, overload

import numpy as np
import numpy.typing as npt

from ._sieve import ModelError as ModelError

__version__: str

class InputError(ValueError, TypeError):
    """Bad input: None, a non-string item, an empty list, bytes, invalid Unicode."""

class Stats(TypedDict):
    texts: int
    sequences: int
    tokens_in: int
    tokens_computed: int
    layers_run: int
    gflops: float
    tokens_per_layer: List[int]
    heads_per_layer: List[int]
    truncated_inputs: List[int]
    seconds: float
    policy: str

class Classification(TypedDict):
    label: str
    score: float
    probabilities: Dict[str, float]

class Tokenized(TypedDict):
    input_ids: List[List[int]]
    token_type_ids: List[List[int]]
    attention_mask: List[List[int]]
    tokens: List[List[str]]
    truncated: List[bool]

class Encoder:
    """A Hugging Face BERT-family model directory loaded into Sieve's engine."""

    model_dir: str
    policy: str
    def __init__(
        self,
        model_dir: Union[str, os.PathLike[str], None] = None,
        policy: str = "dense",
        precision: Literal["fp32", "bf16", "int8"] = "fp32",
        threads: Optional[int] = None,
        max_length: Optional[int] = None,
        pruned_pooling: Literal["frozen", "survivors"] = "frozen",
        long_inputs: Literal["truncate", "chunk"] = "truncate",
        chunk_overlap: int = 32,
    ) -> None: ...
    @property
    def dimension(self) -> int: ...
    def get_sentence_embedding_dimension(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def last_stats(self) -> Optional[Stats]:
        """What the most recent encode/classify call computed (tokens, layers, GFLOPs, seconds)."""
    @overload
    def encode(
        self,
        sentences: str,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        policy: Optional[str] = None,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        show_progress_bar: bool = False,
        convert_to_numpy: Literal[True] = True,
        policy: Optional[str] = None,
    ) -> npt.NDArray[np.float32]:
        """Sentence embeddings [texts, dim] as SentenceTransformer.encode computes them; equal bit for
        bit to `sieve embed`. The GIL is released while computing."""
    @overload
    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        show_progress_bar: bool = False,
        convert_to_numpy: Literal[False] = ...,
        policy: Optional[str] = None,
    ) -> List[npt.NDArray[np.float32]]: ...
    @overload
    def classify(self, texts: str, batch_size: int = 32, policy: Optional[str] = None) -> Classification: ...
    @overload
    def classify(self, texts: Sequence[str], batch_size: int = 32, policy: Optional[str] = None) -> List[Classification]:
        """Labels and probabilities from the sequence-classification head (sieve.ModelError without one)."""
    def predict_proba(self, texts: Sequence[str], batch_size: int = 32, policy: Optional[str] = None) -> npt.NDArray[np.float32]: ...
    def tokenize(self, texts: Union[str, Sequence[str]]) -> Tokenized:
        """[CLS] text [SEP] ids, token types, mask and word pieces per text (unpadded)."""
