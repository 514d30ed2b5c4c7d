"""A real agent loop with tools, and a multi-turn chat, through ``gate serve`` and through the LiteLLM guardrail.

Real parts only: the ``openai`` client (its stream accumulation included), uvicorn on a free loopback port
with the gate built from settings as ``gate serve`` builds it, both upstream transports (the direct HTTP
client and litellm), the LiteLLM proxy's own CLI, and an OpenAI-compatible upstream on loopback scripted as
a weather assistant: offered the tool, it calls it; given the tool's result, it answers from it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gate.config import Settings
from gate.server.app import create_app
from tests.stub_upstream import StubState, stub_upstream
from tests.test_litellm_guardrail import MASTER_KEY, PROXY_MODULES, _free_port, _wait_until_alive
from tests.test_server_client import running

MODEL = "openai/stub"
KEY = "sk-gate-agent"
SYSTEM = "You are a weather assistant. Use the tools."
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TEMPERATURES = {"Paris": 18, "Rome": 24}
CHAT = [
    {"role": "system", "content": "Answer in a few words."},
    {"role": "user", "content": "Who wrote Hamlet?"},
    {"role": "assistant", "content": "William Shakespeare."},
    {"role": "user", "content": "And in which year was he born?"},
]
GATE_SETTINGS = {"signals": ["logprob_min", "consistency"], "max_tokens": 128, "include_original": True}
"""The gate's own work in these tests: the answer's token probability and samples from the same upstream."""


def weather_model(request: dict[str, Any]) -> dict[str, Any]:
    """The scripted upstream: a tool call when tools are offered, an answer from tool results, else trivia."""
    messages = request["messages"]
    results = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.insert(0, json.loads(message["content"]))
    if results:
        return {"content": " ".join(f"It is {r['temperature_c']} degrees in {r['city']}." for r in results)}
    question = messages[-1]["content"]
    if request.get("tools"):
        cities = [city for city in TEMPERATURES if city in question]
        calls = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
            }
            for index, city in enumerate(cities)
        ]
        return {"content": None, "tool_calls": calls}
    return {"content": "1564" if "born" in question else "William Shakespeare"}


def get_weather(city: str) -> dict[str, Any]:
    """The tool, run by the agent (the client), never by the gate."""
    return {"city": city, "temperature_c": TEMPERATURES[city]}


def gate_view(item: Any) -> dict[str, Any] | None:
    extra = item.model_extra or {}
    return extra.get("gate")


def run_agent(client: openai.OpenAI, model: str, question: str, *, stream: bool) -> tuple[str, list[dict[str, Any]]]:
    """The agent loop: ask with the tool, run each call locally, send the results back, until a text answer."""
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    views: list[dict[str, Any]] = []
    for _ in range(4):
        if stream:
            message, finish, view = _streamed_turn(client, model, messages)
        else:
            completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
            message, finish, view = completion.choices[0].message, completion.choices[0].finish_reason, None
            view = gate_view(completion)
        assert view is not None
        views.append(view)
        if finish != "tool_calls":
            return message.content, views
        messages.append(message if not stream else _assistant_turn(message))
        for call in message.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    raise AssertionError(f"no final answer after 4 turns: {views}")


def _streamed_turn(client: openai.OpenAI, model: str, messages: list[Any]) -> tuple[Any, str, dict[str, Any] | None]:
    """One turn through the openai client's own stream accumulation; the gate's view rides on a chunk."""
    view = None
    with client.chat.completions.stream(model=model, messages=messages, tools=[WEATHER]) as stream:
        for event in stream:
            if event.type == "chunk" and gate_view(event.chunk) is not None:
                view = gate_view(event.chunk)
        completion = stream.get_final_completion()
    return completion.choices[0].message, completion.choices[0].finish_reason, view


def _assistant_turn(message: Any) -> dict[str, Any]:
    """The accumulated message as the next request's assistant turn (the helper's parsed fields left out)."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in message.tool_calls
    ]
    return {"role": "assistant", "content": message.content, "tool_calls": calls}


