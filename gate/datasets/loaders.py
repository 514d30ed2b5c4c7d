"""Development QA datasets: find them and load them as `QAItem` lists.

The datasets live outside the repository (``../shared/datasets`` from its root, or ``$GATE_DATA_DIR``) and
are read in place, never copied.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

PathArg = str | os.PathLike[str]
Items = Generator["QAItem", None, None]
Record = Mapping[str, Any]

DATA_DIR_ENV = "GATE_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]

DATASET_FILES: Mapping[str, str] = MappingProxyType(
    {
        "trivia": "trivia_dev.txt",
        "nq_open": "nq_open_dev.jsonl",
        "efficientqa": "nq_efficientqa_dev.jsonl",
        "popqa": "popqa_1k.jsonl",
        "sciq": "sciq_valid.json",
        "xquad": "xquad_en.json",
        "hotpot": "hotpot_distractor_100.json",
        "halueval": "halueval_qa.jsonl",
    }
)
"""Dataset name -> file name inside the data directory."""


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


# ------------------------------------------------------------------------------------- data directory


def find_data_dir(explicit: PathArg | None = None) -> Path:
    """Locate the directory holding the development datasets.

    Parameters
    ----------
    explicit : str or path-like, optional
        Used as is when given. Otherwise ``$GATE_DATA_DIR`` when set; otherwise ``../shared/datasets``
        relative to the repository root, then relative to the current directory.

    Returns
    -------
    Path
        The resolved directory.

    Raises
    ------
    FileNotFoundError
        When no candidate is an existing directory; the message names every place looked at. An explicit
        path or ``$GATE_DATA_DIR`` that does not exist is an error, never silently replaced by a default.
    """
    candidates: list[tuple[Path, str]]
    env_value = os.environ.get(DATA_DIR_ENV, "")
    if explicit is not None:
        candidates = [(Path(explicit).expanduser(), "explicit argument")]
    elif env_value:
        candidates = [(Path(env_value).expanduser(), f"${DATA_DIR_ENV}")]
    else:
        candidates = [
            (_REPO_ROOT.parent / "shared" / "datasets", "repository root/../shared/datasets"),
            (Path.cwd().parent / "shared" / "datasets", "current directory/../shared/datasets"),
        ]
    for candidate, _ in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    looked = "; ".join(f"{path} ({source})" for path, source in candidates)
    raise FileNotFoundError(
        f"No QA dataset directory found; looked in: {looked}. Pass a directory or set ${DATA_DIR_ENV}."
    )


def _resolve(path: PathArg | None, name: str) -> Path:
    return Path(path) if path is not None else find_data_dir() / DATASET_FILES[name]


# -------------------------------------------------------------------------------------- record helpers


def _field(record: Record, key: str, where: str) -> Any:
    if key not in record:
        raise DatasetFormatError(f"{where}: missing key {key!r}; found keys {sorted(record)}")
    return record[key]


def _text(record: Record, key: str, where: str) -> str:
    value = _field(record, key, where)
    if not isinstance(value, str):
        raise DatasetFormatError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _texts(record: Record, key: str, where: str) -> tuple[str, ...]:
    value = _field(record, key, where)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DatasetFormatError(f"{where}: {key!r} must be a list of strings, got {value!r:.80}")
    return tuple(value)


def _records(value: Any, where: str) -> list[Record]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DatasetFormatError(f"{where}: expected a list of JSON objects, got {type(value).__name__}")
    return value


def _own_id(record: Record, key: str, default: str) -> str:
    return str(record[key]) if key in record else default


def _take(items: Items, limit: int | None, path: Path) -> list[QAItem]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or a non-negative int, got {limit!r}")
    try:
        loaded = list(islice(items, limit))
    finally:
        items.close()
    logger.debug("loaded %d items from %s", len(loaded), path)
    return loaded


# ------------------------------------------------------------------------------------------ file readers


def _iter_lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """Yield ``(0-based index, line)``, splitting on newline only and dropping a trailing carriage return."""
    # newline="\n" keeps U+2028, U+0085 and lone \r inside lines (str.splitlines would split there).
    with path.open(encoding="utf-8", newline="\n") as handle:
        for index, line in enumerate(handle):
            yield index, line.removesuffix("\n").removesuffix("\r")


def _iter_jsonl(path: Path) -> Generator[tuple[int, str, Record], None, None]:
    for index, line in _iter_lines(path):
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


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from exc


MakeItem = Callable[[Record, str, str], QAItem]
"""Build an item from ``(record, default id, location for error messages)``."""


def _jsonl_items(path: Path, name: str, make: MakeItem) -> Items:
    for index, where, record in _iter_jsonl(path):
        yield make(record, f"{name}-{index}", where)


def _json_array_items(path: Path, name: str, make: MakeItem) -> Items:
    for index, record in enumerate(_records(_read_json(path), str(path))):
        yield make(record, f"{name}-{index}", f"{path} item {index}")


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


def _trivia_items(path: Path) -> Items:
    for index, line in _iter_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{index + 1}"
        question, tab, answers = line.rpartition("\t")
        if not tab or not question.strip():
            raise DatasetFormatError(f"{where}: expected 'question<TAB>answers', got {line!r:.80}")
        yield QAItem(id=f"trivia-{index}", question=question, answers=_trivia_answers(answers, where))


# ------------------------------------------------------------------------------------- per-format items


def _nq_item(record: Record, default_id: str, where: str) -> QAItem:
    extra = {key: value for key, value in record.items() if key not in ("question", "answer")}
    return QAItem(
        id=default_id,
        question=_text(record, "question", where),
        answers=_texts(record, "answer", where),
        metadata=extra,
    )


def _popqa_item(record: Record, default_id: str, where: str) -> QAItem:
    metadata = _field(record, "metadata", where)
    if not isinstance(metadata, dict):
        raise DatasetFormatError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    return QAItem(
        id=_own_id(record, "id", default_id),
        question=_text(record, "question", where),
        answers=_texts(record, "golden_answers", where),
        metadata=metadata,
    )


def _sciq_item(record: Record, default_id: str, where: str) -> QAItem:
    support = _text(record, "support", where)
    distractors = tuple(_text(record, f"distractor{i}", where) for i in (1, 2, 3))
    return QAItem(
        id=default_id,
        question=_text(record, "question", where),
        answers=(_text(record, "correct_answer", where),),
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


def _hotpot_item(record: Record, default_id: str, where: str) -> QAItem:
    passages = _field(record, "context", where)
    if not isinstance(passages, list):
        raise DatasetFormatError(f"{where}: 'context' must be a list, got {type(passages).__name__}")
    metadata = {key: record[key] for key in ("type", "level", "supporting_facts") if key in record}
    return QAItem(
        id=_own_id(record, "_id", default_id),
        question=_text(record, "question", where),
        answers=(_text(record, "answer", where),),
        context=tuple(_hotpot_passage(entry, where) for entry in passages),
        metadata=metadata,
    )


def _halueval_item(record: Record, default_id: str, where: str) -> QAItem:
    return QAItem(
        id=default_id,
        question=_text(record, "question", where),
        answers=(_text(record, "right_answer", where),),
        context=(_text(record, "knowledge", where),),
        metadata={"hallucinated_answer": _text(record, "hallucinated_answer", where)},
    )


def _generic_item(record: Record, default_id: str, where: str) -> QAItem:
    key = "answers" if "answers" in record else "answer"
    value = _field(record, key, where)
    answers = (value,) if isinstance(value, str) else _texts(record, key, where)
    references = _texts(record, "references", where) if "references" in record else ()
    extra = {k: v for k, v in record.items() if k not in ("id", "question", "answers", "answer", "references")}
    return QAItem(
        id=_own_id(record, "id", default_id),
        question=_text(record, "question", where),
        answers=answers,
        context=references,  # the passages PACE checks the answer against
        metadata=extra,
    )


def _squad_paragraphs(path: Path) -> Generator[tuple[str, str, Record], None, None]:
    """Yield ``(location, article title, paragraph)`` from a SQuAD-format JSON file."""
    root = _read_json(path)
    if not isinstance(root, dict):
        raise DatasetFormatError(f"{path}: expected a SQuAD object with 'data', got {type(root).__name__}")
    for a, article in enumerate(_records(_field(root, "data", str(path)), f"{path} data")):
        where = f"{path} data[{a}]"
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(_records(_field(article, "paragraphs", where), f"{where}.paragraphs")):
            yield f"{where}.paragraphs[{p}]", title, paragraph


def _xquad_items(path: Path) -> Items:
    index = 0
    for where, title, paragraph in _squad_paragraphs(path):
        passage = _text(paragraph, "context", where)
        for q, qa in enumerate(_records(_field(paragraph, "qas", where), f"{where}.qas")):
            qa_where = f"{where}.qas[{q}]"
            spans = _records(_field(qa, "answers", qa_where), f"{qa_where}.answers")
            yield QAItem(
                id=_own_id(qa, "id", f"xquad-{index}"),
                question=_text(qa, "question", qa_where),
                answers=tuple(dict.fromkeys(_text(span, "text", qa_where) for span in spans)),
                context=(passage,),
                metadata={"title": title},
            )
            index += 1


# ------------------------------------------------------------------------------------------ public loaders


def load_trivia(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load TriviaQA (``question<TAB>[answer aliases]`` lines); ids are ``trivia-<line index>``."""
    source = _resolve(path, "trivia")
    return _take(_trivia_items(source), limit, source)


