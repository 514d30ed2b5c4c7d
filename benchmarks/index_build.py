"""Build a flat FAISS index over dataset passages with the bundled MiniLM; time it, size it, query it.

Run: ``.venv/bin/python -m benchmarks.index_build --passages 10000``; writes ``benchmarks/results/index_build.md``.
Passages are the context passages of XQuAD, SciQ, HotpotQA and HaluEval (in that order, deduplicated,
chunked like ``gate index build``), and queries a seeded sample of those sets' questions.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description, package_versions
from gate.datasets import QAItem, load_halueval, load_hotpot, load_sciq, load_xquad
from retrieval import Document, Embedder, Index, MiniLMEmbedder, documents_from_texts

RESULTS = Path(__file__).parent / "results" / "index_build.md"
LOADERS = {"xquad": load_xquad, "sciq": load_sciq, "hotpot": load_hotpot, "halueval": load_halueval}


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in ``embed``, to split embedding from indexing."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started, cpu_started = time.perf_counter(), time.process_time()
        vectors = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu_started
        return vectors


@dataclass
class Corpus:
    documents: list[Document]
    queries: list[str]
    sources: dict[str, int]


def load_corpus(n_passages: int, n_queries: int, *, chunk_size: int, overlap: int, seed: int) -> Corpus:
    """Deduplicated, chunked passages (smaller sets first, HaluEval fills up) and sampled questions."""
    seen: set[str] = set()
    documents: list[Document] = []
    questions: list[str] = []
    sources: dict[str, int] = {}
    for name, loader in LOADERS.items():
        items: list[QAItem] = loader()
        questions.extend(item.question for item in items)
        texts = unseen_passages(items, seen)
        ids = [f"{name}:{number}" for number in range(len(texts))]
        metadata = [{"dataset": name}] * len(texts)
        chunks = documents_from_texts(texts, ids, metadata, chunk_size=chunk_size, overlap=overlap)
        taken = chunks[: n_passages - len(documents)]
        sources[name] = len(taken)
        documents.extend(taken)
    if len(documents) < n_passages:
        print(f"only {len(documents)} passages available (asked for {n_passages})", file=sys.stderr)
    return Corpus(documents, random.Random(seed).sample(questions, n_queries), sources)


def unseen_passages(items: list[QAItem], seen: set[str]) -> list[str]:
    """The non-empty context passages of ``items`` not in ``seen``, in order; adds them to ``seen``."""
    texts = []
    for text in (passage for item in items for passage in item.context):
        if text.strip() and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def directory_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file())


def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    corpus = load_corpus(args.passages, args.queries, chunk_size=args.chunk_size, overlap=args.overlap, seed=args.seed)
    embedder = TimedEmbedder(MiniLMEmbedder(batch_size=args.batch_size))
    started = time.perf_counter()
    embedder.embed(["warm-up"])  # loads the model once, reported separately
    load_seconds = time.perf_counter() - started
    index = Index(embedder)
    embedded_before, cpu_before = embedder.seconds, embedder.cpu_seconds
    started = time.perf_counter()
    index.add(corpus.documents, batch_size=256)
    add_seconds = time.perf_counter() - started
    embed_seconds = embedder.seconds - embedded_before
    embed_cpu_seconds = embedder.cpu_seconds - cpu_before
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        index.save(folder)
        save_seconds = time.perf_counter() - started
        size = directory_size(Path(folder))
    latencies, search_only = [], []
    for query in corpus.queries:
        embedded_before = embedder.seconds
        started = time.perf_counter()
        index.search(query, k=args.k)
        latencies.append(time.perf_counter() - started)
        search_only.append(latencies[-1] - (embedder.seconds - embedded_before))
    words = [len(document.text.split()) for document in corpus.documents]
    return {
        "passages": len(index),
        "threads": torch_threads(),
        "sources": ", ".join(f"{name} {count}" for name, count in corpus.sources.items()),
        "mean_words": float(np.mean(words)),
        "load_s": load_seconds,
        "embed_s": embed_seconds,
        "embed_cpu_s": embed_cpu_seconds,
        "index_s": add_seconds - embed_seconds,
        "add_s": add_seconds,
        "save_s": save_seconds,
        "passages_per_s": len(index) / add_seconds,
        "size_mib": size / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "search_p50_ms": float(np.percentile(search_only, 50) * 1000),
        "search_p99_ms": float(np.percentile(search_only, 99) * 1000),
        "queries": len(latencies),
        "load_average": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
    }


def report(result: dict[str, float | int | str], args: argparse.Namespace, command: str) -> str:
    rows = [
        ("passages indexed", f"{result['passages']:,} ({result['sources']}); mean {result['mean_words']:.0f} words"),
        ("model load (once per process)", f"{result['load_s']:.2f} s"),
        (
            "embedding",
            f"{result['embed_s']:.2f} s ({result['embed_s'] / result['add_s']:.1%} of the add);"
            f" {result['embed_cpu_s']:.1f} CPU-seconds",
        ),
        ("indexing (FAISS add, bookkeeping)", f"{result['index_s']:.3f} s"),
        ("total add", f"{result['add_s']:.2f} s = {result['passages_per_s']:.0f} passages/s"),
        ("save", f"{result['save_s']:.3f} s"),
        ("index size on disk", f"{result['size_mib']:.1f} MiB (index.faiss + documents.jsonl + manifest.json)"),
        ("peak memory (ru_maxrss)", f"{result['peak_rss_mib']:.0f} MiB"),
        (
            f"query latency, k={args.k} (embed + search)",
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms over {result['queries']} queries",
        ),
        (
            "of which FAISS search and hits (no query embedding)",
            f"p50 {result['search_p50_ms']:.3f} ms, p99 {result['search_p99_ms']:.3f} ms",
        ),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"""# Index build: flat FAISS index over dataset passages, bundled MiniLM embedder

Command: `{command}`

Machine: {machine_description()}; 1-minute load average {result["load_average"]} (other processes
share the machine: a load above the core count slows every number below)

Packages: {package_versions(["faiss-cpu", "sentence-transformers", "torch", "numpy"])}

Passages: XQuAD contexts, SciQ `support`, HotpotQA paragraphs, HaluEval `knowledge` (in that order,
deduplicated, chunked to {args.chunk_size} words with {args.overlap} overlap), cut at {args.passages:,}.
Queries: {args.queries} questions sampled (seed {args.seed}) from the same sets, searched one at a time.
Embedding batch size {args.batch_size}, torch threads {result["threads"]}; FAISS `IndexFlatIP` (exact).

| measure | value |
|---|---|
{table}

Peak memory is the whole process: torch, the model, the datasets and the index. Indexing is the add time
minus the time inside the embedder.
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args)
    command = ".venv/bin/python -m benchmarks.index_build " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(result, args, command.strip()), encoding="utf-8")
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
