"""Tool calls assessed by agreement across samples (``tool_calls: assess``), and passed on by default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from estimators.base import Cost, Generation, Prompt, ToolCall
from estimators.tool_agreement import ToolCallAgreement, same_calls
from gate.pipeline import Gate
from gate.server.policy import Policy
from gate.suite import SignalSpec
from gate.uncalibrated import Uncalibrated

PARIS = ToolCall(id="a", name="get_weather", arguments='{"city": "Paris", "unit": "C"}')
PARIS_AGAIN = ToolCall(id="b", name="get_weather", arguments='{"unit":"C","city":"Paris"}')  # same call, other layout
ROME = ToolCall(id="c", name="get_weather", arguments='{"city": "Rome"}')
TOOLS = {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@dataclass
class SamplingLLM:
    """The first call answers with ``first``; sampled calls hand out ``samples`` in turn (a list of calls or text)."""

    first: Sequence[ToolCall]
    samples: Sequence[Sequence[ToolCall] | str]
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def generate(
        self,
        prompt: Prompt,
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        logprobs: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        self.calls.append({"n": n, "temperature": temperature, "options": dict(options or {})})
        if len(self.calls) == 1:
            return [Generation(text="", tool_calls=tuple(self.first), finish_reason="tool_calls")]
        out = []
        for index in range(n):
            usage = Cost(calls=1) if index == 0 else Cost()  # a call books itself on its first generation
            sample = self.samples[index % len(self.samples)]
            if isinstance(sample, str):
                out.append(Generation(text=sample, finish_reason="stop", usage=usage))
            else:
                out.append(Generation(text="", tool_calls=tuple(sample), finish_reason="tool_calls", usage=usage))
        return out


def test_calls_are_the_same_whatever_their_ids_order_and_json_layout() -> None:
    assert same_calls([PARIS], [PARIS_AGAIN])
    assert same_calls([PARIS, ROME], [ROME, PARIS_AGAIN])
    assert not same_calls([PARIS], [ROME])
    assert not same_calls([PARIS], [PARIS, ROME])


async def test_the_agreement_is_the_share_of_samples_making_the_same_calls_asked_with_the_same_tools() -> None:
    llm = SamplingLLM(first=[PARIS], samples=[[PARIS_AGAIN], [ROME], "It is sunny.", [PARIS], [PARIS]])
    await llm.generate(ASK)  # the primary answer
    signal = await ToolCallAgreement(n_samples=5).score([PARIS], llm=llm, messages=ASK, options=TOOLS)
    assert signal.confidence == pytest.approx(3 / 5)
    assert signal.details["agree"] == [True, False, False, True, True]
    assert llm.calls[1] == {"n": 5, "temperature": 1.0, "options": TOOLS}


SUITE = (SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),)


async def test_by_default_a_tool_call_passes_unassessed_at_no_extra_call() -> None:
    llm = SamplingLLM(first=[PARIS], samples=[[ROME]])
    result = await Gate(llm, Uncalibrated(), suite=SUITE).assess(ASK, options=TOOLS)
    assert result.decision == "not_assessed" and result.tool_calls == (PARIS,)
    assert len(llm.calls) == 1


async def test_assessed_tool_calls_that_samples_repeat_are_answered() -> None:
    llm = SamplingLLM(first=[PARIS], samples=[[PARIS_AGAIN]])
    result = await Gate(llm, Uncalibrated(), suite=SUITE, tool_calls="assess").assess(ASK, options=TOOLS)
    assert result.decision == "answer" and result.kind == "tool_call" and result.probability == 1.0
    assert result.tool_calls == (PARIS,) and result.gate_cost.calls == 1
    assert "5 of 5 samples made the same tool calls" in result.reasons[0]


async def test_assessed_tool_calls_that_samples_do_not_repeat_are_withheld_by_the_policy() -> None:
    llm = SamplingLLM(first=[PARIS], samples=[[ROME], "I am not sure."])
    result = await Gate(llm, Uncalibrated(), suite=SUITE, tool_calls="assess").assess(ASK, options=TOOLS)
    assert result.decision == "abstain" and result.probability == 0.0
    reply = _policy().render("enforce", result)
    assert reply.tool_calls == [()]  # withheld: the client gets the abstain message instead
    assert "0 of 5 samples" in reply.texts[0]


async def test_a_hedged_tool_call_goes_out_as_made() -> None:
    llm = SamplingLLM(first=[PARIS], samples=[[PARIS], [ROME]])  # 3 of 5 agree
    result = await Gate(llm, Uncalibrated(), suite=SUITE, tool_calls="assess").assess(ASK, options=TOOLS)
    assert result.decision == "hedge"
    reply = _policy().render("enforce", result)
    assert reply.tool_calls == [(PARIS,)] and reply.texts == [""]


def _policy() -> Policy:
    from gate.config import Settings

    return Policy.from_settings(Settings())
