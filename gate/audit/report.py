"""Reading the audit log back (``gate audit tail`` / ``gate audit summary``) over all of its rotated files.

A line that is not a JSON object (the torn last line of a crash, a hand edit) is counted and passed over,
never fatal; a record with a missing or mistyped field contributes what it has.
"""

from __future__ import annotations

import glob
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.audit.log import backup_path


def audit_files(path: Path) -> list[Path]:
    """The audit log and its rotated files, oldest first (missing ones left out)."""
    rotated = (p for p in path.parent.glob(f"{glob.escape(path.name)}.*") if p.suffix[1:].isdigit())
    indices = sorted((int(p.suffix[1:]) for p in rotated), reverse=True)
    files = [backup_path(path, index) for index in indices]
    return [*files, path] if path.exists() else files


def read_records(paths: Iterable[Path]) -> Iterator[dict[str, Any] | None]:
    """Every line of ``paths`` in order, parsed; ``None`` for a line that is not a JSON object."""
    for path in paths:
        with path.open("rb") as file:
            for raw in file:
                yield parse_line(raw)


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One audit line as a dict, or ``None`` when it is torn or garbled."""
    try:
        value = json.loads(raw)
    except ValueError:  # counted by the callers, which go on with the next line
        return None
    return value if isinstance(value, dict) else None


def tail_records(path: Path, n: int) -> tuple[list[dict[str, Any]], int]:
    """The last ``n`` records across the rotated files (oldest first) and the malformed lines passed over."""
    found: list[dict[str, Any]] = []
    malformed = 0
    for file in reversed(audit_files(path)):
        for raw in reversed(file.read_bytes().splitlines()):
            if len(found) >= n:
                return found[::-1], malformed
            record = parse_line(raw)
            if record is None:
                malformed += 1
            else:
                found.append(record)
    return found[::-1], malformed


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class AuditSummary:
    """What the audit log says about the requests it recorded."""

    lines: int = 0
    malformed: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    signal_errors: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    total_ms: list[float] = field(default_factory=list)
    gate_ms: list[float] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    first: str | None = None
    last: str | None = None

    @property
    def records(self) -> int:
        """Lines that could be read."""
        return self.lines - self.malformed

    def add(self, record: dict[str, Any] | None) -> None:
        """Count one line (``None``: a malformed one)."""
        self.lines += 1
        if record is None:
            self.malformed += 1
            return
        self.decisions[_outcome(record)] += 1
        self.models[str(record.get("model"))] += 1
        if isinstance(error := record.get("error"), dict):
            status = error.get("status")
            self.errors[f"{error.get('type')}" + (f" ({status})" if status is not None else "")] += 1
        if isinstance(failed := record.get("signal_errors"), dict):
            self.signal_errors.update(f"signal {key}" for key in failed)
        latency = record.get("latency_ms") if isinstance(record.get("latency_ms"), dict) else {}
        _append_number(self.total_ms, latency.get("total"))
        _append_number(self.gate_ms, latency.get("gate"))
        _append_number(self.probabilities, record.get("probability"))
        if isinstance(when := record.get("time"), str):
            self.first, self.last = min(self.first or when, when), max(self.last or when, when)

    def numbers(self) -> dict[str, Any]:
        """The summary as JSON-able numbers (what ``--json`` prints)."""
        mean = sum(self.probabilities) / len(self.probabilities) if self.probabilities else None
        return {
            "lines": self.lines,
            "malformed": self.malformed,
            "records": self.records,
            "first": self.first,
            "last": self.last,
            "decisions": dict(self.decisions),
            "errors": dict(self.errors),
            "signal_errors": dict(self.signal_errors),
            "models": dict(self.models),
            "latency_ms": {
                "total": {"p50": percentile(self.total_ms, 50), "p99": percentile(self.total_ms, 99)},
                "gate": {"p50": percentile(self.gate_ms, 50), "p99": percentile(self.gate_ms, 99)},
            },
            "mean_probability": mean,
        }


def summarize(records: Iterable[dict[str, Any] | None]) -> AuditSummary:
    """Count ``records`` (``None`` for a malformed line) into a summary."""
    summary = AuditSummary()
    for record in records:
        summary.add(record)
    return summary


def _outcome(record: dict[str, Any]) -> str:
    """The decision, or what the request got instead of one."""
    decision = record.get("decision")
    if isinstance(decision, str):
        return decision
    if record.get("error"):
        return "error"
    return "pass-through" if record.get("mode") == "off" else "none"


def _append_number(values: list[float], value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        values.append(float(value))
