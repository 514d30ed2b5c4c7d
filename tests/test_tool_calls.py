"""Tool calls through the proxy on the scripted LLM: forwarded with the answer only, rendered, streamed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from estimators.base import ToolCall
from estimators.testing import Rule, ScriptedLLM
from gate.pipeline import TOOL_CALL_REASON, Gate
from tests.test_pipeline import CAL, SUITE
from tests.test_server import ALL_MODES, MODEL, RULES, FakeCalibration, make_gate, serving, sse_chunks

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = ToolCall(id="call_w1", name="get_weather", arguments='{"city": "Paris", "unit": "celsius", "detail": "full"}')
SECOND = ToolCall(id="call_w2", name="get_weather", arguments='{"city": "Rome"}')
QUESTION = "What is the weather in Paris right now?"
TOOL_RULES = [Rule("weather in Paris", "", tool_calls=[CALL, SECOND]), *RULES]


def asks(question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], **extra}


def primary_calls(llm: ScriptedLLM) -> list[Any]:
    """The calls that carried the client's own fields (the answer the client gets)."""
    return [call for call in llm.calls if call.options]


async def test_a_tool_call_answer_passes_in_openai_shape_with_the_verdict_not_assessed():
    llm = ScriptedLLM(rules=TOOL_RULES)
    async with serving(make_gate(llm)) as client:
        request = asks(tools=[WEATHER], tool_choice="auto", parallel_tool_calls=True)
        response = await client.post("/v1/chat/completions", json=request)
    body = response.json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None and choice["message"]["role"] == "assistant"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": CALL.arguments}},
        {"id": "call_w2", "type": "function", "function": {"name": "get_weather", "arguments": SECOND.arguments}},
    ]
    gate = body["gate"]
    assert gate["decision"] == "not_assessed" and gate["kind"] == "tool_call" and gate["stage"] == "none"
    assert gate["reasons"] == [TOOL_CALL_REASON] and gate["probability"] is None
    assert response.headers["x-gate-decision"] == "not_assessed" and "x-gate-confidence" not in response.headers
    [primary] = primary_calls(llm)
    assert primary.options == {"tools": [WEATHER], "tool_choice": "auto", "parallel_tool_calls": True}
    assert all(call.options == {} for call in llm.calls if call is not primary)  # the gate's own calls: no tools


async def test_a_text_answer_to_a_request_with_tools_is_assessed_and_never_abstained_before_answering():
    llm = ScriptedLLM(rules=[Rule("Hamlet", "no idea")], default="something else")
    gate = make_gate(llm, FakeCalibration(precheck_threshold=0.99))  # the precheck would abstain on anything
    async with serving(gate, include_original=True) as client:
        with_tools = await client.post("/v1/chat/completions", json=asks("Who wrote Hamlet?", tools=[WEATHER]))
        without = await client.post("/v1/chat/completions", json=asks("Who wrote Hamlet?"))
    assert with_tools.json()["gate"]["stage"] != "precheck" and with_tools.json()["gate"]["original"] == "no idea"
    assert with_tools.json()["gate"]["kind"] == "factual"
    assert gate.assessed[0]["precheck"] is False
    assert without.json()["gate"]["stage"] == "precheck"  # without tools the precheck still abstains


async def test_tool_choice_none_keeps_the_precheck():
    gate = make_gate(ScriptedLLM(rules=TOOL_RULES), FakeCalibration(precheck_threshold=0.99))
    async with serving(gate) as client:
        await client.post("/v1/chat/completions", json=asks(tools=[WEATHER], tool_choice="none"))
    assert gate.assessed[0]["precheck"] is True


async def test_tool_calls_stream_in_openai_chunk_shape():
    async with serving(make_gate(ScriptedLLM(rules=TOOL_RULES))) as client:
        response = await client.post("/v1/chat/completions", json=asks(tools=[WEATHER], stream=True))
    chunks = sse_chunks(response)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[0] == {"role": "assistant", "content": None}
    heads = [d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert heads == [
        {"index": 0, "id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "call_w2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    for index, call in enumerate((CALL, SECOND)):
        fragments = [
            d["tool_calls"][0]["function"]["arguments"]
            for d in deltas
            if "tool_calls" in d and d["tool_calls"][0]["index"] == index
        ]
        assert len(fragments) > 1 or index == 1  # long arguments come in several fragments
        assert "".join(fragments) == call.arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls" and deltas[-1] == {}
    assert chunks[-1]["gate"]["decision"] == "not_assessed"


async def test_the_tool_exchange_goes_upstream_unchanged_and_a_following_user_turn_is_assessed():
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"temperature_c": 18}'},
        {"role": "assistant", "content": "It is 18 degrees."},
        {"role": "user", "content": "Thanks. Who wrote Hamlet?"},
    ]
    async with serving(make_gate(llm)) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": conversation, "tools": [WEATHER]}
        )
    assert response.json()["gate"]["decision"] == "answer"
    [primary] = primary_calls(llm)
    assert 'tool: {"temperature_c": 18}' in primary.prompt and "system: You are terse." in primary.prompt


async def test_an_answer_to_a_tool_result_passes_unassessed_with_why_when_no_signal_can_ground_it():
    llm = ScriptedLLM(rules=[Rule('"temperature_c": 18', "It is 18 degrees in Paris.")])
    gate = make_gate(llm)
    conversation = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"temperature_c": 18}'},
    ]
    async with serving(gate) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": conversation, "tools": [WEATHER]}
        )
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "It is 18 degrees in Paris."
    assert body["gate"]["decision"] == "not_assessed" and body["gate"]["kind"] == "grounded"
    [reason] = body["gate"]["reasons"]
    assert "tool result" in reason and "cannot check it against the supplied text (the pace signal does)" in reason
    assert body["gate"]["signals"] == {} and len(llm.calls) == 1  # passed on: one call, no signal work


async def test_mode_off_passes_tool_calls_of_every_choice():
    llm = ScriptedLLM(rules=TOOL_RULES)
    async with serving(make_gate(llm), **ALL_MODES) as client:
        response = await client.post("/v1/chat/completions", json=asks(tools=[WEATHER], n=2, gate={"mode": "off"}))
    choices = response.json()["choices"]
    assert [len(c["message"]["tool_calls"]) for c in choices] == [2, 2]
    assert {c["finish_reason"] for c in choices} == {"tool_calls"}


async def test_the_pipeline_passes_a_tool_call_answer_on_with_the_precheck_it_paid_for():
    llm = ScriptedLLM(rules=[Rule('Explain "Paris"', "Paris is the capital."), *TOOL_RULES])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, options={"tools": [WEATHER]}, precheck=False)
    assert result.decision == "not_assessed" and result.kind == "tool_call" and result.tool_calls == (CALL, SECOND)
    assert result.finish_reason == "tool_calls" and result.answer == ""
    assert set(result.signals) == {"familiarity"} and result.gate_cost.calls == result.signals["familiarity"].cost.calls
    assert result.answer_cost.calls == 1
    assert [call.options for call in llm.calls if call.options] == [{"tools": [WEATHER]}]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_arguments_survive_json_round_trip(stream):
    async with serving(make_gate(ScriptedLLM(rules=TOOL_RULES))) as client:
        response = await client.post("/v1/chat/completions", json=asks(tools=[WEATHER], stream=stream))
    if stream:
        fragments = [
            c["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments", "")
            for c in sse_chunks(response)
            if "tool_calls" in c["choices"][0]["delta"] and c["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
        ]
        arguments = "".join(fragments)
    else:
        arguments = response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius", "detail": "full"}
