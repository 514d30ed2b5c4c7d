"""Load documents to index from JSONL, text and Markdown files or directories, chunked into passages."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, check_chunk_params, chunk_text

__all__ = ["SUPPORTED_SUFFIXES", "Document", "documents_from_texts", "load_documents"]

SUPPORTED_SUFFIXES = (".jsonl", ".md", ".txt")
"""File name endings :func:`load_documents` reads (also when walking a directory)."""

PathArg = str | os.PathLike[str]


@dataclass(frozen=True)
class Document:
    """One passage to index: a unique id, its text, and free-form metadata returned with search hits."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def load_documents(
    paths: PathArg | Iterable[PathArg], *, chunk_size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_OVERLAP
) -> list[Document]:
    """Read and chunk every document under ``paths``.

    * ``.jsonl``: one JSON object per line, ``{"text": ..., "id": ..., "metadata": {...}}``; ``id``
      defaults to ``"<file name>:<line>"`` and ``metadata`` to ``{}``; blank lines are skipped.
    * ``.txt`` and ``.md``: the whole file (UTF-8) is one document.
    * a directory: every file with one of those endings below it, recursively, in sorted order.

    Each document is split with :func:`retrieval.chunking.chunk_text`. A chunk's id is the document id
    followed by ``#<chunk number>`` (from 0); a JSONL record that fits in one chunk keeps its id unchanged.
    A text or Markdown file's id is its path relative to the directory given, or its name when the file
    itself was given. Every chunk's metadata holds ``source`` (the file path) and ``chunk`` (its number)
    unless the record's own metadata already sets those keys.

    Parameters
    ----------
    paths : path or iterable of paths
        Files and directories.
    chunk_size : int, default=200
        Most words per chunk.
    overlap : int, default=40
        Words shared by consecutive chunks of one document.

    Returns
    -------
    list of Document
        The chunks, in path order, then line order, then chunk order.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If a file has an unsupported ending, or a JSONL line is not an object with a string ``text``
        (the message names the file and line), or the chunking parameters are out of range.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("Paris is the capital of France.")
    >>> [d.id for d in load_documents(folder)]
    ['notes.txt#0']
    """
    check_chunk_params(chunk_size, overlap)
    documents: list[Document] = []
    for path, name in _files(paths):
        sources = _jsonl_documents(path, name) if path.suffix == ".jsonl" else [_file_document(path, name)]
        for source in sources:
            documents.extend(_chunks(source, chunk_size, overlap, keep_single_id=path.suffix == ".jsonl"))
    return documents


def documents_from_texts(
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    *,
    chunk_size: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Document]:
    """Wrap in-memory texts as documents, optionally chunked.

    Parameters
    ----------
    texts : sequence of str
        The passages.
    ids : sequence of str or None, default=None
        One id per text; ``None`` numbers them ``"0"``, ``"1"``, ...
    metadata : sequence of mappings or None, default=None
        One metadata mapping per text; ``None`` gives each ``{}``.
    chunk_size : int or None, default=None
        ``None`` keeps each text whole; a number splits longer texts as :func:`load_documents` does
        (ids ``"<id>#<chunk>"`` for texts that need more than one chunk).
    overlap : int, default=40
        Words shared by consecutive chunks, when chunking.

    Returns
    -------
    list of Document

    Raises
    ------
    ValueError
        If ``ids`` or ``metadata`` has a different length than ``texts``.

    Examples
    --------
    >>> documents_from_texts(["first", "second"], ids=["a", "b"])[1]
    Document(id='b', text='second', metadata={})
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single str; wrap it in a list")
    ids = [str(i) for i in range(len(texts))] if ids is None else [str(value) for value in ids]
    metadata = [{} for _ in texts] if metadata is None else list(metadata)
    for label, values in (("ids", ids), ("metadata", metadata)):
        if len(values) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(values)} {label}; pass one per text")
    sources = [Document(id_, text, dict(meta)) for id_, text, meta in zip(ids, texts, metadata, strict=True)]
    if chunk_size is None:
        return sources
    check_chunk_params(chunk_size, overlap)
    return [chunk for source in sources for chunk in _chunks(source, chunk_size, overlap, keep_single_id=True)]


def _files(paths: PathArg | Iterable[PathArg]) -> Iterator[tuple[Path, str]]:
    """Each file to read, with the name its documents' ids start from."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUPPORTED_SUFFIXES):
                yield file, file.relative_to(path).as_posix()
        elif path.is_file():
            if path.suffix not in SUPPORTED_SUFFIXES:
                raise ValueError(f"{path}: unsupported file type {path.suffix!r}; valid: {list(SUPPORTED_SUFFIXES)}")
            yield path, path.name
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


def _file_document(path: Path, name: str) -> Document:
    return Document(name, path.read_text(encoding="utf-8"), {"source": str(path)})


def _jsonl_documents(path: Path, name: str) -> Iterator[Document]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _jsonl_record(line, f"{path}:{number}", default_id=f"{name}:{number}", source=str(path))


def _jsonl_record(line: str, where: str, *, default_id: str, source: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object with a 'text' field, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        got = "no 'text' field" if text is None else f"'text' of type {type(text).__name__}"
        raise ValueError(f"{where}: every record needs a string 'text' field, got {got}")
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    record_id = record.get("id")
    document_id = default_id if record_id is None else str(record_id)
    return Document(document_id, text, {"source": source, **metadata})


def _chunks(source: Document, chunk_size: int, overlap: int, *, keep_single_id: bool) -> list[Document]:
    pieces = chunk_text(source.text, chunk_size=chunk_size, overlap=overlap)
    if keep_single_id and len(pieces) == 1:
        return [Document(source.id, pieces[0], {"chunk": 0, **source.metadata})]
    return [
        Document(f"{source.id}#{number}", piece, {"chunk": number, **source.metadata})
        for number, piece in enumerate(pieces)
    ]
