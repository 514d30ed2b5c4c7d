"""Development QA datasets: find them and load them as `QAItem` lists.

The datasets live outside the repository (``../shared/datasets`` from its root, or ``$GATE_DATA_DIR``) and
are read in place, never copied. Each format's parser is in :mod:`gate.datasets.parsers`; the item type
and the file readers they share in :mod:`gate.datasets.records`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from gate.datasets.parsers import (
    generic_item,
    halueval_item,
    hotpot_item,
    nq_item,
    popqa_item,
    sciq_item,
    trivia_items,
    xquad_items,
)
from gate.datasets.records import DatasetFormatError, Items, PathArg, QAItem, json_array_items, jsonl_items

__all__ = [
    "DATASET_FILES",
    "DATA_DIR_ENV",
    "DatasetFormatError",
    "QAItem",
    "find_data_dir",
    "load_dataset",
    "load_efficientqa",
    "load_halueval",
    "load_hotpot",
    "load_nq_open",
    "load_popqa",
    "load_qa_jsonl",
    "load_sciq",
    "load_trivia",
    "load_xquad",
]

logger = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------- data directory


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


def _take(items: Items, limit: int | None, path: Path) -> list[QAItem]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or a non-negative int, got {limit!r}")
    try:
        loaded = list(islice(items, limit))
    finally:
        items.close()
    logger.debug("loaded %d items from %s", len(loaded), path)
    return loaded


# ---------------------------------------------------------------------------------------- public loaders


def load_trivia(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load TriviaQA (``question<TAB>[answer aliases]`` lines); ids are ``trivia-<line index>``."""
    source = _resolve(path, "trivia")
    return _take(trivia_items(source), limit, source)


def load_nq_open(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load NQ-open dev (JSONL ``{"question", "answer": [...]}``); ids are ``nq_open-<line index>``."""
    source = _resolve(path, "nq_open")
    return _take(jsonl_items(source, "nq_open", nq_item), limit, source)


def load_efficientqa(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load EfficientQA dev; keys other than question/answer (graded predictions) go to metadata."""
    source = _resolve(path, "efficientqa")
    return _take(jsonl_items(source, "efficientqa", nq_item), limit, source)


def load_popqa(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load PopQA; answers are ``golden_answers``, metadata is the record's (``s_pop``, ``o_pop``, ...)."""
    source = _resolve(path, "popqa")
    return _take(jsonl_items(source, "popqa", popqa_item), limit, source)


def load_sciq(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load SciQ; answer ``correct_answer``, context the non-empty ``support``, metadata the distractors."""
    source = _resolve(path, "sciq")
    return _take(json_array_items(source, "sciq", sciq_item), limit, source)


def load_xquad(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load XQuAD English (SQuAD JSON): one item per question, its paragraph as context, unique answers."""
    source = _resolve(path, "xquad")
    return _take(xquad_items(source), limit, source)


def load_hotpot(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load HotpotQA distractor; context is one ``"title: sentences"`` passage per title."""
    source = _resolve(path, "hotpot")
    return _take(json_array_items(source, "hotpot", hotpot_item), limit, source)


def load_halueval(path: PathArg | None = None, *, limit: int | None = None) -> list[QAItem]:
    """Load HaluEval QA; answer ``right_answer``, context ``knowledge``, metadata ``hallucinated_answer``."""
    source = _resolve(path, "halueval")
    return _take(jsonl_items(source, "halueval", halueval_item), limit, source)


def load_qa_jsonl(path: PathArg, *, limit: int | None = None) -> list[QAItem]:
    """Load any JSONL of ``{"question", "answers": [...]}`` (or ``"answer"``: str or list) lines.

    An optional ``"references"`` list of passages becomes the item's context (PACE's references).
    An ``id`` key is used when present, else ``<file stem>-<line index>``; other keys go to metadata.
    """
    source = Path(path)
    return _take(jsonl_items(source, source.stem, generic_item), limit, source)


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
