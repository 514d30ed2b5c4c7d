"""The LLM decomposer of sentence claims into atomic facts (one few-shot call per claim)."""

from __future__ import annotations

import pytest

from estimators.claim_decomposer import ClaimDecomposer, decomposer_prompt, parse_facts
from estimators.claims import split_claims
from estimators.testing import Rule, ScriptedLLM

ANSWER = "Ada Byron was an English mathematician who wrote the first program. She died in 1852."


def test_the_prompt_ends_in_an_open_list_after_the_sentence_on_one_line() -> None:
    prompt = decomposer_prompt("She was born\nin London.")
    assert prompt.endswith("Sentence: She was born in London.\nFacts:\n-")
    assert prompt.count("Sentence:") == 3  # two demonstrations, then the sentence at hand


def test_parse_keeps_listed_facts_in_order_without_repeats_or_fragments() -> None:
    reply = " Ada was English.\n- Ada was a mathematician.\n2) Ada was English.\n- Yes\n* She wrote a program."
    assert parse_facts(reply, max_facts=8) == ["Ada was English.", "Ada was a mathematician.", "She wrote a program."]
    assert parse_facts(reply, max_facts=2) == ["Ada was English.", "Ada was a mathematician."]


async def test_each_claim_is_split_by_one_call_and_its_facts_keep_the_sentence_span() -> None:
    llm = ScriptedLLM(
        rules=[
            Rule("wrote the first program.\nFacts", " Ada Byron was English.\n- Ada Byron was a mathematician."),
            Rule("died in 1852.\nFacts", " she"),  # nothing usable: the sentence stands as its own fact
        ]
    )
    claims = split_claims(ANSWER)
    first, second = await ClaimDecomposer().decompose(claims, llm=llm)
    assert first.decomposed and [f.text for f in first.facts] == [
        "Ada Byron was English.",
        "Ada Byron was a mathematician.",
    ]
    assert {(f.start, f.end) for f in first.facts} == {(claims[0].start, claims[0].end)}
    assert not second.decomposed and [f.text for f in second.facts] == ["She died in 1852."]
    assert len(llm.calls) == 2 and all(call.temperature == 0.0 and call.n == 1 for call in llm.calls)
    assert first.cost.calls == 1


async def test_bad_settings_are_refused_before_any_call() -> None:
    llm = ScriptedLLM()
    with pytest.raises(ValueError, match="max_facts must be a positive integer"):
        await ClaimDecomposer(max_facts=0).decompose(split_claims(ANSWER), llm=llm)
    assert llm.calls == []
