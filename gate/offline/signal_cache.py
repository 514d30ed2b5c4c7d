"""The raw signals of a calibration run, one JSON line per graded question, so no run is lost.

The first line is a header naming the model and the signal suite; appending to a cache made with a
different model or suite is refused (its signals would not mean the same thing). A torn last line, as
an interrupted run leaves, is skipped with a warning and recomputed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from estimators.base import Cost, Signal
from gate.suite import SignalSpec

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedRow:
    """One graded question: the answer the model gave, whether it was right, and every signal."""

    id: str
    dataset: str
    question: str
    gold: tuple[str, ...]
    answer: str
    correct: bool
    signals: dict[str, Signal]
    answer_cost: Cost

    def to_json(self) -> str:
        """One line of the cache."""
        return json.dumps(
            {
                "id": self.id,
                "dataset": self.dataset,
                "question": self.question,
                "gold": list(self.gold),
                "answer": self.answer,
                "correct": self.correct,
                "signals": {key: signal.model_dump(mode="json") for key, signal in self.signals.items()},
                "answer_cost": self.answer_cost.model_dump(),
            },
            default=str,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedRow:
        """Parse one cache line (already decoded); raises ``ValueError`` on a malformed row."""
        try:
            return cls(
                id=str(data["id"]),
                dataset=str(data["dataset"]),
                question=str(data["question"]),
                gold=tuple(data["gold"]),
                answer=str(data["answer"]),
                correct=bool(data["correct"]),
                signals={key: Signal.model_validate(value) for key, value in data["signals"].items()},
                answer_cost=Cost.model_validate(data["answer_cost"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed cache row: {exc!r}") from None

    def confidence(self, key: str) -> float:
        """The signal's confidence, NaN when it is missing or failed (what fusion expects)."""
        signal = self.signals.get(key)
        return float("nan") if signal is None or signal.confidence is None else float(signal.confidence)


def header(model: str, suite: Sequence[SignalSpec]) -> dict[str, Any]:
    """The first line of a cache: what its signals were computed with."""
    return {
        "kind": "llm-gate-signal-cache",
        "version": CACHE_VERSION,
        "model": model,
        "suite": [spec.to_dict() for spec in suite],
    }


def read_cache(path: Path) -> tuple[dict[str, Any], list[CachedRow]]:
    """The header and the rows of a cache file; torn or malformed lines are skipped with a warning."""
    lines = _lines(path)
    try:
        head = json.loads(next(lines)[1])
    except (StopIteration, json.JSONDecodeError):
        raise ValueError(f"{path} is not a signal cache (its first line is not a JSON header)") from None
    if not isinstance(head, dict) or head.get("kind") != "llm-gate-signal-cache":
        raise ValueError(f"{path} is not a signal cache (header {str(head)[:80]!r})")
    if head.get("version") != CACHE_VERSION:
        raise ValueError(f"{path} has cache version {head.get('version')!r}; this gate reads {CACHE_VERSION}")
    rows = []
    for number, line in lines:
        try:
            rows.append(CachedRow.from_json(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as exc:
            logger.warning("%s line %d skipped (%s); it will be recomputed", path, number, exc)
    return head, rows


def same_signals(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Whether two suites compute the same signals; the cascade stage of each does not change its values."""

    def signals(suite: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{key: value for key, value in spec.items() if key != "stage"} for spec in suite]

    return signals(a) == signals(b)


def open_cache(path: Path, model: str, suite: Sequence[SignalSpec]) -> list[CachedRow]:
    """Rows already cached for this model and suite; creates the file with its header when new."""
    wanted = header(model, suite)
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
        return []
    head, rows = read_cache(path)
    if head["model"] != model or not same_signals(head["suite"], wanted["suite"]):
        raise ValueError(
            f"{path} was computed for model {head['model']!r} with a different signal suite; "
            "use another --cache path or the same model and signals"
        )
    drop_torn_tail(path)
    return rows


def append_row(path: Path, row: CachedRow) -> None:
    """Append one row and flush it, so an interruption loses at most the question in flight."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(row.to_json() + "\n")
        handle.flush()


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def drop_torn_tail(path: Path) -> None:
    """Cut an unterminated last line, so the next append starts on a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
