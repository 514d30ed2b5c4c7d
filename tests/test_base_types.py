"""Core types and the scripted fake LLM."""

import pytest
from pydantic import ValidationError

from estimators.base import LLM, Cost, Generation, Signal, TokenLogprob, total_cost
from estimators.testing import Rule, ScriptedLLM, user_message


def test_cost_adds_up_field_by_field():
    total = Cost(calls=1, prompt_tokens=3, completion_tokens=2, seconds=0.5) + Cost(calls=2, completion_tokens=1)
    assert total == Cost(calls=3, prompt_tokens=3, completion_tokens=3, seconds=0.5)


def test_total_cost_sums_generations_and_costs():
    gens = [Generation(text="a", usage=Cost(calls=1, prompt_tokens=4)), Generation(text="b")]
    assert total_cost([*gens, Cost(seconds=1.0)]) == Cost(calls=1, prompt_tokens=4, seconds=1.0)


def test_generation_logprobs_view():
    gen = Generation(text="a b", tokens=(TokenLogprob(token="a", logprob=-1.0), TokenLogprob(token="b", logprob=-2.0)))
    assert gen.logprobs == [-1.0, -2.0]
    assert Generation(text="x").logprobs is None


@pytest.mark.parametrize("bad", [-0.01, 1.01, 50.0])
def test_signal_rejects_confidence_outside_unit_interval(bad):
    with pytest.raises(ValidationError, match="confidence must lie in"):
        Signal(name="x", confidence=bad)


def test_signal_allows_missing_confidence_with_error():
    signal = Signal(name="verbalized", error="unparseable", details={"raw": "???"})
    assert signal.confidence is None and signal.error == "unparseable"


def test_types_are_frozen():
    with pytest.raises(ValidationError):
        Generation(text="a").text = "b"  # type: ignore[misc]


async def test_scripted_llm_follows_rules_and_records_calls():
    llm = ScriptedLLM(rules=[Rule("capital", ["Paris", "Lyon"], logprob=-0.5)], default="no idea")
    assert isinstance(llm, LLM)
    gens = await llm.generate(user_message("What is the capital of France?"), n=3, logprobs=2, temperature=1.0)
    assert [g.text for g in gens] == ["Paris", "Lyon", "Paris"]
    assert gens[0].logprobs == [-0.5]
    assert total_cost(gens).calls == 1
    other = await llm.generate("unrelated prompt")
    assert other[0].text == "no idea" and other[0].tokens is None
    assert [c.n for c in llm.calls] == [3, 1] and llm.calls[0].temperature == 1.0


async def test_scripted_llm_without_logprobs_never_returns_them():
    llm = ScriptedLLM(rules=[Rule("q", "answer words")], with_logprobs=False)
    gens = await llm.generate("q", logprobs=5)
    assert gens[0].tokens is None
