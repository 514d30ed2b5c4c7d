"""The real ``openai`` client, sync and async, streamed and not, against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from estimators.base import Generation, Prompt
from estimators.testing import ScriptedLLM
from gate.config import Settings, load_settings
from gate.server.app import create_app
from tests.test_server import ABSTAIN_Q, ANSWER_Q, HEDGE_Q, MODEL, RULES, make_gate

KEY = "sk-gate-test"


@contextmanager
def running(app: Any, *, ready_within_s: float = 5.0, **options: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its /v1 base URL and the server.

    ``options`` go to ``uvicorn.Config`` (``gate serve`` passes ``gate.server.app.uvicorn_options``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_within_s
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def wait_until_ready(url: str, *, within_s: float = 120) -> None:
    """Poll /readyz until the embedded model has loaded (its process started and decoded once)."""
    readyz = url.removesuffix("/v1") + "/readyz"
    deadline = time.monotonic() + within_s
    while httpx.get(readyz).status_code != 200:
        assert time.monotonic() < deadline, httpx.get(readyz).text
        time.sleep(0.2)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    # a privileged key: any mode and gate.original (ordinary keys: tests/test_server_security.py)
    app = create_app(Settings(model=MODEL, privileged_api_keys=[KEY]), gate=make_gate(ScriptedLLM(rules=RULES)))
    with running(app) as (url, _):
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_sync_chat_completion_carries_the_gate_object_and_headers(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ask(HEDGE_Q))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Unknown poet\n\nNote: I am not confident in this answer."
    assert completion.usage is not None and completion.usage.total_tokens == 6
    gate = completion.model_extra["gate"]
    assert gate["decision"] == "hedge" and gate["original"] == "Unknown poet" and gate["mode"] == "enforce"
    assert raw.headers["x-gate-decision"] == "hedge" and raw.headers["x-gate-confidence"] == "0.6065"


def test_sync_streaming_delivers_the_content_and_the_gate_in_the_last_chunk(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=ask(ABSTAIN_Q), stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.startswith("I can't answer this reliably, so I won't guess. Reason: low familiarity")
    assert chunks[-1].model_extra["gate"]["decision"] == "abstain"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sync_text_completion_and_per_request_options(client):
    completion = client.completions.create(
        model=MODEL, prompt=ABSTAIN_Q, max_tokens=8, extra_body={"gate": {"mode": "observe"}}
    )
    assert completion.choices[0].text == "Poseidonia"
    assert (
        completion.model_extra["gate"]["decision"] == "abstain" and completion.model_extra["gate"]["mode"] == "observe"
    )


async def test_async_client_streamed_and_not(base_url):
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=ask(ANSWER_Q))
        stream = await client.chat.completions.create(
            model=MODEL, messages=ask(ANSWER_Q), stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert completion.choices[0].message.content == "William Shakespeare"
    assert completion.model_extra["gate"]["decision"] == "answer"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "William Shakespeare"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6
    assert chunks[-1].model_extra["gate"]["probability"] > 0.9


def test_models_and_errors_reach_the_client_as_openai_exceptions(client, base_url):
    assert [model.id for model in client.models.list()] == [MODEL]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages=ask(ANSWER_Q))
    assert "is not served here" in bad.value.message and bad.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    health = httpx.get(base_url.removesuffix("/v1") + "/healthz")
    assert health.json() == {"status": "ok"}


class WaitingLLM(ScriptedLLM):
    """Answers once ``release`` (set from another thread) is set."""

    release: threading.Event | None = None

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        assert self.release is not None
        await asyncio.to_thread(self.release.wait, 5)
        return await super().generate(prompt, **kwargs)


def test_shutdown_lets_in_flight_requests_finish():
    llm = WaitingLLM(rules=RULES)
    llm.release = threading.Event()
    app = create_app(Settings(model=MODEL), gate=make_gate(llm))
    with running(app) as (url, server), ThreadPoolExecutor(1) as pool:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        pending = pool.submit(client.chat.completions.create, model=MODEL, messages=ask(ANSWER_Q))
        while app.state.server.slots.in_use == 0:
            time.sleep(0.01)
        server.should_exit = True  # what SIGINT/SIGTERM do
        time.sleep(0.2)
        llm.release.set()
        assert pending.result(timeout=5).choices[0].message.content == "William Shakespeare"


@pytest.mark.integration
def test_the_embedded_model_answers_through_the_openai_client():
    # the default: the embedded Gemma, the shipped artifact when there is one; the answer shown in gate.original
    settings = load_settings(include_original=True)
    with running(create_app(settings), ready_within_s=120) as (url, _):
        wait_until_ready(url)
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        completion = client.chat.completions.create(
            model=settings.model,
            messages=ask("What is the capital of France?"),
            max_tokens=16,
            # the free signals only, so the test stays quick (a request may narrow the signals)
            extra_body={"gate": {"estimators": ["logprob_mean", "logprob_min"]}},
        )
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        with pytest.raises(openai.BadRequestError) as refused:  # a base model with no tool-calling format
            client.chat.completions.create(model=settings.model, messages=ask("Weather in Paris?"), tools=tools)
    assert refused.value.code == "unsupported_by_model" and "cannot call tools" in refused.value.message
    gate = completion.model_extra["gate"]
    assert "Paris" in gate["original"]
    # the shipped artifact does not read logprob_mean (it added nothing when fitted): it is not computed
    assert gate["decision"] in {"answer", "hedge", "abstain"} and set(gate["signals"]) == {"logprob_min"}
    assert completion.choices[0].message.content


@pytest.mark.integration
def test_a_crash_of_the_embedded_model_is_a_502_for_its_request_and_the_next_one_is_answered():
    settings = load_settings(include_original=True)
    app = create_app(settings)
    with running(app, ready_within_s=120) as (url, _):
        wait_until_ready(url)
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        free_signals = {"gate": {"estimators": ["logprob_mean", "logprob_min"]}}

        def complete() -> Any:
            return client.chat.completions.create(
                model=settings.model, messages=ask("Who wrote Hamlet?"), max_tokens=16, extra_body=free_signals
            )

        pid = app.state.server.gate.llm.process().ready["pid"]
        os.kill(pid, signal.SIGSTOP)  # frozen, so the request is in flight when the process dies
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(complete)
            time.sleep(0.5)
            os.kill(pid, signal.SIGSEGV)
            os.kill(pid, signal.SIGCONT)
            with pytest.raises(openai.APIStatusError) as failed:
                pending.result(timeout=30)
        assert failed.value.status_code == 502
        assert "the embedded model crashed while running" in failed.value.message
        assert "(signal SIGSEGV)" in failed.value.message
        assert complete().model_extra["gate"]["original"]  # a fresh process answers the next request
