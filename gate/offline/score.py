"""Score responses people already have (a JSONL log), without regenerating them.

Each input line is ``{"question", "response"}`` plus optional ``id``, ``samples`` (other responses to the
same question), ``references`` (passages) and ``logprobs`` (the response's token log-probs); any other
field passes through untouched. Only the signals the line's material allows are computed:
familiarity (the question), P(True) and verbalized self-probing (the given response), consistency
(supplied samples, or ``sample_more`` fresh ones), PACE (supplied references or the gate's index) and
token probability (supplied log-probs).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gate.errors import UpstreamError
from gate.offline.signal_cache import drop_torn_tail
from gate.pipeline import Budget, Gate
from gate.suite import select

_SAMPLE_TEMPERATURE = 1.0


class ScoreInput(BaseModel):
    """One line of a ``gate score`` input; unknown fields are kept and written back unchanged."""

    model_config = ConfigDict(extra="allow")

    question: str
    response: str
    id: str | int | None = None
    samples: list[str] | None = None
    references: list[str] | None = None
    logprobs: list[float] | None = None

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty")
        return value


@dataclass
class ScoreSummary:
    """What a ``gate score`` run did: lines scored, skipped as already done, malformed, and the decisions."""

    scored: int = 0
    resumed: int = 0
    malformed: list[str] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    probabilities: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short human-readable summary."""
        total = sum(self.decisions.values())
        mix = ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(self.decisions.items())) if total else "none"
        mean = sum(self.probabilities) / len(self.probabilities) if self.probabilities else float("nan")
        out = [
            f"scored {self.scored} line(s); {self.resumed} already in the output; {len(self.malformed)} malformed",
            f"decisions: {mix}; mean probability {mean:.3f}",
        ]
        out += [f"signal failures: {dict(self.failures)}"] if self.failures else []
        return out + [f"  {problem}" for problem in self.malformed]


def line_id(record: ScoreInput, number: int) -> str:
    """The line's own id, or ``line-N`` (1-based) so resuming works for inputs without ids."""
    return str(record.id) if record.id is not None else f"line-{number}"


def read_inputs(path: Path, summary: ScoreSummary) -> Iterator[tuple[int, dict[str, Any], ScoreInput]]:
    """Yield valid lines (raw and parsed); a malformed one is recorded with its number and skipped."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
                if not isinstance(raw, dict):
                    raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
                yield number, raw, ScoreInput.model_validate(raw)
            except json.JSONDecodeError as exc:
                summary.malformed.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
            except ValidationError as exc:
                summary.malformed.append(f"line {number}: {_first_problem(exc)}")
            except ValueError as exc:
                summary.malformed.append(f"line {number}: {exc}")


def done_ids(path: Path) -> set[str]:
    """Ids already written to ``path`` (a torn last line is ignored and will be scored again)."""
    if not path.exists():
        return set()
    ids = set()
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(str(json.loads(text)["id"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


def signals_for(
    gate: Gate, record: ScoreInput, *, sample_more: int, wanted: list[str] | None = None
) -> list[str]:
    """The suite's signals (or the ``wanted`` ones) this line's material can feed (see the module docstring)."""
    check_wanted(gate, wanted)
    keys = []
    for spec in gate.suite:
        if wanted is not None and spec.key not in wanted:
            continue
        if spec.estimator == "consistency" and not (record.samples or sample_more):
            continue
        if spec.estimator == "pace" and not (record.references or gate.has_searcher):
            continue
        if spec.estimator == "logprob" and not record.logprobs:
            continue
        keys.append(spec.key)
    return keys


def check_wanted(gate: Gate, wanted: list[str] | None) -> None:
    """Refuse signal names the gate's suite does not have, listing the valid ones."""
    select(gate.suite, wanted)


