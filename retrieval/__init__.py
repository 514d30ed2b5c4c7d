"""Retrieval for the gate: embedders, document loading and chunking, and a FAISS index to search.

Depends on nothing else of the project. FAISS and numpy are required; sentence-transformers (the
bundled MiniLM, ``local`` extra) and litellm (remote embedders) are imported only when used.

Examples
--------
>>> from retrieval import Index, create_embedder, documents_from_texts
>>> index = Index(create_embedder("test/hashing-64")).add(documents_from_texts(["red apples", "blue sky"]))
>>> index.search("a red apple", k=1)[0].text
'red apples'
"""

from retrieval.base import Embedder, Hit, Searcher
from retrieval.chunking import chunk_text
from retrieval.documents import Document, documents_from_texts, load_documents
from retrieval.embedders import (
    LOCAL_EMBEDDER_NAME,
    LiteLLMEmbedder,
    MiniLMEmbedder,
    MissingDependencyError,
    create_embedder,
)
from retrieval.index import Index, read_manifest
from retrieval.testing import HashingEmbedder

__all__ = [
    "LOCAL_EMBEDDER_NAME",
    "Document",
    "Embedder",
    "HashingEmbedder",
    "Hit",
    "Index",
    "LiteLLMEmbedder",
    "MiniLMEmbedder",
    "MissingDependencyError",
    "Searcher",
    "chunk_text",
    "create_embedder",
    "documents_from_texts",
    "load_documents",
    "read_manifest",
]
