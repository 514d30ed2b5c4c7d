"""TokenProbability: exact numbers from supplied log-probs, the optional greedy regeneration, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from estimators.base import Cost
from estimators.logprob import TokenProbability
from estimators.testing import Rule, ScriptedLLM, user_message
from gate.backends.embedded.local import LocalLLM


async def test_mean_and_min_from_supplied_logprobs_are_exact_and_free() -> None:
    llm = ScriptedLLM()
    signal = await TokenProbability().score("Q?", "Jane Austen wrote it", llm=llm, logprobs=[-0.1, -0.3, -0.2, -1.0])
    assert signal.name == "logprob"
    assert signal.confidence == pytest.approx(math.exp(-0.4))
    assert signal.raw == pytest.approx(-0.4)
    assert signal.details["mean_logprob"] == pytest.approx(-0.4)
    assert signal.details["min_logprob"] == -1.0
    assert signal.details["n_tokens"] == 4
    assert signal.details["exp_min"] == pytest.approx(math.exp(-1.0))
    assert signal.details["exp_mean"] == pytest.approx(math.exp(-0.4))
    assert signal.details["source"] == "supplied"
    assert signal.cost == Cost()
    assert llm.calls == []
    json.dumps(signal.details)


async def test_min_aggregate_maps_the_weakest_token_to_confidence() -> None:
    signal = await TokenProbability(aggregate="min").score("Q?", "a b", llm=ScriptedLLM(), logprobs=(-0.5, -2.0))
    assert signal.confidence == pytest.approx(math.exp(-2.0))
    assert signal.raw == -2.0
    assert signal.details["mean_logprob"] == pytest.approx(-1.25)


async def test_numpy_logprobs_and_a_rounded_positive_zero_are_accepted() -> None:
    signal = await TokenProbability().score("Q?", "a b", llm=ScriptedLLM(), logprobs=np.array([-0.2, 5e-7]))
    assert signal.confidence == pytest.approx(math.exp(-0.1))
    assert signal.details["n_tokens"] == 2


async def test_without_logprobs_it_makes_no_call_and_reports_why() -> None:
    llm = ScriptedLLM(default="Paris")
    signal = await TokenProbability().score("Capital of France?", "Paris", llm=llm)
    assert signal.confidence is None
    assert signal.error == "no token log-probs"
    assert llm.calls == []


@pytest.mark.parametrize("values", [[], [0.3], [float("nan"), -0.1], [float("-inf")]])
async def test_empty_or_impossible_logprobs_give_an_error_signal(values: list[float]) -> None:
    signal = await TokenProbability().score("Q?", "A", llm=ScriptedLLM(), logprobs=values)
    assert signal.confidence is None
    assert signal.error is not None
    json.dumps(signal.details)


async def test_regenerate_uses_the_greedy_answer_when_it_matches() -> None:
    llm = ScriptedLLM([Rule("capital of France", "Paris, France", logprob=-0.25)])
    signal = await TokenProbability(regenerate=True).score("What is the capital of France?", "paris france.", llm=llm)
    assert signal.confidence == pytest.approx(math.exp(-0.25))
    assert signal.details["source"] == "regenerated"
    assert signal.details["n_tokens"] == 2
    assert signal.cost.calls == 1
    (call,) = llm.calls
    assert call.prompt == "user: What is the capital of France?"
    assert (call.temperature, call.logprobs, call.n) == (0.0, 0, 1)


async def test_regenerate_refuses_logprobs_of_a_different_text() -> None:
    llm = ScriptedLLM([Rule("capital of France", "Lyon")])
    signal = await TokenProbability(regenerate=True).score("What is the capital of France?", "Paris", llm=llm)
    assert signal.confidence is None
    assert "differs" in (signal.error or "")
    assert signal.details["regenerated"] == "Lyon"
    assert signal.cost.calls == 1


async def test_regenerate_on_an_endpoint_without_logprobs() -> None:
    llm = ScriptedLLM([Rule("France", "Paris")], with_logprobs=False)
    signal = await TokenProbability(regenerate=True).score("Capital of France?", "Paris", llm=llm)
    assert signal.confidence is None
    assert signal.error == "no token log-probs"
    assert signal.cost.calls == 1


async def test_bad_arguments_raise_with_what_was_received() -> None:
    with pytest.raises(ValueError, match="median"):
        TokenProbability(aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens"):
        TokenProbability(max_tokens=0)
    with pytest.raises(TypeError, match="str"):
        await TokenProbability().score("Q?", "A", llm=ScriptedLLM(), logprobs="-0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'x'"):
        await TokenProbability().score("Q?", "A", llm=ScriptedLLM(), logprobs=[-0.1, "x"])  # type: ignore[list-item]


@pytest.mark.integration
async def test_on_the_embedded_model(local_llm: LocalLLM) -> None:
    question = "What is the capital of France?"
    (generation,) = await local_llm.generate(user_message(question), temperature=0.0, max_tokens=16, logprobs=5)
    signal = await TokenProbability().score(question, generation.text, llm=local_llm, logprobs=generation.logprobs)
    assert signal.error is None
    assert signal.confidence is not None and 0.0 < signal.confidence <= 1.0
    assert signal.details["n_tokens"] == len(generation.tokens or ())
    assert signal.cost == Cost()
