"""The QA item every dataset loads into, and reading records out of text, JSON and JSONL files.

The helpers raise :class:`DatasetFormatError` naming the file and line or item, so every parser in
:mod:`gate.datasets.parsers` reports a malformed file the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "DatasetFormatError",
    "Items",
    "MakeItem",
    "PathArg",
    "QAItem",
    "Record",
    "get_field",
    "get_records",
    "get_text",
    "get_texts",
    "iter_lines",
    "json_array_items",
    "jsonl_items",
    "own_id",
    "read_json",
]

PathArg = str | os.PathLike[str]
Items = Generator["QAItem", None, None]
Record = Mapping[str, Any]


class DatasetFormatError(ValueError):
    """A dataset file does not have its documented format; the message names the file and line or item."""


def _empty_metadata() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answer aliases, optional context passages and source metadata.

    ``answers`` and ``context`` are coerced to tuples and ``metadata`` to a read-only mapping; the hash
    ignores ``metadata`` (its values may be unhashable) while equality includes it.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    context: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=_empty_metadata, hash=False)

    def __post_init__(self) -> None:
        for name in ("answers", "context"):
            if isinstance(getattr(self, name), str):
                raise TypeError(f"QAItem.{name} must be a sequence of strings, got a single str")
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


# ---------------------------------------------------------------------------------------- record helpers


def get_field(record: Record, key: str, where: str) -> Any:
    if key not in record:
        raise DatasetFormatError(f"{where}: missing key {key!r}; found keys {sorted(record)}")
    return record[key]


def get_text(record: Record, key: str, where: str) -> str:
    value = get_field(record, key, where)
    if not isinstance(value, str):
        raise DatasetFormatError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def get_texts(record: Record, key: str, where: str) -> tuple[str, ...]:
    value = get_field(record, key, where)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DatasetFormatError(f"{where}: {key!r} must be a list of strings, got {value!r:.80}")
    return tuple(value)


def get_records(value: Any, where: str) -> list[Record]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DatasetFormatError(f"{where}: expected a list of JSON objects, got {type(value).__name__}")
    return value


def own_id(record: Record, key: str, default: str) -> str:
    return str(record[key]) if key in record else default


# ------------------------------------------------------------------------------------------ file readers


def iter_lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """Yield ``(0-based index, line)``, splitting on newline only and dropping a trailing carriage return."""
    # newline="\n" keeps U+2028, U+0085 and lone \r inside lines (str.splitlines would split there).
    with path.open(encoding="utf-8", newline="\n") as handle:
        for index, line in enumerate(handle):
            yield index, line.removesuffix("\n").removesuffix("\r")


def iter_jsonl(path: Path) -> Generator[tuple[int, str, Record], None, None]:
    for index, line in iter_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{index + 1}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise DatasetFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield index, where, record


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from exc


MakeItem = Callable[[Record, str, str], QAItem]
"""Build an item from ``(record, default id, location for error messages)``."""


def jsonl_items(path: Path, name: str, make: MakeItem) -> Items:
    for index, where, record in iter_jsonl(path):
        yield make(record, f"{name}-{index}", where)


def json_array_items(path: Path, name: str, make: MakeItem) -> Items:
    for index, record in enumerate(get_records(read_json(path), str(path))):
        yield make(record, f"{name}-{index}", f"{path} item {index}")