def check_agent_run(answer: str, views: list[dict[str, Any]], state: StubState, *, cities: list[str]) -> None:
    assert answer == " ".join(f"It is {TEMPERATURES[c]} degrees in {c}." for c in cities)
    assert views[0]["decision"] == "not_assessed" and views[0]["kind"] == "tool_call"
    assert views[0]["reasons"] == ["the model called tools; tool calls are not assessed"]
    # the final answer rests on the tool's result: passed on, or assessed where the pipeline reads tool results
    assert views[-1]["decision"] in {"not_assessed", "answer"}
    client_turns = [r for r in state.requests if r["messages"][0].get("content") == SYSTEM]
    assert client_turns and all(r.get("tools") for r in client_turns)  # the tools reached the model
    assert all("tools" not in r for r in state.requests if r not in client_turns)  # never the gate's own calls
    tool_turns = [m for m in client_turns[-1]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"])["city"] for m in tool_turns] == cities  # the results went upstream as sent


# --- gate serve ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, StubState]]:
    state = StubState(reply=weather_model)
    with stub_upstream(state) as url:
        yield url, state


@pytest.fixture(scope="module", params=["direct", "litellm"])
def served(request: pytest.FixtureRequest, upstream: tuple[str, StubState]) -> Iterator[tuple[str, StubState]]:
    """``gate serve`` over the scripted upstream, built from settings, through one transport or the other."""
    url, state = upstream
    settings = Settings(
        model=MODEL,
        api_base=url,
        api_key="sk-upstream",
        transport=request.param,
        privileged_api_keys=[KEY],
        **GATE_SETTINGS,
    )
    with running(create_app(settings), ready_within_s=30) as (base_url, _):
        yield base_url, state


@pytest.fixture
def client(served: tuple[str, StubState]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0], api_key=KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_agent_loop_with_a_tool_through_gate_serve(client, served, stream):
    state = served[1]
    state.requests.clear()
    answer, views = run_agent(client, MODEL, "What is the weather in Paris?", stream=stream)
    check_agent_run(answer, views, state, cities=["Paris"])


def test_parallel_tool_calls_through_gate_serve(client, served):
    state = served[1]
    state.requests.clear()
    answer, views = run_agent(client, MODEL, "Weather in Paris and in Rome?", stream=True)
    check_agent_run(answer, views, state, cities=["Paris", "Rome"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_multi_turn_chat_with_a_system_prompt_through_gate_serve(client, served, stream):
    state = served[1]
    state.requests.clear()
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, stream=True))
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        view = gate_view(chunks[-1])
    else:
        completion = client.chat.completions.create(model=MODEL, messages=CHAT)
        text, view = completion.choices[0].message.content, gate_view(completion)
    assert text == "1564" and view is not None
    assert view["decision"] == "answer" and set(view["signals"]) == {"logprob_min", "consistency"}
    # the conversation went upstream unchanged, for the answer and for the samples drawn in it
    in_conversation = [r for r in state.requests if r["messages"][0] == CHAT[0]]
    assert [r["messages"] for r in in_conversation] == [CHAT, CHAT]


# --- the LiteLLM proxy with the guardrail ---------------------------------------------------------------------

PROXY_CONFIG = """\
model_list:
{models}
guardrails:
{guardrails}
"""


def _proxy_config(url: str) -> str:
    models, guardrails = [], []
    for transport in ("direct", "litellm"):
        models.append(
            f"  - model_name: weather-{transport}\n"
            f"    litellm_params: {{model: {MODEL}, api_base: '{url}', api_key: sk-upstream, "
            f"guardrails: [gate-{transport}]}}"
        )
        gate_config = {"model": MODEL, "api_base": url, "api_key": "sk-upstream", "transport": transport}
        guardrails.append(
            f"  - guardrail_name: gate-{transport}\n"
            "    litellm_params:\n"
            "      guardrail: gate.litellm_guardrail.ConfidenceGuardrail\n"
            "      mode: [pre_call, post_call]\n"
            f"      gate_config: {json.dumps({**gate_config, **GATE_SETTINGS})}"
        )
    return PROXY_CONFIG.format(models="\n".join(models), guardrails="\n".join(guardrails))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: tuple[str, StubState]) -> Iterator[str]:
    """The LiteLLM proxy (its own CLI, one worker) with the guardrail, routing to the scripted upstream."""
    missing = [name for name in PROXY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the LiteLLM proxy's dependencies are missing ({missing}): pip install -e '.[dev]'")
    directory = tmp_path_factory.mktemp("litellm-agent")
    config = directory / "config.yaml"
    config.write_text(_proxy_config(upstream[0]))
    port = _free_port()
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    log = (directory / "proxy.log").open("w")
    command = [str(Path(sys.executable).parent / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", str(port)], cwd=directory, env=env, stdout=log, stderr=log)
    try:
        _wait_until_alive(f"http://127.0.0.1:{port}", process, directory / "proxy.log")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.integration
@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_an_agent_loop_and_a_multi_turn_chat_through_the_litellm_guardrail(proxy, upstream, transport):
    state = upstream[1]
    client = openai.OpenAI(base_url=proxy, api_key=MASTER_KEY, max_retries=0, timeout=60)
    model = f"weather-{transport}"
    for stream in (False, True):
        state.requests.clear()
        answer, views = run_agent(client, model, "What is the weather in Paris?", stream=stream)
        check_agent_run(answer, views, state, cities=["Paris"])

    completion = client.chat.completions.create(model=model, messages=CHAT)
    view = gate_view(completion)
    assert completion.choices[0].message.content == "1564"
    assert view is not None and view["decision"] == "answer" and view["original"] == "1564"
    chunks = list(client.chat.completions.create(model=model, messages=CHAT, stream=True))
    views = [gate_view(chunk) for chunk in chunks if gate_view(chunk) is not None]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices).strip() == "1564"
    assert len(views) == 1 and views[0]["decision"] == "answer"