def load_nq_open(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load NQ-open dev (JSONL ``{"question", "answer": [...]}``); ids are ``nq_open-<line index>``."""
    source = _resolve(path, "nq_open")
    return _take(_jsonl_items(source, "nq_open", _nq_item), limit, source)


def load_efficientqa(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load EfficientQA dev; keys other than question/answer (graded predictions) go to metadata."""
    source = _resolve(path, "efficientqa")
    return _take(_jsonl_items(source, "efficientqa", _nq_item), limit, source)


def load_popqa(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load PopQA; answers are ``golden_answers``, metadata is the record's (``s_pop``, ``o_pop``, ...)."""
    source = _resolve(path, "popqa")
    return _take(_jsonl_items(source, "popqa", _popqa_item), limit, source)


def load_sciq(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load SciQ; answer ``correct_answer``, context the non-empty ``support``, metadata the distractors."""
    source = _resolve(path, "sciq")
    return _take(_json_array_items(source, "sciq", _sciq_item), limit, source)


def load_xquad(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load XQuAD English (SQuAD JSON): one item per question, its paragraph as context, unique answers."""
    source = _resolve(path, "xquad")
    return _take(_xquad_items(source), limit, source)


def load_hotpot(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load HotpotQA distractor; context is one ``"title: sentences"`` passage per title."""
    source = _resolve(path, "hotpot")
    return _take(_json_array_items(source, "hotpot", _hotpot_item), limit, source)


def load_halueval(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load HaluEval QA; answer ``right_answer``, context ``knowledge``, metadata ``hallucinated_answer``."""
    source = _resolve(path, "halueval")
    return _take(_jsonl_items(source, "halueval", _halueval_item), limit, source)


def load_qa_jsonl(path: PathArg, *, limit: int | None = None) -> list[QAItem]:
    """Load any JSONL of ``{"question", "answers": [...]}`` (or ``"answer"``: str or list) lines.

    An optional ``"references"`` list of passages becomes the item's context (PACE's references).
    An ``id`` key is used when present, else ``<file stem>-<line index>``; other keys go to metadata.
    """
    source = Path(path)
    return _take(_jsonl_items(source, source.stem, _generic_item), limit, source)


class _Loader(Protocol):
    def __call__(self, path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]: ...


_LOADERS: Mapping[str, _Loader] = MappingProxyType(
    {
        "trivia": load_trivia,
        "nq_open": load_nq_open,
        "efficientqa": load_efficientqa,
        "popqa": load_popqa,
        "sciq": load_sciq,
        "xquad": load_xquad,
        "hotpot": load_hotpot,
        "halueval": load_halueval,
    }
)


def load_dataset(name: PathArg, *, data_dir: PathArg | None = None, limit: int | None = None) -> list[QAItem]:
    """Load a development dataset by name, or a QA JSONL file by path.

    Parameters
    ----------
    name : str or path-like
        One of ``trivia``, ``nq_open``, ``efficientqa``, ``popqa``, ``sciq``, ``xquad``, ``hotpot``,
        ``halueval``; or the path of an existing JSONL file (see `load_qa_jsonl`).
    data_dir : str or path-like, optional
        The datasets directory; found with `find_data_dir` when omitted.
    limit : int, optional
        Load at most this many items, in file order.

    Returns
    -------
    list of QAItem

    Raises
    ------
    ValueError
        When ``name`` is neither a known dataset nor an existing file, or ``limit`` is negative.
    DatasetFormatError
        When the file does not have its documented format (a ``ValueError`` naming the file and line).
    """
    loader = _LOADERS.get(os.fspath(name))
    if loader is not None:
        return loader(find_data_dir(data_dir) / DATASET_FILES[os.fspath(name)], limit=limit)
    candidate = Path(name).expanduser()
    if candidate.is_file():
        return load_qa_jsonl(candidate, limit=limit)
    raise ValueError(
        f"Unknown dataset {os.fspath(name)!r}; valid: {sorted(_LOADERS)}, or the path of an existing "
        'JSONL file of {"question", "answers"} lines'
    )
