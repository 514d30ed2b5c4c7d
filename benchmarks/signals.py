"""Each signal alone on the embedded model: how well it predicts that the greedy answer is correct, and its cost.

Run: ``.venv/bin/python -m benchmarks.signals [--trivia 300] [--expensive 200] [--passages 200]``
Writes ``benchmarks/results/signals.md``. Nothing here is fitted: every signal is used as it comes
(PACE with its documented fixed, unfitted combination), so every question is held out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from estimators import Consistency, Familiarity, Pace, PTrue, TokenProbability, Verbalized
from estimators.base import Cost, Estimator, Signal
from gate.backends.embedded.local import LocalLLM
from gate.datasets import QAItem, is_correct, load_sciq, load_trivia, load_xquad

RESULTS = Path(__file__).parent / "results" / "signals.md"
ANSWER_TOKENS = 16


@dataclass
class Scored:
    """One signal's scores on one dataset."""

    confidences: list[float | None] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)
    errors: int = 0
    samples_used: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """A signal to benchmark: how to build it, on how many questions, and how to read its confidence."""

    name: str
    estimator: Estimator
    limit: int
    read: Callable[[Signal], float | None] = lambda signal: signal.confidence


def negative_entropy(signal: Signal) -> float | None:
    """Semantic entropy as a confidence (lower entropy = more confident); the ranking is what AUROC sees."""
    return None if signal.raw is None else -float(signal.raw)


async def answer(llm: LocalLLM, question: str) -> tuple[str, list[float] | None, float]:
    """The greedy answer with its token log-probs, as a user of the gate would get it."""
    started = time.perf_counter()
    [generation] = await llm.generate([{"role": "user", "content": question}], max_tokens=ANSWER_TOKENS, logprobs=5)
    return generation.text, generation.logprobs, time.perf_counter() - started


async def run_dataset(
    llm: LocalLLM, items: Sequence[QAItem], entries: Sequence[Entry], *, label: str
) -> tuple[dict[str, Scored], float, float]:
    """Score every item with every entry (up to its limit); returns scores, accuracy and answer seconds."""
    scored = {entry.name: Scored() for entry in entries}
    correct, answer_seconds = [], []
    for index, item in enumerate(items):
        text, logprobs, seconds = await answer(llm, item.question)
        ok = is_correct(text, item.answers)
        correct.append(ok)
        answer_seconds.append(seconds)
        signals: dict[int, Signal] = {}  # entries that share an estimator share its one run
        for entry in entries:
            if index >= entry.limit:
                continue
            key = id(entry.estimator)
            if key not in signals:
                signals[key] = await entry.estimator.score(item.question, text, llm=llm, logprobs=logprobs)
            signal = signals[key]
            result = scored[entry.name]
            result.confidences.append(entry.read(signal))
            result.labels.append(ok)
            result.costs.append(signal.cost)
            result.errors += signal.error is not None
            if "n_samples_used" in signal.details:
                result.samples_used.append(int(signal.details["n_samples_used"]))
        if (index + 1) % 10 == 0:
            print(f"{label}: {index + 1}/{len(items)} accuracy so far {np.mean(correct):.3f}", flush=True)
    return scored, float(np.mean(correct)), float(np.mean(answer_seconds))


def auroc_row(name: str, result: Scored) -> str:
    """One Markdown row: AUROC with its bootstrap interval, coverage and cost per question."""
    pairs = [(c, y) for c, y in zip(result.confidences, result.labels, strict=True) if c is not None]
    n_total = len(result.labels)
    costs = result.costs
    calls = np.mean([c.calls for c in costs])
    tokens = np.mean([c.prompt_tokens + c.completion_tokens for c in costs])
    seconds = np.mean([c.seconds for c in costs])
    samples = f"{np.mean(result.samples_used):.2f}" if result.samples_used else "-"
    data = np.array(pairs, dtype=float)
    if len(data) < 10 or len(set(data[:, 1])) < 2:
        auroc_text = "n/a (too few scored or one class)"
    else:
        auroc = _auroc_or_nan(data)
        low, high = bootstrap_interval(_auroc_or_nan, data)
        auroc_text = f"{auroc:.3f} [{low:.3f}, {high:.3f}]"
    coverage = f"{len(pairs)}/{n_total}"
    return f"| {name} | {auroc_text} | {coverage} | {calls:.2f} | {tokens:.0f} | {seconds:.3f} | {samples} |"


def _auroc_or_nan(rows: np.ndarray) -> float:
    if len(set(rows[:, 1])) < 2:
        return float("nan")
    return float(roc_auc_score(rows[:, 1], rows[:, 0]))


def table(title: str, scored: dict[str, Scored], accuracy: float, answer_seconds: float, n: int) -> list[str]:
    """A Markdown section for one dataset."""
    return [
        f"## {title}",
        "",
        f"{n} questions; greedy-answer accuracy {accuracy:.3f} (SQuAD-normalised alias match);"
        f" {answer_seconds:.3f} s per greedy answer with log-probs.",
        "",
        "| signal | AUROC [95% CI] | scored | LLM calls/q | tokens/q | s/q | samples used |",
        "|---|---|---|---|---|---|---|",
        *(auroc_row(name, result) for name, result in scored.items()),
        "",
    ]


