"""A client's own fields through both upstream clients over real HTTP; tool calls read back; embedded limits."""

from __future__ import annotations

from typing import Any

import pytest

from estimators.base import ToolCall
from gate.backends.embedded.local import LocalLLM
from gate.backends.litellm_client import LiteLLMClient, parse_response
from gate.backends.openai_compat import OpenAICompatibleClient
from gate.errors import MalformedResponseError
from tests.stub_upstream import StubState, stub_upstream
from tests.test_llm_client import QUESTION

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
SENT: dict[str, Any] = {
    "tools": [WEATHER],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "response_format": {"type": "json_object"},
    "top_p": 0.5,
    "stop": ["END"],
    "seed": 3,
    "logit_bias": {"15": -5},
    "presence_penalty": 0.25,
    "store": False,
    "service_tier": "default",
    "reasoning_effort": "low",
    "prediction": {"type": "content", "content": "Oslo"},
    "metadata": {"team": "weather"},
}


@pytest.fixture(params=[LiteLLMClient, OpenAICompatibleClient], ids=["litellm", "direct"])
async def client(request):
    made: list[Any] = []

    def make(base_url: str) -> Any:
        made.append(request.param("openai/stub-model", api_base=base_url, api_key="sk-test", backoff_s=0.01))
        return made[-1]

    yield make
    for llm in made:
        if hasattr(llm, "aclose"):
            await llm.aclose()


async def test_the_clients_fields_reach_the_upstream_as_sent_and_tool_calls_come_back(client):
    state = StubState(reply=lambda request: {"content": None, "tool_calls": [CALL]})
    with stub_upstream(state) as url:
        [generation] = await client(url).generate(QUESTION, max_tokens=16, logprobs=5, options=SENT)
    [sent] = state.requests
    assert {name: sent.get(name) for name in SENT} == SENT  # metadata included: litellm's own name for its tags
    assert sent["logprobs"] is True and sent["top_logprobs"] == 5 and sent["max_tokens"] == 16
    assert generation.tool_calls == (ToolCall(id="call_9", name="get_weather", arguments='{"city": "Oslo"}'),)
    assert generation.finish_reason == "tool_calls" and generation.text == ""


async def test_one_log_prob_request_serves_the_gate_and_the_client_and_max_completion_tokens_wins(client):
    state = StubState(text="Oslo")
    with stub_upstream(state) as url:
        options = {"logprobs": True, "top_logprobs": 9, "max_completion_tokens": 12}
        [generation] = await client(url).generate(QUESTION, max_tokens=64, logprobs=5, options=options)
    [sent] = state.requests
    assert sent["top_logprobs"] == 9 and sent["max_completion_tokens"] == 12 and "max_tokens" not in sent
    assert generation.tokens is not None and len(generation.tokens[0].top) == 9


async def test_a_transport_control_can_never_be_set_through_options(client):
    with pytest.raises(ValueError, match="not forwarded request fields"):
        await client("http://127.0.0.1:9/v1").generate(QUESTION, options={"api_base": "http://attacker.example"})


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (
            [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
            ToolCall(id="c1", name="f", arguments='{"a": 1}'),
        ),
        ([{"function": {"name": "f", "arguments": None}}], None),  # no id: one is made up, the client must quote one
    ],
)
def test_tool_calls_in_the_shapes_servers_send_are_read(calls, expected):
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": None, "tool_calls": calls},
        "finish_reason": "tool_calls",
    }
    [generation] = parse_response({"choices": [choice]}, chat=True)
    [call] = generation.tool_calls
    if expected is not None:
        assert call == expected
    else:
        assert call.id.startswith("call_") and call.name == "f" and call.arguments == ""


@pytest.mark.parametrize(
    "calls",
    [
        "get_weather",
        [{"id": "c", "function": {"name": 5, "arguments": "{}"}}],
        [{"id": "c", "function": {"arguments": "{}"}}],
        [{"id": "c", "function": {"name": "f", "arguments": 3}}],
    ],
)
def test_malformed_tool_calls_are_a_malformed_response(calls):
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": None, "tool_calls": calls},
        "finish_reason": "stop",
    }
    with pytest.raises(MalformedResponseError):
        parse_response({"choices": [choice]}, chat=True)


def test_the_embedded_model_says_what_it_cannot_do_without_loading():
    local = LocalLLM()
    assert local.unsupported(QUESTION, {"tools": [WEATHER]})[0] == "tools"
    assert local.unsupported(QUESTION, {"seed": 1, "stop": "\n", "user": "u"}) is None
    assert local._process is None  # nothing was started to answer that


async def test_the_embedded_model_refuses_what_it_cannot_honour_before_any_work():
    with pytest.raises(ValueError, match=r"tools: the embedded model .* cannot call tools"):
        await LocalLLM().generate(QUESTION, options={"tools": [WEATHER]})
