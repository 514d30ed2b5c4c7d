"""Every OpenAI chat-completions field: forwarded as sent, returned (log-probs), passed unassessed, or refused."""

from __future__ import annotations

from typing import Any

import pytest

from estimators.base import Prompt
from estimators.testing import Rule, ScriptedLLM
from gate.backends.embedded.limits import request_limit
from gate.backends.options import FORWARDED_FIELDS, call_fields
from tests.test_server import (
    ABSTAIN_Q,
    ALL_MODES,
    ANSWER_Q,
    HEDGE_Q,
    MODEL,
    RULES,
    assert_error,
    make_gate,
    serving,
    sse_chunks,
)

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "author",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "strict": True,
    },
}
FORWARDED: dict[str, Any] = {
    "seed": 7,
    "stop": ["\n\n", "END"],
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "logit_bias": {"50256": -100, "15": 2.5},
    "user": "user-42",
    "metadata": {"team": "search"},
    "store": False,
    "service_tier": "flex",
    "reasoning_effort": "low",
    "verbosity": "low",
    "prediction": {"type": "content", "content": "William Shakespeare"},
    "modalities": ["text"],
    "max_completion_tokens": 40,
    "safety_identifier": "hash-1",
    "prompt_cache_key": "hamlet",
    "prompt_cache_retention": "24h",
    "web_search_options": {"search_context_size": "low"},
    "response_format": {"type": "text"},
}


def chat(question: str = ANSWER_Q, messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages or [{"role": "user", "content": question}], **extra}


async def post(client: Any, body: dict[str, Any]) -> Any:
    return await client.post("/v1/chat/completions", json=body)


def test_the_forwarded_fields_are_exactly_the_wire_fields_that_go_upstream():
    from gate.server.wire import ChatRequest

    gate_owned = {"model", "messages", "n", "temperature", "max_tokens", "stream", "stream_options", "gate"}
    assert set(ChatRequest.model_fields) == FORWARDED_FIELDS | gate_owned


async def test_every_forwarded_field_reaches_the_answer_call_as_sent_and_no_signal_call():
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm)) as client:
        response = await post(client, chat(**FORWARDED))
    assert response.status_code == 200, response.text
    assert response.json()["gate"]["decision"] == "answer"  # a text answer is assessed as ever
    [primary] = [call for call in llm.calls if call.options]
    assert primary.options == FORWARDED
    assert primary.max_tokens == 40  # max_completion_tokens bounds the answer
    assert len(llm.calls) > 1  # the signals ran, without the client's fields


def test_remote_calls_merge_the_client_log_probs_with_the_gates_and_prefer_max_completion_tokens():
    fields, logprobs = call_fields({"logprobs": True, "top_logprobs": 12, "seed": 1}, logprobs=5, max_tokens=64)
    assert (fields, logprobs) == ({"seed": 1, "max_tokens": 64}, 12)
    assert call_fields({"logprobs": True}, logprobs=None, max_tokens=8) == ({"max_tokens": 8}, 0)
    assert call_fields({"logprobs": False}, logprobs=5, max_tokens=8) == ({"max_tokens": 8}, 5)
    assert call_fields({"max_completion_tokens": 9}, logprobs=None, max_tokens=8) == (
        {"max_completion_tokens": 9},
        None,
    )
    with pytest.raises(ValueError, match="'api_base'"):
        call_fields({"api_base": "http://elsewhere"}, logprobs=None, max_tokens=8)  # never a transport control


@pytest.mark.parametrize("response_format", [{"type": "json_object"}, SCHEMA])
async def test_json_output_is_forwarded_and_passed_on_unassessed(response_format):
    llm = ScriptedLLM(rules=[Rule("Hamlet", '{"name": "William Shakespeare"}')])
    gate = make_gate(llm)
    async with serving(gate) as client:
        response = await post(client, chat(response_format=response_format))
    body = response.json()
    assert body["choices"][0]["message"]["content"] == '{"name": "William Shakespeare"}'
    assert body["gate"]["decision"] == "not_assessed" and body["gate"]["kind"] == "non_factual"
    assert body["gate"]["reasons"] == [
        f"the client asked for JSON output (response_format {response_format['type']}); it is not assessed"
    ]
    assert gate.assessed == [] and [call.options for call in llm.calls] == [{"response_format": response_format}]


async def test_image_parts_go_upstream_as_sent_and_the_answer_is_not_assessed():
    llm = ScriptedLLM(rules=[Rule("this picture", "A cat.")])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}, image]}
    gate = make_gate(llm)
    async with serving(gate) as client:
        response = await post(client, chat(messages=[message]))
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "A cat."
    assert body["gate"]["decision"] == "not_assessed" and "image_url content" in body["gate"]["reasons"][0]
    assert gate.assessed == []


