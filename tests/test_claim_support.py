"""ClaimSupport and score_claims: supports by hand (word overlap, a vocabulary embedder), cues, references, failures."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pytest

from estimators.claim_support import ClaimSupport, conversation_references, score_claims
from estimators.claims import split_claims
from estimators.testing import ScriptedLLM

LLM = ScriptedLLM([])
REFERENCE = "Paris is the capital of France. It has 2 million people."
ANSWER = "Paris is in France. It has 90 million people."


class VocabEmbedder:
    """Counts of a fixed vocabulary, L2-normalised, so cosines can be worked out by hand."""

    name = "test/vocab"
    vocabulary = ("paris", "france", "river", "seine", "tower")
    dimension = len(vocabulary) + 1  # the last bucket holds texts with no vocabulary word

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dimension))
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            rows[i, :-1] = [words.count(v) for v in self.vocabulary]
            rows[i, -1] = 0.0 if rows[i].any() else 1.0
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def test_overlap_support_and_missing_number_by_hand() -> None:
    signal = await ClaimSupport().score("Tell me about Paris.", ANSWER, llm=LLM, references=[REFERENCE])
    first, second = signal.details["claims"]
    # claim 1 content words {paris, france} are all in the first reference sentence
    assert first == {
        "text": "Paris is in France.",
        "span": [0, 19],
        "support": 1.0,
        "similarity": 1.0,
        "missing": [],
        "best_reference": "Paris is the capital of France.",
        "reason": "best reference similarity 1.00",
    }
    # claim 2 content words {90, million, people}: 2 of 3 found; "90" is in no reference: x (1 - 0.5)
    assert second["similarity"] == pytest.approx(2 / 3, abs=1e-4)
    assert second["support"] == pytest.approx(1 / 3, abs=1e-4)
    assert second["missing"] == ["90"]
    assert "not in references: 90" in second["reason"]
    assert ANSWER[slice(*second["span"])] == second["text"]
    assert signal.confidence == pytest.approx((1 + 1 / 3) / 2)
    assert signal.details["weakest"] == "It has 90 million people."
    assert signal.cost.calls == 0


async def test_min_aggregate_is_the_weakest_claim() -> None:
    signal = await ClaimSupport(aggregate="min").score("Q?", ANSWER, llm=LLM, references=[REFERENCE])
    assert signal.confidence == pytest.approx(1 / 3, abs=1e-6)


async def test_invented_names_are_penalised_but_names_from_the_question_are_not() -> None:
    refs = ["Robert Downey Jr. starred in Zodiac."]
    answer = "Downey starred in Zodiac with Tom Hanks."
    plain = await ClaimSupport(missing_penalty=0.5).score("Did you see Zodiac?", answer, llm=LLM, references=refs)
    assert plain.details["claims"][0]["missing"] == ["Tom", "Hanks"]
    asked = await ClaimSupport().score("Was Tom Hanks in Zodiac?", answer, llm=LLM, references=refs)
    assert asked.details["claims"][0]["missing"] == []
    assert plain.confidence == pytest.approx(asked.confidence * 0.25)


async def test_numbers_match_without_thousands_separators() -> None:
    signal = await ClaimSupport().score(
        "Q?", "It cost 1,500 dollars.", llm=LLM, references=["The price: 1500 dollars."]
    )
    assert signal.details["claims"][0]["missing"] == []


async def test_embedder_cosine_and_two_sentence_windows() -> None:
    refs = ["Paris lies on a river. The river is the Seine."]
    answer = "Paris lies on the Seine river."
    signal = await ClaimSupport(embedder=VocabEmbedder(), missing_penalty=0.0).score(
        "Q?", answer, llm=LLM, references=refs
    )
    claim = signal.details["claims"][0]
    # claim counts (paris 1, river 1, seine 1); the window of both sentences (paris 1, river 2, seine 1) is the
    # best unit: cosine = (1 + 2 + 1) / (sqrt(3) * sqrt(6))
    assert claim["best_reference"] == refs[0]
    assert claim["similarity"] == pytest.approx(4 / (3**0.5 * 6**0.5), abs=1e-4)
    single = await ClaimSupport(embedder=VocabEmbedder(), window=1, missing_penalty=0.0).score(
        "Q?", answer, llm=LLM, references=refs
    )
    assert single.details["claims"][0]["similarity"] < claim["similarity"]
    assert signal.details["similarity"] == "test/vocab"
    json.dumps(signal.model_dump())  # the audit trail writes details as JSON: no numpy scalars


async def test_conversation_user_and_tool_turns_are_references_assistant_turns_are_not() -> None:
    conversation = [
        {"role": "assistant", "content": "The Eiffel Tower is in Rome."},
        {"role": "tool", "content": "The Eiffel Tower stands in Paris."},
        {"role": "user", "content": [{"type": "text", "text": "Where is it?"}]},
    ]
    assert conversation_references(conversation) == ["The Eiffel Tower stands in Paris.", "Where is it?"]
    good = await ClaimSupport().score("Where is it?", "It is in Paris.", llm=LLM, conversation=conversation)
    bad = await ClaimSupport().score("Where is it?", "It is in Rome.", llm=LLM, conversation=conversation)
    assert good.details["claims"][0]["missing"] == []
    assert bad.details["claims"][0]["missing"] == ["Rome"]
    assert good.confidence > bad.confidence
    off = await ClaimSupport(use_conversation=False).score(
        "Where?", "It is in Paris.", llm=LLM, conversation=conversation
    )
    assert off.confidence is None and off.error == "no references"


async def test_failures_return_a_signal_without_confidence() -> None:
    empty = await ClaimSupport().score("Q?", "  ", llm=LLM, references=[REFERENCE])
    assert empty.confidence is None and empty.error == "no claims in the answer"
    no_refs = await ClaimSupport().score("Q?", ANSWER, llm=LLM, references=["  "])
    assert no_refs.confidence is None and no_refs.error == "no references"


async def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        await ClaimSupport().score("Q?", ANSWER, llm=LLM, references=REFERENCE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aggregate"):
        await ClaimSupport(aggregate="max").score("Q?", ANSWER, llm=LLM, references=[REFERENCE])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing_penalty"):
        score_claims(split_claims(ANSWER), [[REFERENCE]], embedder=None, missing_penalty=2.0)


def test_score_claims_averages_over_groups() -> None:
    claims = split_claims("Paris is in France.")
    scores = score_claims(claims, [["Paris is in France."], ["Rome is in Italy."]], embedder=None)
    # group 1 supports fully (1.0); group 2 shares no content word (0.0) and lacks both names (x 0.25)
    assert scores[0].support == pytest.approx(0.5)
    assert scores[0].similarity == pytest.approx(0.5)
    assert scores[0].missing == ("Paris", "France")  # missing from half of the groups
    assert score_claims([], [["x"]], embedder=None) == []
