"""One parser per dataset format: a file (or a record of it) in, :class:`~gate.datasets.records.QAItem` out."""

from __future__ import annotations

import ast
import csv
from collections.abc import Generator
from pathlib import Path
from typing import Any

from gate.datasets.records import (
    DatasetFormatError,
    Items,
    QAItem,
    Record,
    get_field,
    get_records,
    get_text,
    get_texts,
    iter_lines,
    own_id,
    read_json,
)

__all__ = [
    "generic_item",
    "halueval_item",
    "hotpot_item",
    "nq_item",
    "popqa_item",
    "sciq_item",
    "trivia_items",
    "xquad_items",
]


# ---------------------------------------------------------------------------------------------- TriviaQA


def _literal_str_list(text: str) -> tuple[str, ...] | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _csv_unquote(text: str) -> str | None:
    try:
        rows = list(csv.reader([text]))
    except csv.Error:
        return None
    return rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else None


def _trivia_answers(text: str, where: str) -> tuple[str, ...]:
    # A CSV-quoted list such as "['a', ""b's""]" often still literal_evals, to a *str* (adjacent string
    # literals concatenate), so anything but a list of strings falls through to CSV-unquoting.
    answers = _literal_str_list(text)
    if answers is None and text.startswith('"'):
        unquoted = _csv_unquote(text)
        answers = _literal_str_list(unquoted) if unquoted is not None else None
    if answers is None:
        raise DatasetFormatError(
            f"{where}: answers field is not a Python list of strings, plain or CSV-quoted: {text!r:.80}"
        )
    return answers


def trivia_items(path: Path) -> Items:
    for index, line in iter_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{index + 1}"
        question, tab, answers = line.rpartition("\t")
        if not tab or not question.strip():
            raise DatasetFormatError(f"{where}: expected 'question<TAB>answers', got {line!r:.80}")
        yield QAItem(id=f"trivia-{index}", question=question, answers=_trivia_answers(answers, where))


# -------------------------------------------------------------------------------------- per-format items


def nq_item(record: Record, default_id: str, where: str) -> QAItem:
    extra = {key: value for key, value in record.items() if key not in ("question", "answer")}
    return QAItem(
        id=default_id,
        question=get_text(record, "question", where),
        answers=get_texts(record, "answer", where),
        metadata=extra,
    )


def popqa_item(record: Record, default_id: str, where: str) -> QAItem:
    metadata = get_field(record, "metadata", where)
    if not isinstance(metadata, dict):
        raise DatasetFormatError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    return QAItem(
        id=own_id(record, "id", default_id),
        question=get_text(record, "question", where),
        answers=get_texts(record, "golden_answers", where),
        metadata=metadata,
    )


def sciq_item(record: Record, default_id: str, where: str) -> QAItem:
    support = get_text(record, "support", where)
    distractors = tuple(get_text(record, f"distractor{i}", where) for i in (1, 2, 3))
    return QAItem(
        id=default_id,
        question=get_text(record, "question", where),
        answers=(get_text(record, "correct_answer", where),),
        context=(support,) if support.strip() else (),
        metadata={"distractors": distractors},
    )


def _hotpot_passage(entry: Any, where: str) -> str:
    if not (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], list)
        and all(isinstance(s, str) for s in entry[1])
    ):
        raise DatasetFormatError(f"{where}: context entries must be [title, [sentences]], got {entry!r:.80}")
    # HotpotQA sentences after the first carry their own leading space.
    return f"{entry[0]}: {''.join(entry[1])}"


def hotpot_item(record: Record, default_id: str, where: str) -> QAItem:
    passages = get_field(record, "context", where)
    if not isinstance(passages, list):
        raise DatasetFormatError(f"{where}: 'context' must be a list, got {type(passages).__name__}")
    metadata = {key: record[key] for key in ("type", "level", "supporting_facts") if key in record}
    return QAItem(
        id=own_id(record, "_id", default_id),
        question=get_text(record, "question", where),
        answers=(get_text(record, "answer", where),),
        context=tuple(_hotpot_passage(entry, where) for entry in passages),
        metadata=metadata,
    )


def halueval_item(record: Record, default_id: str, where: str) -> QAItem:
    return QAItem(
        id=default_id,
        question=get_text(record, "question", where),
        answers=(get_text(record, "right_answer", where),),
        context=(get_text(record, "knowledge", where),),
        metadata={"hallucinated_answer": get_text(record, "hallucinated_answer", where)},
    )


def generic_item(record: Record, default_id: str, where: str) -> QAItem:
    key = "answers" if "answers" in record else "answer"
    value = get_field(record, key, where)
    answers = (value,) if isinstance(value, str) else get_texts(record, key, where)
    references = get_texts(record, "references", where) if "references" in record else ()
    extra = {k: v for k, v in record.items() if k not in ("id", "question", "answers", "answer", "references")}
    return QAItem(
        id=own_id(record, "id", default_id),
        question=get_text(record, "question", where),
        answers=answers,
        context=references,  # the passages PACE checks the answer against
        metadata=extra,
    )


def _squad_paragraphs(path: Path) -> Generator[tuple[str, str, Record], None, None]:
    """Yield ``(location, article title, paragraph)`` from a SQuAD-format JSON file."""
    root = read_json(path)
    if not isinstance(root, dict):
        raise DatasetFormatError(f"{path}: expected a SQuAD object with 'data', got {type(root).__name__}")
    for a, article in enumerate(get_records(get_field(root, "data", str(path)), f"{path} data")):
        where = f"{path} data[{a}]"
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(get_records(get_field(article, "paragraphs", where), f"{where}.paragraphs")):
            yield f"{where}.paragraphs[{p}]", title, paragraph


def xquad_items(path: Path) -> Items:
    index = 0
    for where, title, paragraph in _squad_paragraphs(path):
        passage = get_text(paragraph, "context", where)
        for q, qa in enumerate(get_records(get_field(paragraph, "qas", where), f"{where}.qas")):
            qa_where = f"{where}.qas[{q}]"
            spans = get_records(get_field(qa, "answers", qa_where), f"{qa_where}.answers")
            yield QAItem(
                id=own_id(qa, "id", f"xquad-{index}"),
                question=get_text(qa, "question", qa_where),
                answers=tuple(dict.fromkeys(get_text(span, "text", qa_where) for span in spans)),
                context=(passage,),
                metadata={"title": title},
            )
            index += 1
