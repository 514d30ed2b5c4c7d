"""Run every signal over a labelled question set and cache the graded results (the data calibration fits on)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np

from gate.datasets import QAItem, is_correct, load_dataset
from gate.offline.signal_cache import CachedRow, append_row, open_cache
from gate.pipeline import Gate
from gate.suite import SignalSpec

logger = logging.getLogger(__name__)


def sample_items(
    datasets: Sequence[str], *, limit: int | None, seed: int, data_dir: Path | None = None
) -> list[tuple[str, QAItem]]:
    """Up to ``limit`` questions from each named set (or JSONL path), drawn at random with ``seed``.

    ``name:N`` takes N questions from that set instead of ``limit``. The draw of N is the first N of
    the same seeded order, so a larger limit extends a run (and its cache) rather than replacing it.

    A random draw rather than the first lines: several sets are sorted (PopQA by relation), and the
    first lines would not represent the file.
    """
    items: list[tuple[str, QAItem]] = []
    for entry in datasets:
        name, own_limit = _name_and_limit(entry, limit)
        loaded = load_dataset(name, data_dir=data_dir)
        order = np.random.default_rng(seed).permutation(len(loaded))
        chosen = order if own_limit is None else order[:own_limit]
        items += [(Path(name).stem, loaded[int(i)]) for i in chosen]
    return items


def _name_and_limit(entry: str, limit: int | None) -> tuple[str, int | None]:
    """Split ``name:N``; a plain name (or a path containing a colon but no count) keeps ``limit``."""
    name, _, count = entry.rpartition(":")
    if name and count.isdigit() and int(count) > 0:
        return name, int(count)
    return entry, limit


Grader = Callable[[str, QAItem], Awaitable[CachedRow]]
"""Grades one item of a named dataset (here, or on a Ray cluster)."""


async def collect(
    gate: Gate,
    items: Sequence[tuple[str, QAItem]],
    cache: Path,
    *,
    model: str,
    on_row: Callable[[CachedRow, bool], None] | None = None,
    concurrency: int = 1,
    cached_only: bool = False,
) -> list[CachedRow]:
    """Assess every item with all signals (no cascade, no precheck) and grade its answer.

    Rows already in ``cache`` (same model and suite) are reused, so an interrupted run resumes where it
    stopped. ``on_row(row, cached)`` is called once per item, for a progress display. ``cached_only``
    computes nothing and returns the rows already cached (to fit on part of a long run).
    Items with passages (SciQ, XQuAD, a user's ``references``) pass them to PACE as its references.
    """

    async def grader(dataset: str, item: QAItem) -> CachedRow:
        return await grade(gate, item, dataset=dataset)

    return await collect_rows(
        grader, gate.suite, items, cache, model=model, on_row=on_row, concurrency=concurrency, cached_only=cached_only
    )


async def collect_rows(
    grader: Grader,
    suite: Sequence[SignalSpec],
    items: Sequence[tuple[str, QAItem]],
    cache: Path,
    *,
    model: str,
    on_row: Callable[[CachedRow, bool], None] | None = None,
    concurrency: int = 1,
    cached_only: bool = False,
) -> list[CachedRow]:
    """The cache and order rules of :func:`collect`, whoever grades: at most ``concurrency`` items in flight,
    each row appended as it comes, the rows returned in the order of ``items``."""
    done = {row.id: row for row in open_cache(cache, model, suite)}
    rows: list[CachedRow] = []
    for _, item in items:
        if item.id in done:
            rows.append(done[item.id])
            if on_row:
                on_row(done[item.id], True)
    todo = [] if cached_only else [(dataset, item) for dataset, item in items if item.id not in done]
    limiter = asyncio.Semaphore(concurrency)

    async def one(dataset: str, item: QAItem) -> None:
        async with limiter:
            row = await grader(dataset, item)
        append_row(cache, row)
        rows.append(row)
        if on_row:
            on_row(row, False)

    await asyncio.gather(*(one(dataset, item) for dataset, item in todo))
    order = {item.id: i for i, (_, item) in enumerate(items)}
    return sorted(rows, key=lambda row: order[row.id])


async def grade(gate: Gate, item: QAItem, *, dataset: str) -> CachedRow:
    """One item: the full assessment of the model's own answer, and whether that answer is correct."""
    # labelled questions are factual by construction: none may be passed as another kind of request
    assessment = await gate.assess(
        item.question, cascade=False, precheck=False, references=item.context or None, assess_all=True
    )
    answer = assessment.answer or ""
    return CachedRow(
        id=item.id,
        dataset=dataset,
        question=item.question,
        gold=tuple(item.answers),
        answer=answer,
        correct=is_correct(answer, item.answers),
        signals=dict(assessment.signals),
        answer_cost=assessment.answer_cost,
    )
