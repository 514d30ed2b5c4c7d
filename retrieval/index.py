"""A FAISS inner-product index over embedded documents: build incrementally, search, save and load safely.

On disk an index is a directory of three files, none of which can run code when loaded:
``index.faiss`` (FAISS's own binary format), ``documents.jsonl`` (one ``{"id", "text", "metadata"}`` per
line, in vector order) and ``manifest.json`` (format version, embedder name and dimension, kind, count,
creation time, parameters).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import faiss
import numpy as np

from retrieval.base import Embedder, Hit
from retrieval.documents import Document

__all__ = ["FORMAT_VERSION", "INDEX_KINDS", "Index", "read_manifest"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the on-disk layout written by :meth:`Index.save`."""

INDEX_KINDS = ("flat", "hnsw", "ivf")
"""Valid values of ``Index(kind=...)``."""

INDEX_FILE = "index.faiss"
DOCUMENTS_FILE = "documents.jsonl"
MANIFEST_FILE = "manifest.json"
_FORMAT_NAME = "llm-gate-index"

Progress = Callable[[int, int], None]
PathArg = str | os.PathLike[str]


class Index:
    """Documents embedded with one :class:`~retrieval.base.Embedder`, searchable by inner product.

    With unit-norm embeddings the score of a hit is its cosine similarity to the query. ``"flat"`` is
    exact; ``"hnsw"`` and ``"ivf"`` are approximate and faster on large collections. The FAISS structure
    is created on the first :meth:`add` (``"ivf"`` is trained on that first batch of documents, so give it
    a representative one). Searching an empty index returns no hits.

    Searches may run concurrently with each other, but not with :meth:`add`.

    Parameters
    ----------
    embedder : Embedder
        Embeds documents and queries; its name and dimension are recorded by :meth:`save`.
    kind : {"flat", "hnsw", "ivf"}, default="flat"
        ``IndexFlatIP``, ``IndexHNSWFlat`` or ``IndexIVFFlat``, all with inner-product metric.
    nlist : int, default=100
        Number of IVF cells (capped at the number of training vectors, with a warning).
    nprobe : int, default=8
        IVF cells visited per query.
    hnsw_m : int, default=32
        HNSW neighbours per node.
    ef_search : int, default=64
        HNSW candidate list length per query.

    Attributes
    ----------
    embedder : Embedder
    kind : str
    documents : list of Document
        The indexed documents, in the order of their vectors.

    Examples
    --------
    >>> from retrieval.testing import HashingEmbedder
    >>> from retrieval.documents import documents_from_texts
    >>> index = Index(HashingEmbedder(64)).add(documents_from_texts(["red apples", "blue sky"]))
    >>> [hit.id for hit in index.search("apples", k=1)]
    ['0']
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        kind: str = "flat",
        nlist: int = 100,
        nprobe: int = 8,
        hnsw_m: int = 32,
        ef_search: int = 64,
    ) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; valid: {list(INDEX_KINDS)}")
        for label, value in (("nlist", nlist), ("nprobe", nprobe), ("hnsw_m", hnsw_m), ("ef_search", ef_search)):
            if value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value}")
        self.embedder = embedder
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.documents: list[Document] = []
        self._ids: set[str] = set()
        self._faiss: faiss.Index | None = None

    def __len__(self) -> int:
        return len(self.documents)

    def __repr__(self) -> str:
        return f"Index({self.embedder.name!r}, kind={self.kind!r}, count={len(self)})"

    def add(self, documents: Iterable[Document], *, batch_size: int = 256, progress: Progress | None = None) -> Self:
        """Embed ``documents`` and append them to the index.

        Parameters
        ----------
        documents : iterable of Document
            Documents whose ids are not in the index yet (and unique among themselves).
        batch_size : int, default=256
            Documents embedded per call to the embedder.
        progress : callable or None, default=None
            Called as ``progress(done, total)`` after each batch, for a progress display.

        Returns
        -------
        Index
            ``self``, so calls chain.

        Raises
        ------
        ValueError
            If an id repeats, ``batch_size`` is not positive, or the embedder returns vectors of the
            wrong shape.
        """
        documents = list(documents)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self._check_new_ids(documents)
        vectors = []
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            vectors.append(self._embed([document.text for document in batch]))
            if progress is not None:
                progress(start + len(batch), len(documents))
        if documents:
            self._add_vectors(np.concatenate(vectors))
            self.documents.extend(documents)
            self._ids.update(document.id for document in documents)
        return self

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` documents whose embeddings have the largest inner product with the query's.

        Parameters
        ----------
        query : str
            The query text.
        k : int, default=5
            Hits wanted; fewer come back when the index holds fewer documents.

        Returns
        -------
        list of Hit
            Best first; empty for an empty index.
        """
        return self.search_many([query], k=k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """:meth:`search` for several queries, embedded and searched in one batch.

        Parameters
        ----------
        queries : sequence of str
            The query texts.
        k : int, default=5
            Hits wanted per query.

        Returns
        -------
        list of list of Hit
            One best-first list per query.
        """
        if isinstance(queries, str):
            raise TypeError("search_many() takes a sequence of queries, got a single str; use search()")
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        if self._faiss is None or not queries:
            return [[] for _ in queries]
        scores, rows = self._faiss.search(self._embed(list(queries)), min(k, len(self)))
        return [self._hits(score_row, id_row) for score_row, id_row in zip(scores, rows, strict=True)]

    def save(self, directory: PathArg) -> Path:
        """Write the index to ``directory`` (created if needed; existing index files are replaced).

        Parameters
        ----------
        directory : path
            Where to write ``index.faiss``, ``documents.jsonl`` and ``manifest.json``.

        Returns
        -------
        pathlib.Path
            The directory.

        Raises
        ------
        ValueError
            If the index is empty (there is no FAISS structure to write yet).
        """
        if self._faiss is None:
            raise ValueError("cannot save an empty index; add documents first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._faiss, str(directory / INDEX_FILE))
        with (directory / DOCUMENTS_FILE).open("w", encoding="utf-8") as handle:
            for document in self.documents:
                record = {"id": document.id, "text": document.text, "metadata": document.metadata}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        (directory / MANIFEST_FILE).write_text(json.dumps(self._manifest(), indent=2) + "\n", encoding="utf-8")
        logger.info("saved %d documents to %s", len(self), directory)
        return directory

    @classmethod
    def load(cls, directory: PathArg, embedder: Embedder) -> Self:
        """Read an index written by :meth:`save`, to be queried with ``embedder``.

        Parameters
        ----------
        directory : path
            A directory written by :meth:`save`.
        embedder : Embedder
            Must have the name and dimension recorded in the manifest: vectors of another model are
            not comparable with the stored ones.

        Returns
        -------
        Index

        Raises
        ------
        FileNotFoundError
            If a file of the index is missing.
        ValueError
            If the embedder differs from the manifest's, or the files are inconsistent or of an
            unknown format version.
        """
        directory = Path(directory)
        manifest = read_manifest(directory)
        if embedder.name != manifest["embedder"] or embedder.dimension != manifest["dimension"]:
            raise ValueError(
                f"{directory} was built with embedder {manifest['embedder']!r} (dimension {manifest['dimension']}),"
                f" but got {embedder.name!r} (dimension {embedder.dimension}); query it with the same embedder"
            )
        params = manifest["params"]
        index = cls(embedder, kind=manifest["kind"], **params)
        index._faiss = faiss.read_index(str(_existing(directory / INDEX_FILE)))
        index.documents = _read_documents(directory / DOCUMENTS_FILE)
        index._ids = {document.id for document in index.documents}
        index._check_loaded(directory, manifest)
        index._apply_search_params()
        return index

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.ascontiguousarray(self.embedder.embed(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.embedder.dimension):
            raise ValueError(
                f"embedder {self.embedder.name!r} returned shape {vectors.shape} for {len(texts)} texts;"
                f" expected ({len(texts)}, {self.embedder.dimension})"
            )
        return vectors

    def _check_new_ids(self, documents: list[Document]) -> None:
        seen: set[str] = set()
        for document in documents:
            if not isinstance(document, Document):
                raise TypeError(f"add() takes Document objects, got {type(document).__name__}")
            if document.id in self._ids or document.id in seen:
                raise ValueError(f"duplicate document id {document.id!r}; ids must be unique within an index")
            seen.add(document.id)

    def _add_vectors(self, vectors: np.ndarray) -> None:
        if self._faiss is None:
            self._faiss = self._new_faiss(vectors)
        self._faiss.add(vectors)

    def _new_faiss(self, training: np.ndarray) -> faiss.Index:
        dimension = training.shape[1]
        if self.kind == "flat":
            return faiss.IndexFlatIP(dimension)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
            return index
        nlist = self.nlist
        if len(training) < nlist:
            warnings.warn(
                f"{len(training)} vectors cannot train {nlist} IVF cells; using nlist={len(training)}",
                stacklevel=4,
            )
            nlist = len(training)
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(training)
        index.nprobe = self.nprobe
        return index

    def _apply_search_params(self) -> None:
        if self.kind == "hnsw":
            faiss.downcast_index(self._faiss).hnsw.efSearch = self.ef_search
        elif self.kind == "ivf":
            faiss.extract_index_ivf(self._faiss).nprobe = self.nprobe

    def _hits(self, scores: np.ndarray, rows: np.ndarray) -> list[Hit]:
        # FAISS pads with -1 when an approximate index finds fewer than k neighbours.
        return [
            Hit(self.documents[row].id, self.documents[row].text, float(score), dict(self.documents[row].metadata))
            for score, row in zip(scores, rows, strict=True)
            if row >= 0
        ]

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": _FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "embedder": self.embedder.name,
            "dimension": self.embedder.dimension,
            "kind": self.kind,
            "count": len(self),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": {"nlist": self.nlist, "nprobe": self.nprobe, "hnsw_m": self.hnsw_m, "ef_search": self.ef_search},
        }

    def _check_loaded(self, directory: Path, manifest: dict[str, Any]) -> None:
        assert self._faiss is not None
        counts = {"manifest": manifest["count"], INDEX_FILE: self._faiss.ntotal, DOCUMENTS_FILE: len(self.documents)}
        if len(set(counts.values())) != 1:
            raise ValueError(f"{directory}: the index files disagree on the number of documents: {counts}")
        if self._faiss.d != manifest["dimension"]:
            raise ValueError(
                f"{directory}: {INDEX_FILE} has dimension {self._faiss.d}, manifest {manifest['dimension']}"
            )
        if len(self._ids) != len(self.documents):
            raise ValueError(f"{directory}: {DOCUMENTS_FILE} repeats document ids")


_MANIFEST_TYPES: dict[str, type] = {
    "format": str,
    "format_version": int,
    "embedder": str,
    "dimension": int,
    "kind": str,
    "count": int,
    "created": str,
    "params": dict,
}


def read_manifest(directory: PathArg) -> dict[str, Any]:
    """Read and validate the ``manifest.json`` of a saved index.

    Parameters
    ----------
    directory : path
        A directory written by :meth:`Index.save`.

    Returns
    -------
    dict
        The manifest: ``format``, ``format_version``, ``embedder``, ``dimension``, ``kind``, ``count``,
        ``created`` and ``params``.

    Raises
    ------
    FileNotFoundError
        If the directory has no manifest.
    ValueError
        If the manifest is not valid JSON, lacks a field, or has an unknown format or version.
    """
    path = _existing(Path(directory) / MANIFEST_FILE)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    for key, expected in _MANIFEST_TYPES.items():
        if not isinstance(manifest.get(key), expected):
            raise ValueError(f"{path}: field {key!r} is missing or not a {expected.__name__}")
    if manifest["format"] != _FORMAT_NAME or manifest["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest['format']!r} version {manifest['format_version']} is not supported;"
            f" this version reads {_FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    if manifest["kind"] not in INDEX_KINDS:
        raise ValueError(f"{path}: unknown index kind {manifest['kind']!r}; valid: {list(INDEX_KINDS)}")
    unknown = set(manifest["params"]) - {"nlist", "nprobe", "hnsw_m", "ef_search"}
    if unknown:
        raise ValueError(f"{path}: unknown params {sorted(unknown)}")
    return manifest


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {path.parent} a directory written by Index.save?")
    return path


def _read_documents(path: Path) -> list[Document]:
    documents = []
    with _existing(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                documents.append(Document(str(record["id"]), record["text"], dict(record["metadata"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: not an index document record ({exc})") from None
    return documents
