"""Chunking: exact boundaries, overlap, sentence preference, parameter validation, and document loading."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from retrieval.chunking import chunk_text
from retrieval.documents import Document, documents_from_texts, load_documents


def words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_short_text_is_one_chunk_and_empty_text_none() -> None:
    assert chunk_text("  just a few words \n", chunk_size=10, overlap=2) == ["just a few words"]
    assert chunk_text(" \n\t ", chunk_size=10, overlap=2) == []


def test_exact_boundaries_without_sentences() -> None:
    chunks = chunk_text(words(10), chunk_size=4, overlap=1)
    assert chunks == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]


def test_overlap_zero_partitions_the_words() -> None:
    tokens = words(25).split()
    chunks = chunk_text(words(25), chunk_size=10, overlap=0)
    assert chunks == [" ".join(tokens[0:10]), " ".join(tokens[10:20]), " ".join(tokens[20:25])]


@pytest.mark.parametrize(("size", "overlap"), [(200, 40), (7, 3), (5, 4), (3, 0)])
def test_every_chunk_within_size_and_consecutive_chunks_share_overlap(size: int, overlap: int) -> None:
    text = words(523)
    chunks = [chunk.split() for chunk in chunk_text(text, chunk_size=size, overlap=overlap)]
    assert all(len(chunk) <= size for chunk in chunks)
    for previous, following in itertools.pairwise(chunks):
        assert following[:overlap] == previous[len(previous) - overlap :]
    assert chunks[0][0] == "w0"
    assert chunks[-1][-1] == "w522"


def test_prefers_sentence_end_when_at_least_half_full() -> None:
    text = "a b c d e f. g h i j k l m n o p"
    assert chunk_text(text, chunk_size=8, overlap=2)[0] == "a b c d e f."
    # A sentence end that would leave the chunk under half full is ignored.
    assert chunk_text("a. b c d e f g h i j", chunk_size=8, overlap=2)[0] == "a. b c d e f g h"


def test_paragraph_break_is_a_boundary_and_kept_inside_chunks() -> None:
    text = "alpha beta gamma delta\n\nepsilon zeta eta theta iota kappa"
    chunks = chunk_text(text, chunk_size=6, overlap=1)
    assert chunks[0] == "alpha beta gamma delta"
    assert chunks[1].startswith("delta\n\nepsilon")


def test_deterministic() -> None:
    text = ("Sentence one is here. " * 40) + words(300)
    assert chunk_text(text) == chunk_text(text)


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [(0, 0, "chunk_size must be a positive"), (10, -1, "overlap must be a non-negative"), (10, 10, "smaller than")],
)
def test_bad_parameters_raise(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_text("some text", chunk_size=size, overlap=overlap)


# ------------------------------------------------------------------------------------------ documents


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    return path


def test_jsonl_ids_metadata_defaults_and_chunking(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [{"id": "a", "text": "short text", "metadata": {"title": "A"}}, {"text": words(12)}, {"id": 7, "text": "x"}],
    )
    docs = load_documents(path, chunk_size=8, overlap=2)
    assert [d.id for d in docs] == ["a", "docs.jsonl:2#0", "docs.jsonl:2#1", "7"]
    assert docs[0] == Document("a", "short text", {"chunk": 0, "source": str(path), "title": "A"})
    assert docs[2].text == "w6 w7 w8 w9 w10 w11"
    assert docs[2].metadata["chunk"] == 1


def test_jsonl_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "one"}\n\n{"text": "two"}\n', encoding="utf-8")
    assert [d.id for d in load_documents(path)] == ["d.jsonl:1", "d.jsonl:3"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x"}', "no 'text' field"),
        ('{"text": 3}', "'text' of type int"),
        ("{not json", "not valid JSON"),
        ('["text"]', "expected a JSON object"),
        ('{"text": "t", "metadata": [1]}', "'metadata' must be a JSON object"),
    ],
)
def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_documents(path)
    assert f"{path}:2" in str(info.value)


def test_text_and_markdown_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text(words(10, "t"), encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nSome markdown.", encoding="utf-8")
    write_jsonl(tmp_path / "sub" / "c.jsonl", [{"id": "c1", "text": "from jsonl"}])
    (tmp_path / "ignored.csv").write_text("a,b", encoding="utf-8")
    docs = load_documents(tmp_path, chunk_size=6, overlap=1)
    assert [d.id for d in docs] == ["a.txt#0", "a.txt#1", "sub/b.md#0", "c1"]
    assert docs[2].text == "# Title\n\nSome markdown."
    assert docs[2].metadata == {"chunk": 0, "source": str(tmp_path / "sub" / "b.md")}
    single = load_documents([tmp_path / "sub" / "b.md"])
    assert [d.id for d in single] == ["b.md#0"]


def test_missing_path_and_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        load_documents(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unsupported file type '.csv'"):
        load_documents(tmp_path / "x.csv")


def test_documents_from_texts() -> None:
    docs = documents_from_texts(["one", "two"], metadata=[{"k": 1}, {}])
    assert docs == [Document("0", "one", {"k": 1}), Document("1", "two", {})]
    chunked = documents_from_texts([words(12), "short"], ids=["long", "s"], chunk_size=8, overlap=2)
    assert [d.id for d in chunked] == ["long#0", "long#1", "s"]
    with pytest.raises(ValueError, match="2 texts but 1 ids"):
        documents_from_texts(["a", "b"], ids=["a"])
    with pytest.raises(TypeError, match="single str"):
        documents_from_texts("abc")  # type: ignore[arg-type]
