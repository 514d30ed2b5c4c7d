"""`gate index build` and `gate index search` through typer's CliRunner, with the model-free hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.index import index_app

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "france.txt").write_text("Paris is the capital of France. " * 3, encoding="utf-8")
    (folder / "notes.md").write_text("# Rivers\n\nThe Nile is a long river in Africa.", encoding="utf-8")
    records = [{"id": "py", "text": "Python is a programming language.", "metadata": {"topic": "code"}}]
    (folder / "more.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return folder


def build(corpus: Path, out: Path, *extra: str) -> None:
    result = runner.invoke(
        index_app, ["build", str(corpus), "--out", str(out), "--embedder", "test/hashing-64", *extra]
    )
    assert result.exit_code == 0, result.output
    assert "indexed 3 chunks with test/hashing-64 (flat)" in result.output


def test_build_then_search(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "idx"
    build(corpus, out, "--chunk-size", "50", "--overlap", "5")
    assert json.loads((out / "manifest.json").read_text())["count"] == 3
    result = runner.invoke(index_app, ["search", str(out), "capital of France", "-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "1"
    assert lines[0].split()[2] == "france.txt#0"
    assert "Paris is the capital of France." in lines[0]


def test_search_with_explicit_embedder_and_long_text_is_cut(tmp_path: Path, corpus: Path) -> None:
    (corpus / "long.txt").write_text("word " * 100, encoding="utf-8")
    out = tmp_path / "idx"
    result = runner.invoke(
        index_app, ["build", str(corpus), "--out", str(out), "-e", "test/hashing-64", "--kind", "hnsw"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(index_app, ["search", str(out), "word word", "-k", "1", "--embedder", "test/hashing-64"])
    assert result.exit_code == 0, result.output
    assert "long.txt#0" in result.output
    assert len(result.output.strip()) < 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "missing-dir", "--out", "x", "-e", "test/hashing-64"], "no such file or directory"),
        (["build", "CORPUS", "--out", "x", "-e", "test/hashing-64", "--overlap", "300"], "overlap must be smaller"),
        (["build", "CORPUS", "--out", "x", "-e", "test/hashing-64", "--kind", "tree"], "unknown index kind"),
        (["search", "missing-dir", "query"], "manifest.json: not found"),
        (["search", "INDEX", "query", "-e", "test/hashing-32"], "query it with the same embedder"),
    ],
)
def test_errors_are_one_red_line_exit_2(tmp_path: Path, corpus: Path, args: list[str], message: str) -> None:
    index_dir = tmp_path / "idx"
    build(corpus, index_dir)
    args = [str(corpus) if a == "CORPUS" else str(index_dir) if a == "INDEX" else a for a in args]
    args = [str(tmp_path / a) if a in ("missing-dir", "x") else a for a in args]
    result = runner.invoke(index_app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    assert result.output.startswith("error: ")


def test_bad_manifest_is_one_line(tmp_path: Path, corpus: Path) -> None:
    index_dir = tmp_path / "idx"
    build(corpus, index_dir)
    (index_dir / "manifest.json").write_text("[]", encoding="utf-8")
    result = runner.invoke(index_app, ["search", str(index_dir), "query"])
    assert result.exit_code == 2
    assert "expected a JSON object" in result.output
