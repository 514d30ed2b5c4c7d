"""Vector helpers shared by every embedder: unit-norm float32 rows, the form the FAISS index searches."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["normalize_rows"]


def normalize_rows(vectors: Any) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 matrix whose rows have unit L2 norm.

    Parameters
    ----------
    vectors : array-like of shape (n, d)
        Raw embedding vectors.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n, d)``; an all-zero row stays zero (it has no direction).

    Raises
    ------
    ValueError
        If ``vectors`` is not two-dimensional.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)
