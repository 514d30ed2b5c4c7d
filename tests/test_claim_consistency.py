"""ClaimConsistency: per-claim support by given samples (worked by hand), drawn samples, failures."""

from __future__ import annotations

import pytest

from estimators.claim_consistency import ClaimConsistency
from estimators.testing import Rule, ScriptedLLM

QUESTION = "Who was Ada Lovelace?"
ANSWER = "Ada Lovelace was a mathematician. She was born in 1815. She lived on Mars."
SAMPLES = [
    "Ada Lovelace was a mathematician born in 1815.",
    "Ada Lovelace, a mathematician, was born in 1816 in London.",
]


async def test_given_samples_score_each_claim_by_hand() -> None:
    llm = ScriptedLLM()
    signal = await ClaimConsistency().score(QUESTION, ANSWER, llm=llm, samples=SAMPLES)
    assert llm.calls == []  # given samples: no LLM call
    first, second, third = signal.details["claims"]
    # claim 1 content words {ada, lovelace, mathematician}: in both samples -> 1.0
    assert first["support"] == pytest.approx(1.0)
    # claim 2 {born, 1815}: sample 1 has both (1.0); sample 2 has "born" only (0.5) and lacks 1815 (x 0.5)
    assert second["support"] == pytest.approx((1.0 + 0.25) / 2)
    assert second["missing"] == ["1815"]  # missing from half of the samples
    # claim 3 {lived, mars}: no sample has either word, and "Mars" is missing from both: 0
    assert third["support"] == 0.0
    assert third["missing"] == ["Mars"]
    assert ANSWER[slice(*third["span"])] == "She lived on Mars."
    assert signal.confidence == pytest.approx((1.0 + 0.625 + 0.0) / 3)
    assert signal.details["n_samples_used"] == 2
    assert signal.cost.calls == 0


async def test_min_aggregate_flags_the_invented_claim() -> None:
    signal = await ClaimConsistency(aggregate="min").score(QUESTION, ANSWER, llm=ScriptedLLM(), samples=SAMPLES)
    assert signal.confidence == 0.0


async def test_draws_samples_in_the_conversation_when_none_are_given() -> None:
    llm = ScriptedLLM([Rule("Lovelace", SAMPLES)])
    conversation = [{"role": "user", "content": QUESTION}]
    signal = await ClaimConsistency(n_samples=2, temperature=0.8, seed=3).score(
        QUESTION, ANSWER, llm=llm, conversation=conversation
    )
    (call,) = llm.calls
    assert (call.n, call.temperature, call.seed) == (2, 0.8, 3)
    assert signal.details["samples"] == SAMPLES
    assert signal.cost.calls == 1
    assert signal.confidence == pytest.approx((1.0 + 0.625 + 0.0) / 3)


async def test_failures_return_a_signal_without_confidence() -> None:
    empty = await ClaimConsistency().score(QUESTION, "", llm=ScriptedLLM(), samples=SAMPLES)
    assert empty.confidence is None and empty.error == "no claims in the answer"
    blank = await ClaimConsistency().score(QUESTION, ANSWER, llm=ScriptedLLM(default="  "))
    assert blank.confidence is None and blank.error == "no samples to compare with"
    assert blank.cost.calls == 1


async def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        await ClaimConsistency().score(QUESTION, ANSWER, llm=ScriptedLLM(), samples="one sample")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_samples"):
        await ClaimConsistency(n_samples=0).score(QUESTION, ANSWER, llm=ScriptedLLM(), samples=SAMPLES)