async def test_text_parts_are_read_as_the_question():
    async with serving() as client:
        parts = [{"type": "text", "text": "Who wrote "}, {"type": "text", "text": "Hamlet?"}]
        response = await post(client, chat(messages=[{"role": "user", "content": parts}]))
    assert response.json()["gate"]["decision"] == "answer"


async def test_a_multi_turn_chat_with_a_system_and_a_developer_prompt_is_assessed_on_the_whole_conversation():
    llm = ScriptedLLM(rules=RULES)
    gate = make_gate(llm)
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "developer", "content": "Never use lists."},
        {"role": "user", "content": "I am reading a play."},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "name": "ann", "content": ANSWER_Q},
    ]
    async with serving(gate) as client:
        response = await post(client, chat(messages=conversation))
    assert response.json()["gate"]["decision"] == "answer"
    [primary] = [call for call in llm.calls if call.logprobs == 5]
    assert primary.prompt.startswith("system: Answer briefly.\ndeveloper: Never use lists.\nuser: I am reading")


async def test_log_probs_asked_for_come_back_with_the_answer_as_many_alternatives_as_asked():
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01, top=[("W", -0.2), ("X", -3.0)])])
    async with serving(make_gate(llm)) as client:
        response = await post(client, chat(logprobs=True, top_logprobs=1))
        streamed = await post(client, chat(logprobs=True, stream=True))
    logprobs = response.json()["choices"][0]["logprobs"]
    assert [item["token"] for item in logprobs["content"]] == ["William", "Shakespeare"]
    assert logprobs["content"][0]["logprob"] == -0.01
    assert logprobs["content"][0]["top_logprobs"] == [{"token": "W", "logprob": -0.2, "bytes": [87]}]
    assert logprobs["content"][0]["bytes"] == list(b"William")
    chunks = [c for c in sse_chunks(streamed) if c["choices"] and c["choices"][0]["logprobs"]]
    tokens = [item["token"] for c in chunks for item in c["choices"][0]["logprobs"]["content"]]
    assert tokens == ["William", "Shakespeare"]
    assert all(not item["top_logprobs"] for c in chunks for item in c["choices"][0]["logprobs"]["content"])


async def test_log_probs_are_not_returned_when_the_content_is_not_the_models_answer():
    async with serving() as client:
        hedged = await post(client, chat(HEDGE_Q, logprobs=True))
        withheld = await post(client, chat(ABSTAIN_Q, logprobs=True))
        unasked = await post(client, chat(ANSWER_Q))
    assert hedged.json()["gate"]["decision"] == "hedge" and hedged.json()["choices"][0]["logprobs"] is None
    assert withheld.json()["gate"]["decision"] == "abstain" and withheld.json()["choices"][0]["logprobs"] is None
    assert unasked.json()["choices"][0]["logprobs"] is None


async def test_mode_off_forwards_the_fields_and_returns_log_probs():
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm), **ALL_MODES) as client:
        response = await post(client, chat(logprobs=True, top_logprobs=0, seed=3, gate={"mode": "off"}))
    assert [call.options for call in llm.calls] == [{"logprobs": True, "top_logprobs": 0, "seed": 3}]
    assert response.json()["choices"][0]["logprobs"]["content"][0]["token"] == "William"