async def score_one(
    gate: Gate, record: ScoreInput, *, sample_more: int, budget: Budget | None, signals: list[str] | None = None
) -> dict[str, Any]:
    """The gate's assessment of one existing response, as the ``gate`` object of the output line."""
    samples = list(record.samples or [])
    sampling_error = None
    if sample_more:
        try:
            fresh = await gate.llm.generate(
                [{"role": "user", "content": record.question}], n=sample_more, temperature=_SAMPLE_TEMPERATURE
            )
            samples += [g.text.strip() for g in fresh]
        except UpstreamError as exc:  # the line is still scored, on the material it brought
            sampling_error = f"--sample-more failed: {exc}"
    assessment = await gate.assess(
        record.question,
        answer=record.response,
        logprobs=record.logprobs,
        samples=samples or None,
        references=record.references,
        signals=signals_for(gate, record, sample_more=sample_more, wanted=signals),
        precheck=False,  # the response exists: there is no generation left to save
        budget=budget,
    )
    verdict = assessment.summary()
    if sampling_error:
        verdict["errors"]["sample_more"] = sampling_error
    return verdict


BatchScorer = Callable[[list[ScoreInput]], Awaitable[list[dict[str, Any]]]]
"""Scores a batch of lines and returns their verdicts in the batch's order (here, or on a Ray cluster)."""


async def score_file(
    gate: Gate,
    source: Path,
    out: Path,
    *,
    sample_more: int = 0,
    concurrency: int = 4,
    budget: Budget | None = None,
    signals: list[str] | None = None,
    on_line: Callable[[], None] | None = None,
) -> ScoreSummary:
    """Score every new line of ``source`` into ``out`` (appended, in input order, flushed per batch).

    ``signals`` narrows the suite's signals (the artifact still applies: fusion treats the rest as missing).
    """
    check_wanted(gate, signals)  # before any line is read, so a typo costs nothing

    async def score_batch(records: list[ScoreInput]) -> list[dict[str, Any]]:
        work = (score_one(gate, record, sample_more=sample_more, budget=budget, signals=signals) for record in records)
        return list(await asyncio.gather(*work))

    return await score_lines(source, out, score_batch, batch_size=concurrency, on_line=on_line)


async def score_lines(
    source: Path, out: Path, score_batch: BatchScorer, *, batch_size: int, on_line: Callable[[], None] | None = None
) -> ScoreSummary:
    """The ordering and resume rules every ``gate score`` path shares, whoever computes the verdicts.

    Lines whose id is already in ``out`` are skipped; the others are scored ``batch_size`` at a time and
    appended in input order, flushed per batch, so an interruption loses at most the batch in flight.
    """
    summary = ScoreSummary()
    seen = done_ids(out)
    batch: list[tuple[str, dict[str, Any], ScoreInput]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        drop_torn_tail(out)  # the next line must not be glued to the torn one an interruption left
    with out.open("a", encoding="utf-8") as sink:
        for number, raw, record in read_inputs(source, summary):
            key = line_id(record, number)
            if key in seen:
                summary.resumed += 1
                continue
            seen.add(key)
            batch.append((key, raw, record))
            if len(batch) >= batch_size:
                await _score_batch(score_batch, batch, sink, summary, on_line=on_line)
                batch = []
        await _score_batch(score_batch, batch, sink, summary, on_line=on_line)
    return summary


async def _score_batch(
    score_batch: BatchScorer,
    batch: list[tuple[str, dict[str, Any], ScoreInput]],
    sink: Any,
    summary: ScoreSummary,
    *,
    on_line: Callable[[], None] | None,
) -> None:
    if not batch:
        return
    results = await score_batch([record for _, _, record in batch])
    for (key, raw, _), verdict in zip(batch, results, strict=True):
        sink.write(json.dumps({**raw, "id": raw.get("id", key), "gate": verdict}) + "\n")
        summary.scored += 1
        summary.decisions[verdict["decision"]] += 1
        if verdict["probability"] is not None:
            summary.probabilities.append(verdict["probability"])
        summary.failures.update(verdict["errors"].keys())
        if on_line:
            on_line()
    sink.flush()


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "line"
    return f"{where}: {error['msg']}" if error["type"] != "json_invalid" else f"not JSON ({error['msg']})"
