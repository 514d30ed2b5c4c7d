"""PTrue: reading P(Yes)/P(No) from the verdict token's alternatives, and the sampled fallback."""

from __future__ import annotations

import json
import math

import pytest

from estimators.base import Cost
from estimators.p_true import PTrue, p_true_prompt, read_yes_no
from estimators.testing import Rule, ScriptedLLM
from gate.backends.embedded.local import LocalLLM

ITEM = "Proposed answer: Rome"


async def test_yes_and_no_variants_are_summed_and_normalised() -> None:
    top = (("Yes", -0.2), (" yes", -2.0), ("No", -1.5), (" NO", -3.0), ("Maybe", -4.0))
    llm = ScriptedLLM([Rule(ITEM, "Yes", logprob=-0.2, top=top)])
    signal = await PTrue().score("What is the capital of Italy?", "Rome", llm=llm)
    p_yes, p_no = math.exp(-0.2) + math.exp(-2.0), math.exp(-1.5) + math.exp(-3.0)
    assert signal.name == "p_true"
    assert signal.confidence == pytest.approx(p_yes / (p_yes + p_no))
    assert signal.raw == pytest.approx(math.log(p_yes))
    assert signal.details["p_yes"] == pytest.approx(p_yes)
    assert signal.details["p_no"] == pytest.approx(p_no)
    assert signal.details["normalised"] is True
    assert signal.details["method"] == "logprobs"
    assert signal.cost.calls == 1
    (call,) = llm.calls
    assert (call.n, call.max_tokens, call.logprobs, call.temperature) == (1, 1, 10, 0.0)
    assert call.prompt.endswith("Proposed answer: Rome\nIs the proposed answer correct? Yes or No.\nAnswer:")
    json.dumps(signal.details)


async def test_only_yes_seen_gives_p_yes_alone_with_a_flag() -> None:
    llm = ScriptedLLM([Rule(ITEM, "Yes", logprob=-0.5, top=(("Yes", -0.5), ("Maybe", -1.2)))])
    signal = await PTrue(top_k=3).score("Capital of Italy?", "Rome", llm=llm)
    assert signal.confidence == pytest.approx(math.exp(-0.5))
    assert signal.details["normalised"] is False
    assert llm.calls[0].logprobs == 3


async def test_the_chosen_token_counts_when_alternatives_are_missing() -> None:
    llm = ScriptedLLM([Rule(ITEM, "No", logprob=-0.3)])
    signal = await PTrue().score("Capital of Italy?", "Rome", llm=llm)
    assert signal.confidence == 0.0
    assert signal.raw is None
    assert signal.details["p_no"] == pytest.approx(math.exp(-0.3))
    assert signal.details["normalised"] is False


async def test_no_verdict_among_the_alternatives_is_an_error() -> None:
    llm = ScriptedLLM([Rule(ITEM, "Maybe", logprob=-0.1, top=(("Maybe", -0.1), ("Perhaps", -2.5)))])
    signal = await PTrue().score("Capital of Italy?", "Rome", llm=llm)
    assert signal.confidence is None
    assert "neither yes nor no" in (signal.error or "")
    assert signal.cost.calls == 1
    assert signal.details["alternatives"] == [["Maybe", -0.1], ["Perhaps", -2.5]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1000.0])
async def test_a_non_finite_or_positive_verdict_logprob_is_an_error_not_an_exception(bad: float) -> None:
    """NaN made a NaN confidence (a validation error) and 1000 overflowed exp(): both raised out of the estimator."""
    llm = ScriptedLLM([Rule(ITEM, "Yes", logprob=-0.1, top=(("Yes", bad), ("No", -2.0)))])
    signal = await PTrue().score("Capital of Italy?", "Rome", llm=llm)
    assert signal.confidence is None and "finite and at most 0" in (signal.error or "")
    json.dumps(signal.details, allow_nan=False)


async def test_sampled_fallback_counts_yes_among_yes_and_no() -> None:
    llm = ScriptedLLM([Rule(ITEM, ["Yes", "No", "yes.", "Unsure"])], with_logprobs=False)
    signal = await PTrue().score("Capital of Italy?", "Rome", llm=llm)
    # The greedy call takes the first reply; the 8 samples are No, yes., Unsure, Yes, No, yes., Unsure, Yes.
    assert signal.details["method"] == "sampled"
    assert (signal.details["n_yes"], signal.details["n_no"], signal.details["n_other"]) == (4, 2, 2)
    assert signal.confidence == pytest.approx(4 / 6)
    assert signal.raw is None
    assert signal.cost.calls == 2
    greedy, sampled = llm.calls
    assert greedy.logprobs == 10
    assert (sampled.n, sampled.temperature, sampled.seed, sampled.logprobs) == (8, 1.0, 0, None)


async def test_sampled_method_skips_the_logprob_call() -> None:
    llm = ScriptedLLM([Rule(ITEM, ["No", "No", "Yes"])])
    signal = await PTrue(method="sampled", n_samples=3, temperature=0.7, seed=11).score("Q?", "Rome", llm=llm)
    assert signal.confidence == pytest.approx(1 / 3)
    (call,) = llm.calls
    assert (call.n, call.temperature, call.seed) == (3, 0.7, 11)


async def test_logprobs_method_never_samples() -> None:
    llm = ScriptedLLM([Rule(ITEM, "Yes")], with_logprobs=False)
    signal = await PTrue(method="logprobs").score("Q?", "Rome", llm=llm)
    assert signal.confidence is None
    assert signal.error == "the endpoint returned no log-probs"
    assert len(llm.calls) == 1


async def test_samples_without_any_verdict_are_an_error() -> None:
    llm = ScriptedLLM([Rule(ITEM, "I think so")], with_logprobs=False)
    signal = await PTrue(n_samples=2).score("Q?", "Rome", llm=llm)
    assert signal.confidence is None
    assert signal.error == "no sampled verdict was yes or no"
    assert signal.details["samples"] == ["I think so", "I think so"]
    assert signal.cost.calls == 2


async def test_empty_answer_is_an_error_without_calls() -> None:
    llm = ScriptedLLM()
    signal = await PTrue().score("Q?", "  ", llm=llm)
    assert signal.error == "empty answer"
    assert signal.cost == Cost()
    assert llm.calls == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes", True), (" yes.", True), ("YES it is", True), ("No", False), ("no,", False), ("Nope", None), ("", None)],
)
def test_read_yes_no(text: str, expected: bool | None) -> None:
    assert read_yes_no(text) is expected


def test_prompt_keeps_each_field_on_one_line() -> None:
    prompt = p_true_prompt("Who wrote\nHamlet?", "William\n Shakespeare")
    assert prompt.endswith("Question: Who wrote Hamlet?\nProposed answer: William Shakespeare\n"
                           "Is the proposed answer correct? Yes or No.\nAnswer:")
    assert prompt.count("Answer: Yes") + prompt.count("Answer: No") == 3


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match="top_k"):
        PTrue(top_k=0)
    with pytest.raises(ValueError, match="method"):
        PTrue(method="vote")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        PTrue(temperature=0.0)


@pytest.mark.integration
async def test_on_the_embedded_model(local_llm: LocalLLM) -> None:
    signal = await PTrue().score("What is the capital of France?", "Paris", llm=local_llm)
    assert signal.error is None, signal.details
    assert signal.confidence is not None and 0.0 <= signal.confidence <= 1.0
    assert signal.details["method"] == "logprobs"
    assert signal.cost.calls == 1
    json.dumps(signal.details)
