"""What the request-kind evaluation sets are made of: the labelled example, the shared datasets it draws on,
and the helpers both splits use to fill templates.

The splits live in :mod:`benchmarks.request_kind_dev` (templates the rules were developed on) and
:mod:`benchmarks.request_kind_heldout` (templates written before the rules and not looked at while writing
them); :mod:`benchmarks.request_kinds` builds and scores them. Datasets are read in place, never copied.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from gate.datasets import (
    QAItem,
    load_efficientqa,
    load_halueval,
    load_hotpot,
    load_nq_open,
    load_popqa,
    load_sciq,
    load_trivia,
    load_xquad,
)

Kind = Literal["factual", "grounded", "non_factual", "tool_call"]
KINDS: tuple[Kind, ...] = ("factual", "grounded", "non_factual", "tool_call")
Message = dict[str, Any]


@dataclass(frozen=True)
class Example:
    """One labelled request: OpenAI chat messages (plus the request's tools) and the kind it should get."""

    id: str
    kind: Kind
    family: str  # "<kind>/<what>/<source>", for the per-family error table
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


@dataclass(frozen=True)
class Family:
    """A way of making examples of one kind; ``weight`` is its share of that kind's quota."""

    kind: Kind
    name: str
    weight: float
    make: Callable[[random.Random, int], Example]


def build(families: Sequence[Family], per_kind: int, seed: int) -> list[Example]:
    """``per_kind`` examples of each kind, split among its families by weight (largest remainders)."""
    rng = random.Random(seed)
    examples: list[Example] = []
    for kind in KINDS:
        members = [f for f in families if f.kind == kind]
        total = sum(f.weight for f in members)
        exact = [per_kind * f.weight / total for f in members]
        counts = [int(x) for x in exact]
        by_remainder = sorted(range(len(members)), key=lambda i: exact[i] - counts[i], reverse=True)
        for i in by_remainder[: per_kind - sum(counts)]:
            counts[i] += 1
        for member, count in zip(members, counts, strict=True):
            examples += [member.make(rng, i) for i in range(count)]
    return examples


# ------------------------------------------------------------------------------------------ the datasets


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass
class Sources:
    """The shared datasets, loaded on first use. ``half(rows, split)`` keeps dev and test rows apart."""

    data_dir: Path

    @cached_property
    def trivia(self) -> list[QAItem]:
        return load_trivia(self.data_dir / "trivia_dev.txt")

    @cached_property
    def nq(self) -> list[QAItem]:
        return load_nq_open(self.data_dir / "nq_open_dev.jsonl")

    @cached_property
    def efficientqa(self) -> list[QAItem]:
        return load_efficientqa(self.data_dir / "nq_efficientqa_dev.jsonl")

    @cached_property
    def popqa(self) -> list[QAItem]:
        return load_popqa(self.data_dir / "popqa_1k.jsonl")

    @cached_property
    def sciq(self) -> list[QAItem]:
        return load_sciq(self.data_dir / "sciq_valid.json")

    @cached_property
    def xquad(self) -> list[QAItem]:
        return load_xquad(self.data_dir / "xquad_en.json")

    @cached_property
    def hotpot(self) -> list[QAItem]:
        return load_hotpot(self.data_dir / "hotpot_distractor_100.json")

    @cached_property
    def halueval_qa(self) -> list[QAItem]:
        return load_halueval(self.data_dir / "halueval_qa.jsonl")

    @cached_property
    def summarization(self) -> list[str]:
        """HaluEval summarization documents (news articles)."""
        return [row["document"] for row in _jsonl(self.data_dir / "halueval_summarization_3k.jsonl")]

    @cached_property
    def dialogue(self) -> list[dict[str, Any]]:
        """HaluEval dialogue rows: knowledge, dialogue_history, right_response."""
        return _jsonl(self.data_dir / "halueval_dialogue.jsonl")

    @cached_property
    def factscore_topics(self) -> list[str]:
        """The people FActScore asked bios of, in file order, once each."""
        return list(dict.fromkeys(row["topic"] for row in _jsonl(self.data_dir / "factscore_bios.jsonl")))

    @cached_property
    def felm(self) -> list[dict[str, Any]]:
        return _jsonl(self.data_dir / "felm.jsonl")


def unquote(text: str) -> str:
    """A TriviaQA question that the file CSV-quotes once or more, unquoted until plain (see the datasets README)."""
    while len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            rows = list(csv.reader([text]))
        except csv.Error:
            break
        if len(rows) != 1 or len(rows[0]) != 1 or rows[0][0] == text:
            break
        text = rows[0][0]
    return text


def half(rows: Sequence[Any], split: str) -> list[Any]:
    """Even-indexed rows for the dev split, odd-indexed for test, so a shared file never feeds both."""
    return list(rows[0 if split == "dev" else 1 :: 2])


# --------------------------------------------------------------------------------------------- helpers


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def system(text: str) -> Message:
    return {"role": "system", "content": text}


def tool_call_message(calls: Sequence[tuple[str, str, dict[str, Any]]]) -> Message:
    """An assistant turn that calls tools: (call id, function name, arguments)."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for call_id, name, args in calls
        ],
    }


def tool_result(call_id: str, content: Any) -> Message:
    text = content if isinstance(content, str) else json.dumps(content)
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def function_tool(name: str, description: str, parameters: dict[str, str]) -> dict[str, Any]:
    """An OpenAI ``tools`` entry whose parameters are all required strings, described by ``parameters``."""
    properties = {key: {"type": "string", "description": text} for key, text in parameters.items()}
    schema = {"type": "object", "properties": properties, "required": list(parameters)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def sentences(text: str) -> list[str]:
    """Sentences of a passage, by end punctuation before a capital (good enough for sampling rewrites)."""
    return [s.strip() for s in _SENTENCE_END.split(text.replace("\n", " ")) if s.strip()]


def pick_sentences(rng: random.Random, text: str, n_min: int, n_max: int) -> str:
    """A run of consecutive sentences of ``text`` (at least 6 words each on average), or the whole text."""
    parts = sentences(text)
    n = min(len(parts), rng.randint(n_min, n_max))
    start = rng.randrange(len(parts) - n + 1)
    return " ".join(parts[start : start + n])


def first_words(text: str, limit: int) -> str:
    """The leading sentences of ``text`` that fit in ``limit`` words (at least one sentence)."""
    kept: list[str] = []
    for sentence in sentences(text):
        if kept and sum(len(s.split()) for s in kept) + len(sentence.split()) > limit:
            break
        kept.append(sentence)
    return " ".join(kept)


def lower_first(text: str) -> str:
    """``text`` with its first letter lower-cased unless the first word looks like a name or acronym."""
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and not first[1:2].isupper() and first.lower() in _LOWERABLE:
        return text[0].lower() + text[1:]
    return text


_LOWERABLE = frozenset(
    (
        *("who", "what", "when", "where", "which", "why", "how", "whose", "whom", "name"),
        *("is", "are", "was", "were", "did", "do", "does", "can", "could"),
        *("in", "on", "at", "the", "a", "an", "for", "to", "of", "during", "after", "before"),
    )
)


def strip_question_mark(text: str) -> str:
    return text.strip().rstrip("?").rstrip()


def is_name_like(text: str) -> bool:
    """A short capitalised answer (a usable entity for templates), not a number or a sentence."""
    words = text.split()
    return 1 <= len(words) <= 5 and text[:1].isupper() and not any(ch.isdigit() for ch in text)


def choose(rng: random.Random, options: Sequence[Any]) -> Any:
    return options[rng.randrange(len(options))]
