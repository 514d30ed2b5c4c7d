"""The two contracts of retrieval: something that embeds text, and a search hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "Hit", "Searcher"]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension.

    Attributes
    ----------
    name : str
        Identifies the model; an index records it and refuses to load with another.
    dimension : int
        Length of every vector.
    """

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimension)``, each row of unit norm."""
        ...


@dataclass(frozen=True)
class Hit:
    """One search result: the passage, its inner-product score, and where it came from."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Searcher(Protocol):
    """Anything that returns the top-k passages for a query (an ``Index``, or a fake in tests)."""

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first."""
        ...
