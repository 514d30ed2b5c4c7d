"""A deterministic, dependency-free embedder for fast tests and dry runs (no model, no network)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from retrieval.vectors import normalize_rows

__all__ = ["HASHING_EMBEDDER_PREFIX", "HashingEmbedder"]

HASHING_EMBEDDER_PREFIX = "test/hashing-"
"""``test/hashing-<N>`` names the dependency-free :class:`HashingEmbedder` of dimension N."""

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Bag-of-words feature hashing: each lower-cased word adds 1 to one of ``dimension`` buckets.

    Texts sharing words get a higher inner product, so retrieval behaves sensibly on toy data. The counts
    are never negative, so no row cancels to zero. The hash is blake2b (not Python's salted ``hash``), so
    vectors are identical across processes and runs.

    Parameters
    ----------
    dimension : int, default=64
        Number of buckets, the vector length.

    Attributes
    ----------
    name : str
        ``"test/hashing-<dimension>"``; :func:`retrieval.create_embedder` maps it back to this class.
    dimension : int
        Length of every vector.

    Examples
    --------
    >>> embedder = HashingEmbedder(16)
    >>> vectors = embedder.embed(["the cat", "the cat"])
    >>> vectors.shape, bool((vectors[0] == vectors[1]).all())
    ((2, 16), True)
    """

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be a positive integer, got {dimension}")
        self.dimension = dimension
        self.name = f"{HASHING_EMBEDDER_PREFIX}{dimension}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit-norm float32 rows of shape ``(len(texts), dimension)``.

        A text without any word is hashed as the empty word, so every row has unit norm.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, got a single str; wrap it in a list")
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()) or [""]:
                vectors[row, self._bucket(word)] += 1.0
        return normalize_rows(vectors)

    def _bucket(self, word: str) -> int:
        return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little") % self.dimension

    def __repr__(self) -> str:
        return f"HashingEmbedder({self.dimension})"