@pytest.mark.parametrize(
    ("extra", "message", "param"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio is not supported: the gate assesses text", "audio"),
        ({"modalities": ["text", "audio"]}, "audio output is not served", "modalities"),
        ({"functions": [{"name": "f"}]}, "send the same definitions as tools", "functions"),
        ({"function_call": "auto"}, "send tool_choice instead", "function_call"),
        ({"tool_choice": "auto"}, "tool_choice needs tools", "tool_choice"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls needs tools", "parallel_tool_calls"),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs: true", "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "less than or equal to 20", "top_logprobs"),
        ({"response_format": {"type": "json_schema"}}, "json_schema is required", "response_format"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "1 to 4 non-empty strings", "stop"),
        ({"logit_bias": {"hello": 1}}, "token ids", "logit_bias"),
        ({"metadata": {"k": 1}}, "valid string", "metadata.k"),
        ({"seed": "7"}, "valid integer", "seed"),
        ({"store": "yes"}, "valid boolean", "store"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "custom tools", "tools[0].type"),
        (
            {"tools": [{"type": "function", "function": {"name": "a b"}}]},
            "should match pattern",
            "tools[0].function.name",
        ),
        ({"top_k": 40}, "unsupported parameter 'top_k'", "top_k"),
        (
            {"stream_options": {"include_usage": True, "chunk": 1}},
            "the object takes no such field",
            "stream_options.chunk",
        ),
    ],
)
async def test_refused_and_mistyped_fields_are_400_naming_the_field_and_saying_why(extra, message, param):
    gate = make_gate()
    async with serving(gate) as client:
        response = await post(client, chat(**extra))
    assert_error(response, 400, contains=message, param=param)
    assert gate.assessed == []


@pytest.mark.parametrize(
    ("messages", "message", "param"),
    [
        (
            [{"role": "function", "name": "f", "content": "1"}],
            "send the result as a 'tool' message",
            "messages[0].role",
        ),
        ([{"role": "tool", "content": "18"}], "needs the tool_call_id", "messages[0]"),
        ([{"role": "user", "content": None}], "a user message needs content", "messages[0]"),
        (
            [{"role": "user", "content": "q", "tool_call_id": "c"}],
            "tool_call_id belongs to tool messages",
            "messages[0]",
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "a system message takes only ['text'] content parts",
            "messages[0]",
        ),
        ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "valid part types", "messages[0].content"),
    ],
)
async def test_malformed_messages_are_400_naming_the_message(messages, message, param):
    async with serving() as client:
        response = await post(client, chat(messages=[*messages, {"role": "user", "content": ANSWER_Q}]))
    assert_error(response, 400, contains=message, param=param)


class LimitedLLM(ScriptedLLM):
    """A scripted LLM with the embedded model's limits."""

    def unsupported(self, prompt: Prompt, options: Any) -> tuple[str, str] | None:
        return request_limit(prompt, options)


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "cannot call tools"),
        ({"response_format": {"type": "json_object"}}, "response_format", "cannot constrain its output to JSON"),
        ({"top_p": 0.5}, "top_p", "not a per-request top_p"),
        ({"logit_bias": {"1": 2}}, "logit_bias", "takes no logit_bias"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0]",
            "reads text only",
        ),
    ],
)
async def test_what_the_embedded_model_cannot_do_is_a_400_that_says_so(extra, param, message):
    llm = LimitedLLM(rules=RULES)
    async with serving(make_gate(llm)) as client:
        response = await post(client, chat(**extra))
    assert_error(response, 400, contains=message, param=param)
    assert response.json()["error"]["code"] == "unsupported_by_model" and llm.calls == []


async def test_the_embedded_model_accepts_what_it_can_honour_or_need_not():
    llm = LimitedLLM(rules=RULES)
    honoured = {"seed": 1, "stop": "\n", "user": "u", "metadata": {"a": "b"}, "tool_choice": "none", "store": True}
    async with serving(make_gate(llm)) as client:
        response = await post(client, chat(response_format={"type": "text"}, modalities=["text"], **honoured))
    assert response.status_code == 200, response.text


def test_the_embedded_model_refuses_tool_turns():
    turns = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "1"},
    ]
    assert request_limit(turns, None) == (
        "messages[1]",
        "the embedded model (Gemma 3 270M, a base model prompted in a Q/A format) cannot read tool calls or tool "
        "results; point the gate at an upstream that supports it (model: openai/<name> with api_base)",
    )
    assert request_limit([{"role": "developer", "content": "be brief"}, *turns[:1]], {"seed": 1}) is None


@pytest.mark.parametrize("payload", [{"prompt": "q", "logprobs": 2}, {"prompt": "q", "suffix": "x"}])
async def test_text_completion_only_fields_are_refused_with_the_reason(payload):
    async with serving() as client:
        response = await client.post("/v1/completions", json={"model": MODEL, **payload})
    [name] = set(payload) - {"prompt"}
    assert_error(response, 400, contains=f"{name} is not supported: ", param=name)


async def test_text_completions_forward_the_shared_sampling_fields():
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm)) as client:
        body = {"model": MODEL, "prompt": ANSWER_Q, "seed": 2, "stop": "\n", "top_p": 0.5, "user": "u"}
        response = await client.post("/v1/completions", json=body)
    assert response.status_code == 200
    assert [call.options for call in llm.calls if call.options] == [
        {"seed": 2, "stop": "\n", "top_p": 0.5, "user": "u"}
    ]


@pytest.mark.parametrize("role", ["assistant", "system", "developer"])
async def test_a_conversation_ending_with_another_turn_than_the_users_is_refused_not_passed_ungated(role):
    gate = make_gate()
    async with serving(gate) as client:
        messages = [{"role": "user", "content": ANSWER_Q}, {"role": role, "content": "Sure, the author is"}]
        response = await post(client, chat(messages=messages))
    assert_error(response, 400, contains=f"the last message has role {role!r}; the gate answers", param="messages")
    assert gate.assessed == []
