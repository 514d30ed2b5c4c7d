"""``gate index``: build a FAISS index over documents and search it from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gate.cli.errors import friendly_errors

index_app = typer.Typer(
    name="index",
    help="Build and search retrieval indexes (used by the retrieval-grounded estimator).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_EMBEDDER_NAMES = "local/all-MiniLM-L6-v2, a litellm embedding model, or test/hashing-64 (no model, for dry runs)"
BuildEmbedderOption = Annotated[
    str | None,
    typer.Option("--embedder", "-e", help=f"{_EMBEDDER_NAMES}. Default: local/all-MiniLM-L6-v2.", show_default=False),
]
SearchEmbedderOption = Annotated[
    str | None,
    typer.Option("--embedder", "-e", help=f"{_EMBEDDER_NAMES}. Default: the index's own.", show_default=False),
]


@index_app.command()
@friendly_errors
def build(
    paths: Annotated[list[Path], typer.Argument(help="Files (.jsonl, .txt, .md) or directories to index.")],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the index to.")],
    embedder: BuildEmbedderOption = None,
    chunk_size: Annotated[int, typer.Option(help="Words per chunk.")] = 200,
    overlap: Annotated[int, typer.Option(help="Words shared by consecutive chunks.")] = 40,
    kind: Annotated[str, typer.Option(help="FAISS index kind: flat (exact), hnsw or ivf.")] = "flat",
) -> None:
    """Chunk and embed documents, then save a FAISS index to --out."""
    # Imported here so that `gate --help` and the other commands start without FAISS and rich.progress.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from retrieval import LOCAL_EMBEDDER_NAME, Index, create_embedder, load_documents

    started = time.perf_counter()
    documents = load_documents(paths, chunk_size=chunk_size, overlap=overlap)
    if not documents:
        raise ValueError(f"no text found in {', '.join(map(str, paths))}")
    index = Index(create_embedder(embedder or LOCAL_EMBEDDER_NAME), kind=kind)
    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("embedding", total=len(documents))
        index.add(documents, progress=lambda done, total: bar.update(task, completed=done, total=total))
    index.save(out)
    seconds = time.perf_counter() - started
    typer.echo(f"indexed {len(index)} chunks with {index.embedder.name} ({kind}) in {seconds:.1f} s -> {out}")


@index_app.command()
@friendly_errors
def search(
    directory: Annotated[Path, typer.Argument(help="An index directory written by 'gate index build'.")],
    query: Annotated[str, typer.Argument(help="The query text.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    embedder: SearchEmbedderOption = None,
) -> None:
    """Print the best passages for a query: rank, score, id and the start of the text."""
    from retrieval import Index, create_embedder, read_manifest

    name = embedder or read_manifest(directory)["embedder"]
    index = Index.load(directory, create_embedder(name))
    hits = index.search(query, k=k)
    if not hits:
        typer.echo("no hits")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.text.split())
        snippet = text if len(text) <= 150 else text[:149] + "…"
        typer.echo(f"{rank:>2}  {hit.score:.4f}  {hit.id}  {snippet}")
