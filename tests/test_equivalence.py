"""Equivalence judges: exact/span match, embedding cosine (batched), LLM two-way entailment, the registry."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.base import Cost
from estimators.equivalence import (
    EQUIVALENCES,
    EmbeddingMatch,
    EntailmentMatch,
    Equivalence,
    ExactMatch,
    entailment_prompt,
    make_equivalence,
)
from estimators.testing import Rule, ScriptedLLM


class TableEmbedder:
    """A fake embedder: fixed vectors per text; records each batch it was asked to embed."""

    name = "table"
    dimension = 2

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        self.table = table
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        rows = np.array([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Paris", "paris.", True),
        ("Paris", "Paris, France", True),
        ("The Beatles", "beatles", True),
        ("Paris", "Parisian", False),
        ("William Shakespeare", "Shakespeare", True),
        ("Jane Austen", "A. Jane Austen B. Robert Greene", False),
        ("Paris", "Lyon", False),
        ("The", "the", False),
        ("", "", False),
    ],
)
async def test_exact_match(a: str, b: str, expected: bool) -> None:
    assert await ExactMatch().equivalent("Q?", a, b) is expected


async def test_exact_match_span_fraction() -> None:
    judge = ExactMatch(min_span_fraction=1.0)
    verdicts, cost = await judge.compare("Q?", "Paris", ["Paris, France", "the Paris", "Lyon"])
    assert verdicts == [False, True, False]
    assert cost == Cost()
    loose = ExactMatch(min_span_fraction=0.2)
    others = ["city of Paris", "Lyon, Nice or Paris", "the city of Paris in northern France"]
    assert await loose.compare("Q?", "Paris", others) == ([True, True, False], Cost())


async def test_embedding_match_thresholds_the_cosine_in_one_batch() -> None:
    embedder = TableEmbedder({"cat": (1.0, 0.0), "kitten": (0.9, 0.1), "car": (0.5, 0.5), "dog": (0.0, 1.0)})
    judge = EmbeddingMatch(embedder, threshold=0.7)
    verdicts, cost = await judge.compare("Q?", "cat", ["kitten", "car", "dog"])
    # Cosines with "cat": 0.9/|(0.9,0.1)| = 0.994, 1/sqrt(2) = 0.707, 0.
    assert verdicts == [True, True, False]
    assert cost == Cost()
    assert embedder.batches == [["cat", "kitten", "car", "dog"]]
    assert await EmbeddingMatch(embedder, threshold=0.8).equivalent("Q?", "cat", "car") is False


async def test_embedding_match_with_nothing_to_compare_embeds_nothing() -> None:
    embedder = TableEmbedder({})
    assert await EmbeddingMatch(embedder).compare("Q?", "cat", []) == ([], Cost())
    assert embedder.batches == []


def _judge(synonyms: list[set[str]], one_way: tuple[str, str] | None = None) -> Callable[[str, int], str]:
    """A scripted entailment judge: yes when both answers are in one synonym set (or the one-way pair)."""

    def reply(prompt: str, _turn: int) -> str:
        a, b = re.findall(r"Answer 1: (.*)\nAnswer 2: (.*)\n", prompt)[-1]
        same = any(a in group and b in group for group in synonyms) or (a, b) == one_way
        return "Yes" if same else "No"

    return reply


async def test_entailment_needs_both_directions_and_counts_calls() -> None:
    llm = ScriptedLLM([Rule("Answer 1:", _judge([{"NYC", "New York City"}], one_way=("Manhattan", "NYC")))])
    judge = EntailmentMatch(llm)
    verdicts, cost = await judge.compare("Where is Wall Street?", "NYC", ["New York City", "Boston", "Manhattan"])
    # New York City: two yes calls; Boston: the first call says no; Manhattan: NYC does not imply it.
    assert verdicts == [True, False, False]
    assert cost.calls == 4
    assert all(call.temperature == 0.0 and call.max_tokens == 2 for call in llm.calls)
    verdicts, cost = await judge.compare("Where is Wall Street?", "Manhattan", ["NYC"])
    assert verdicts == [False]
    assert cost.calls == 2


async def test_entailment_unclear_verdict_is_not_equivalent() -> None:
    llm = ScriptedLLM([Rule("Answer 1:", "Possibly")])
    assert await EntailmentMatch(llm).equivalent("Q?", "a", "a") is False


def test_entailment_prompt_ends_with_the_pair() -> None:
    prompt = entailment_prompt("Who?", "Ada\nLovelace", "Lovelace")
    assert prompt.endswith(
        "Question: Who?\nAnswer 1: Ada Lovelace\nAnswer 2: Lovelace\nIf answer 1 is true, must answer 2 be true? "
        "Yes or No:"
    )


def test_registry_and_protocol() -> None:
    assert sorted(EQUIVALENCES) == ["embedding", "entailment", "exact"]
    assert isinstance(make_equivalence("exact", min_span_fraction=1.0), ExactMatch)
    assert isinstance(make_equivalence("entailment", ScriptedLLM()), EntailmentMatch)
    for judge in (ExactMatch(), EmbeddingMatch(TableEmbedder({})), EntailmentMatch(ScriptedLLM())):
        assert isinstance(judge, Equivalence)
    with pytest.raises(ValueError, match=r"'fuzzy'.*\['embedding', 'entailment', 'exact'\]"):
        make_equivalence("fuzzy")


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="Embedder"):
        EmbeddingMatch(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_span_fraction"):
        ExactMatch(min_span_fraction=0.0)
    with pytest.raises(ValueError, match="threshold"):
        EmbeddingMatch(TableEmbedder({}), threshold=1.5)
    with pytest.raises(TypeError, match="LLM"):
        EntailmentMatch("gpt-4")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "partial", "could"),
    [
        ("Paris", "", True),
        ("Paris", "Lyon", True),  # a word still being written counts for nothing yet
        ("Paris", "Lyon ", True),  # "Lyon Paris" agrees: the answer is half of it
        ("Paris", "Lyon or ", False),  # "Paris" no longer fits in two words
        ("Paris", "Paris, France, ", True),  # "Paris, France" agrees: the answer is half of it
        ("Paris", "Paris, France, and ", False),  # three words: the answer would be a third of them
        ("Eiffel Tower", "The tower ", True),  # articles are not words: "tower" is a span of the answer
        ("William Shakespeare", "Shakespeare ", True),  # a span of the answer, half its length
        ("Leonardo da Vinci", "Vinci ", True),  # "Vinci Leonardo da Vinci" would agree
        ("Leonardo da Vinci", "Vinci, Michelangelo and Raphael ", False),  # no room left for the answer
        ("...", "", False),  # an answer with no words agrees with nothing
    ],
)
def test_could_agree_by_hand(answer: str, partial: str, could: bool) -> None:
    assert ExactMatch().could_agree(answer, partial) is could


VOCABULARY = ["Paris", "paris", "the", "France", "of", "a", "city,", "Lyon.", "U.S.", "x", "-"]
phrases = st.lists(st.sampled_from(VOCABULARY), max_size=8)


@given(phrases, phrases, st.sampled_from([0.3, 0.5, 0.7, 1.0]), st.integers(min_value=0), st.sampled_from([" ", "\n"]))
@settings(max_examples=500, deadline=None)
def test_could_agree_is_never_false_for_a_prefix_of_an_agreeing_text(answer, sample, fraction, cut, separator):
    judge = ExactMatch(min_span_fraction=fraction)
    answer_text, sample_text = " ".join(answer), separator.join(sample)
    if judge._match(answer_text, sample_text):
        assert judge.could_agree(answer_text, sample_text[: cut % (len(sample_text) + 1)])