def trivia_entries(n: int, expensive: int) -> list[Entry]:
    """The five signal families on open-domain questions (no passages, so no PACE)."""
    five_samples = Consistency(n_samples=5, temperature=1.0, adaptive=False, seed=0)
    return [
        Entry("token prob: exp(mean log-prob)", TokenProbability(), n),
        Entry("token prob: exp(min log-prob)", TokenProbability(aggregate="min"), n),
        Entry("consistency: exact-match agreement, 5 samples T=1", five_samples, n),
        Entry("consistency: semantic entropy (exact clusters), same 5 samples", five_samples, n, negative_entropy),
        Entry(
            "consistency: adaptive (batches of 2, max 8)",
            Consistency(n_samples=8, batch_size=2, stop_confidence=0.8, seed=1),
            n,
        ),
        Entry("p_true (Yes/No log-probs)", PTrue(), expensive),
        Entry("verbalized: self-probing", Verbalized(style="self_probing"), expensive),
        Entry("verbalized: vanilla", Verbalized(style="vanilla"), expensive),
        Entry("familiarity (precheck, question only)", Familiarity(), expensive),
    ]


async def passage_entries(items: Sequence[QAItem], n: int, pace_samples: int) -> tuple[list[Entry], dict[str, object]]:
    """PACE over an index of every passage of the set, next to the free token-probability baseline."""
    from retrieval.documents import documents_from_texts
    from retrieval.embedders import MiniLMEmbedder
    from retrieval.index import Index

    passages = sorted({passage for item in items for passage in item.context})
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    index = await asyncio.to_thread(lambda: Index(embedder).add(documents_from_texts(passages)))
    info = {"passages": len(passages), "chunks": len(index), "build_seconds": round(time.perf_counter() - started, 1)}
    entries = [
        Entry("token prob: exp(mean log-prob)", TokenProbability(), n),
        Entry(
            f"pace (fixed combination, unfitted; {pace_samples} rating sample(s) per prompt)",
            Pace(searcher=index, embedder=embedder, n_samples=pace_samples),
            n,
        ),
    ]
    return entries, info


async def main_async(args: argparse.Namespace) -> str:
    """Run all datasets and return the results file's text."""
    llm = LocalLLM()
    await llm.load()
    started = time.perf_counter()
    lines = [
        "# Each signal alone on the embedded model",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.signals --trivia {args.trivia} --expensive {args.expensive}"
        f" --passages {args.passages}{'' if args.xquad is None else f' --xquad {args.xquad}'}"
        f" --pace-samples {args.pace_samples} --out {args.out}`",
        f"- Machine: {machine_description()}",
        f"- Packages: {package_versions(['llama-cpp-python', 'sentence-transformers', 'faiss-cpu', 'numpy'])}",
        "- Model: Gemma 3 270M Q4_K_M (base model), greedy answer in the few-shot Q/A format, max"
        f" {ANSWER_TOKENS} tokens. Label: the greedy answer contains a gold alias (SQuAD normalisation).",
        "- Nothing is fitted on these questions (first N of each file, in file order). Sampling seeds fixed"
        " (consistency seed 0, adaptive seed 1, estimator defaults elsewhere). Intervals: 95% percentile"
        " bootstrap over questions, 2,000 resamples.",
        "- Cost columns are the signal's own LLM work per question (the greedy answer is not included);"
        " seconds are wall time on this machine.",
        "",
    ]
    if args.trivia:
        trivia = load_trivia(limit=args.trivia)
        entries = trivia_entries(args.trivia, args.expensive)
        scored, accuracy, seconds = await run_dataset(llm, trivia, entries, label="trivia")
        lines += table("TriviaQA (`trivia_dev.txt`)", scored, accuracy, seconds, len(trivia))
    passage_sets = (
        ("SciQ (`sciq_valid.json`, support passages indexed)", load_sciq),
        ("XQuAD (`xquad_en.json`, all contexts indexed)", load_xquad),
    )
    for title, loader in passage_sets:
        count = args.xquad if loader is load_xquad and args.xquad is not None else args.passages
        if not count:
            continue
        everything = [item for item in loader() if item.context]
        entries, info = await passage_entries(everything, count, args.pace_samples)
        items = everything[:count]
        scored, accuracy, seconds = await run_dataset(llm, items, entries, label=title.split()[0])
        lines += table(title, scored, accuracy, seconds, len(items))
        lines.insert(len(lines) - 1, f"Index: {json.dumps(info)} (MiniLM, flat inner product, top-3 retrieved).")
        lines.insert(len(lines) - 1, "")
        args.out.write_text("\n".join(lines) + "\n")  # each dataset's table as soon as it is done
    lines.append(f"Total run time: {time.perf_counter() - started:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivia", type=int, default=300, help="TriviaQA questions for the cheap signals (0 skips)")
    parser.add_argument("--expensive", type=int, default=200, help="of those, how many get the costly signals")
    parser.add_argument("--passages", type=int, default=200, help="SciQ and XQuAD questions for PACE (0 skips)")
    parser.add_argument("--xquad", type=int, default=None, help="XQuAD questions, if not --passages (its PACE is slow)")
    parser.add_argument(
        "--pace-samples", type=int, default=1, help="PACE ratings per prompt (1 is the shipped suite's setting)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    text = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
