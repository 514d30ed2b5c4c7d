"""The proxy over ASGI with a gate on the scripted LLM: content rewrites, options, auth, errors, limits, streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from estimators.base import Generation, Prompt
from estimators.testing import Rule, ScriptedLLM
from gate.config import Settings
from gate.errors import ConfigError, UnknownModelError, UpstreamError
from gate.pipeline import Budget, Gate
from gate.server.app import create_app
from gate.suite import SignalSpec

MODEL = "test/scripted"
SUITE = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 1, "guesses": 2}),
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
    SignalSpec("logprob_mean", "logprob", "free", {"aggregate": "mean"}),
)
ANSWER_Q, HEDGE_Q, ABSTAIN_Q = "Who wrote Hamlet?", "Who wrote Beowulf?", "What is the capital of Atlantis?"
RULES = [
    Rule("Hamlet", "William Shakespeare", logprob=-0.01),  # P = 0.99: answer
    Rule("Beowulf", "Unknown poet", logprob=-0.5),  # P = 0.61: hedge
    Rule("Atlantis", "Poseidonia", logprob=-2.0),  # P = 0.14: abstain
]


@dataclass(frozen=True)
class ReadsLogprobMin:
    """A stage model whose probability is the minimum token probability: decisions are exact. It declares
    the free signals and familiarity as read, so the gate computes them (a stage's unread signals are skipped)."""

    signals: tuple[str, ...] = ("familiarity", "logprob_mean", "logprob_min")
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        value = values.get("logprob_min")
        return 0.5 if value is None else value


@dataclass(frozen=True)
class FakeCalibration:
    precheck_threshold: float | None = None
    free: ReadsLogprobMin | None = None
    full: ReadsLogprobMin = ReadsLogprobMin()
    id: str = "test-artifact"


class CountingGate(Gate):
    """Records every ``assess`` call (the proxy must gate exactly once per request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assessed: list[dict[str, Any]] = []

    async def assess(self, prompt: Prompt, **kwargs: Any) -> Any:  # type: ignore[override]
        self.assessed.append(kwargs)
        return await super().assess(prompt, **kwargs)


ALL_MODES: dict[str, Any] = {"allowed_modes": ["off", "observe", "enforce"]}
"""Settings that let a client pick any mode (the default allows only ``enforce``)."""


def make_gate(llm: Any = None, calibration: Any = None) -> CountingGate:
    return CountingGate(llm or ScriptedLLM(rules=RULES), calibration or FakeCalibration(), suite=SUITE)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GATE_CONFIG", "GATE_MODE", "GATE_API_KEYS", "GATE_SIGNALS", "GATE_CASCADE"):
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def serving(gate: Gate | None = None, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(model=MODEL, **settings), gate=gate or make_gate())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def chat(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], **extra}


async def ask(client: httpx.AsyncClient, question: str, **extra: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=chat(question, **extra))


def content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def assert_error(response: httpx.Response, status: int, *, contains: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert contains in error["message"], error["message"]
    assert error["param"] == param
    assert "Traceback" not in response.text


# --- decisions and their effect on the content ----------------------------------------------------------


async def test_answer_keeps_the_content_and_reports_the_gate():
    async with serving(include_original=True) as client:
        response = await ask(client, ANSWER_Q)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "William Shakespeare", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    gate = body["gate"]
    assert gate["decision"] == "answer" and gate["mode"] == "enforce" and gate["original"] == "William Shakespeare"
    assert gate["probability"] == pytest.approx(0.990, abs=1e-3)
    assert gate["calibration"] == "test-artifact" and set(gate["signals"]) == {
        "familiarity",
        "logprob_min",
        "logprob_mean",
    }
    assert {"stage", "errors", "skipped", "reasons", "thresholds", "cost", "gate_cost"} <= set(gate)
    assert response.headers["x-gate-decision"] == "answer"
    assert response.headers["x-gate-confidence"] == "0.9900"
    assert response.headers["x-gate-mode"] == "enforce"


async def test_hedge_adds_the_uncertainty_statement_after_or_before_the_answer():
    async with serving(include_original=True) as client:
        suffixed = await ask(client, HEDGE_Q)
    async with serving(hedge_message="(unsure)", hedge_position="prefix") as client:
        prefixed = await ask(client, HEDGE_Q)
    assert content(suffixed) == "Unknown poet\n\nNote: I am not confident in this answer."
    assert content(prefixed) == "(unsure)\n\nUnknown poet"
    assert suffixed.headers["x-gate-decision"] == "hedge"
    assert suffixed.json()["gate"]["original"] == "Unknown poet"


async def test_abstain_replaces_the_content_with_the_first_reason_and_keeps_the_original():
    async with serving(include_original=True) as client:
        response = await ask(client, ABSTAIN_Q)
    gate = response.json()["gate"]
    assert gate["decision"] == "abstain" and gate["original"] == "Poseidonia"
    expected = f"I can't answer this reliably, so I won't guess. Reason: {gate['reasons'][0]}."
    assert content(response) == expected and "least familiar: 'Atlantis'" in expected  # the specific reason
    assert response.json()["choices"][0]["finish_reason"] == "stop"


async def test_the_original_answer_can_be_left_out_and_the_abstain_message_configured():
    async with serving(include_original=False, abstain_message="No. ({reasons})") as client:
        response = await ask(client, ABSTAIN_Q)
    assert "original" not in response.json()["gate"]
    assert content(response).startswith("No. (low familiarity") and "; probability correct 0.14" in content(response)


async def test_a_precheck_abstention_names_the_unfamiliar_concept_and_has_no_original():
    llm = ScriptedLLM(rules=[Rule("Hamlet", "no idea")], default="something else")
    gate = make_gate(llm, FakeCalibration(precheck_threshold=0.5))
    async with serving(gate, include_original=True) as client:
        response = await ask(client, ANSWER_Q)
    body = response.json()
    assert body["gate"]["stage"] == "precheck" and body["gate"]["original"] is None
    assert "unfamiliar concept: 'Hamlet'" in content(response)
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert response.headers["x-gate-decision"] == "abstain" and "x-gate-confidence" not in response.headers


# --- modes and options ------------------------------------------------------------------------------------


async def test_observe_scores_but_never_changes_the_content_and_never_abstains_before_answering():
    llm = ScriptedLLM(rules=RULES)
    gate = make_gate(llm, FakeCalibration(precheck_threshold=0.99))  # the precheck would abstain on anything
    async with serving(gate, **ALL_MODES) as client:
        response = await ask(client, ABSTAIN_Q, gate={"mode": "observe"})
    assert content(response) == "Poseidonia"
    assert response.json()["gate"]["decision"] == "abstain" and response.json()["gate"]["mode"] == "observe"
    assert gate.assessed[0]["precheck"] is False


async def test_the_server_default_mode_applies_when_the_request_names_none():
    async with serving(mode="observe") as client:  # the server's own mode needs no allowed_modes entry
        response = await ask(client, HEDGE_Q)
        asked = await ask(client, HEDGE_Q, gate={"mode": "observe"})
        enforced = await ask(client, HEDGE_Q, gate={"mode": "enforce"})
        off = await ask(client, HEDGE_Q, gate={"mode": "off"})
    assert content(response) == "Unknown poet" and response.headers["x-gate-mode"] == "observe"
    assert content(asked) == "Unknown poet" and enforced.headers["x-gate-decision"] == "hedge"
    assert_error(off, 403, contains="allowed_modes setting permits ['enforce', 'observe']", param="gate.mode")


async def test_off_passes_through_without_signals_and_may_return_several_choices():
    llm = ScriptedLLM(rules=[Rule("Hamlet", ["Shakespeare", "W. Shakespeare"])])
    gate = make_gate(llm)
    async with serving(gate, **ALL_MODES) as client:
        response = await ask(client, ANSWER_Q, gate={"mode": "off"}, n=2)
    body = response.json()
    assert [c["message"]["content"] for c in body["choices"]] == ["Shakespeare", "W. Shakespeare"]
    assert body["gate"] == {"mode": "off"} and response.headers["x-gate-mode"] == "off"
    assert gate.assessed == [] and len(llm.calls) == 1  # one generation call, no signal work


async def test_a_request_narrows_the_signals_and_lowers_the_budget():
    gate = make_gate()
    async with serving(gate, max_gate_calls=5, max_gate_seconds=10) as client:
        options = {"estimators": ["logprob_mean"], "budget": {"max_calls": 2}}
        response = await ask(client, ANSWER_Q, gate=options)
    assert set(response.json()["gate"]["signals"]) == {"logprob_mean"}
    assert gate.assessed[0]["signals"] == ("logprob_mean",)
    assert gate.assessed[0]["budget"] == Budget(max_calls=2, max_seconds=10)


@pytest.mark.parametrize(
    ("options", "settings", "message", "param"),
    [
        ({"estimators": ["consistency"]}, {}, "unknown or not served ['consistency']", "gate.estimators"),
        ({"estimators": []}, {}, "at least 1 item", "gate.estimators"),
        (
            {"budget": {"max_calls": 9}},
            {"max_gate_calls": 4},
            "9 is above the server's limit of 4",
            "gate.budget.max_calls",
        ),
        ({"budget": {"max_seconds": -1}}, {}, "greater than 0", "gate.budget.max_seconds"),
        ({"cascade": False}, {}, "may turn the cost cascade on, not off", "gate.cascade"),
        ({"mode": "loud"}, {}, "'off', 'observe' or 'enforce'", "gate.mode"),
        ({"max_risk": 0.2}, {}, "max_risk is not supported", "gate.max_risk"),
        ({"skip": True}, {}, "unsupported parameter 'gate.skip'; valid gate options", "gate.skip"),
        ("enforce", {}, "valid dictionary", "gate"),
    ],
)
async def test_options_beyond_the_server_bounds_are_refused(options, settings, message, param):
    gate = make_gate()
    async with serving(gate, **settings) as client:
        response = await ask(client, ANSWER_Q, gate=options)
    assert_error(response, 400, contains=message, param=param)
    assert gate.assessed == []


# --- auth -------------------------------------------------------------------------------------------------


async def test_api_keys_are_required_when_configured_and_never_echoed():
    async with serving(api_keys=["k-one", "k-two"]) as client:
        missing = await ask(client, ANSWER_Q)
        wrong = await client.post("/v1/chat/completions", json=chat(ANSWER_Q), headers={"authorization": "Bearer k-on"})
        right = await client.post(
            "/v1/chat/completions", json=chat(ANSWER_Q), headers={"authorization": "Bearer k-two"}
        )
        models = await client.get("/v1/models")
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert_error(missing, 401, contains="missing API key")
    assert_error(wrong, 401, contains="invalid API key")
    assert "k-on" not in wrong.text and "k-one" not in wrong.text
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200 and models.status_code == 401
    assert health.status_code == 200 and ready.status_code == 200


def test_an_empty_api_key_is_a_configuration_error():
    with pytest.raises(ConfigError, match="empty key"):
        create_app(Settings(model=MODEL, api_keys=[" "]), gate=make_gate())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"abstain_message": "Sorry: {why}"}, "valid placeholders"),
        ({"abstain_message": "Sorry {"}, "not a valid template"),
    ],
)
def test_bad_proxy_settings_are_refused_at_start(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_app(Settings(model=MODEL, **settings), gate=make_gate())


# --- bad input --------------------------------------------------------------------------------------------

USER = [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ('{"model": "test/scripted", "messages": [', "not valid JSON", None),
        ("[1, 2]", "must be a JSON object of completion parameters; got a JSON list", None),
        ({"model": MODEL}, "messages: Field required", "messages"),
        ({"messages": USER}, "model: Field required", "model"),
        ({"model": MODEL, "messages": []}, "at least 1 item", "messages"),
        (
            {"model": MODEL, "messages": [{"role": "robot", "content": "q"}]},
            "'system', 'developer', 'user', 'assistant' or 'tool'",
            "messages[0].role",
        ),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "a user message needs content", "messages[0]"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": 5}]},
            "content must be a string, a list of content parts or null; got 5",
            "messages[0].content",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "content part 0 (image_url): image_url: Field required",
            "messages[0].content",
        ),
        (
            {"model": MODEL, "messages": [{"role": "system", "content": "s"}]},
            "the conversation holds no user message",
            "messages",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "  "}]},
            "last message must be a non-empty user",
            "messages",
        ),
        (
            {"model": MODEL, "messages": USER, "temperature": "hot"},
            'valid number; got "hot"',
            "temperature",
        ),
        ({"model": MODEL, "messages": USER, "temperature": 2.5}, "less than or equal to 2", "temperature"),
        ({"model": MODEL, "messages": USER, "max_tokens": 0}, "greater than or equal to 1", "max_tokens"),
        ({"model": MODEL, "messages": USER, "max_tokens": 5000}, "above this server's limit of 1024", "max_tokens"),
        ({"model": MODEL, "messages": USER, "n": 2}, "n must be 1 while the gate is on", "n"),
        ({"model": MODEL, "messages": USER, "n": 0}, "greater than or equal to 1", "n"),
        (
            {"model": "gpt-4o", "messages": USER},
            "model 'gpt-4o' is not served here; this gate serves 'test/scripted'",
            "model",
        ),
        ({"model": MODEL, "messages": USER, "top_k": 5}, "unsupported parameter 'top_k'", "top_k"),
        ({"model": MODEL, "messages": USER, "top_p": "0.5"}, "valid number", "top_p"),
        ({"model": MODEL, "messages": USER, "tools": []}, "at least 1 item", "tools"),
        ({"model": MODEL, "messages": USER, "stream": "yes please"}, "valid boolean", "stream"),
        # no loose coercion (issue 17, item 8): strings are not booleans or numbers
        ({"model": MODEL, "messages": USER, "stream": "yes"}, "valid boolean", "stream"),
        ({"model": MODEL, "messages": USER, "stream": "true"}, "valid boolean", "stream"),
        ({"model": MODEL, "messages": USER, "max_tokens": "10"}, "valid integer", "max_tokens"),
        ({"model": MODEL, "messages": USER, "n": "1"}, "valid integer", "n"),
    ],
)
async def test_bad_chat_requests_are_400_naming_the_field(body, message, param):
    gate = make_gate()
    async with serving(gate) as client:
        if isinstance(body, str):
            response = await client.post(
                "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = await client.post("/v1/chat/completions", json=body)
    assert_error(response, 400, contains=message, param=param)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert gate.assessed == []


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"model": MODEL}, "prompt: Field required", "prompt"),
        ({"model": MODEL, "prompt": ["a", "b"]}, "valid string", "prompt"),
        ({"model": MODEL, "prompt": " "}, "the prompt is blank", "prompt"),
        ({"model": MODEL, "prompt": "q", "echo": True}, "echo is not supported", "echo"),
    ],
)
async def test_bad_text_completion_requests_are_400(body, message, param):
    async with serving() as client:
        response = await client.post("/v1/completions", json=body)
    assert_error(response, 400, contains=message, param=param)


async def test_a_body_that_is_not_declared_json_gets_a_hint():
    async with serving() as client:
        response = await client.post("/v1/chat/completions", content=json.dumps(chat(ANSWER_Q)))
    assert_error(response, 400, contains="send the header 'Content-Type: application/json'")


async def test_an_oversized_body_is_413_whether_declared_or_streamed():
    big = json.dumps(chat("x" * 4000))

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit applies as the body arrives
        for start in range(0, len(big), 500):
            yield big[start : start + 500].encode()

    async with serving(max_body_bytes=2048) as client:
        declared = await client.post("/v1/chat/completions", content=big, headers={"content-type": "application/json"})
        streamed = await client.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        small = await ask(client, ANSWER_Q)
    for response in (declared, streamed):
        assert_error(response, 413, contains="larger than this server's limit of 2048 bytes")
        assert response.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200


class CountingTokensLLM(ScriptedLLM):
    """Knows its context size, like the embedded model."""

    n_ctx: int = 16

    async def count_tokens(self, prompt: Prompt) -> int:
        return sum(len(m["content"].split()) for m in prompt) if not isinstance(prompt, str) else len(prompt.split())


async def test_a_prompt_longer_than_the_context_is_400():
    gate = make_gate(CountingTokensLLM(rules=RULES))
    async with serving(gate) as client:
        too_long = await ask(client, "word " * 20, max_tokens=4)
        fits = await ask(client, ANSWER_Q, max_tokens=4)
    assert_error(too_long, 400, contains="the prompt is 20 tokens and max_tokens 4", param="messages")
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert fits.status_code == 200


async def test_unknown_routes_and_methods_use_the_error_shape():
    async with serving() as client:
        missing = await client.get("/v2/nothing")
        wrong_method = await client.get("/v1/chat/completions")
    assert_error(missing, 404, contains="Not Found")
    assert_error(wrong_method, 405, contains="Method Not Allowed")


# --- upstream faults, timeouts, load ------------------------------------------------------------------------


class FailingLLM(ScriptedLLM):
    """Every call fails as the configured upstream error."""

    error: UpstreamError | None = None

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        assert self.error is not None
        raise self.error


def failing(error: UpstreamError) -> CountingGate:
    llm = FailingLLM()
    llm.error = error
    return make_gate(llm)


@pytest.mark.parametrize(
    ("error", "status", "message", "code"),
    [
        (UpstreamError("cannot reach openai/x: refused", status=502), 502, "cannot reach openai/x", "upstream_error"),
        (UpstreamError("openai/x answered 500: boom", status=None), 502, "answered 500: boom", "upstream_error"),
        (UpstreamError("openai/x timed out", status=504), 504, "timed out", "upstream_timeout"),
        (UpstreamError("openai/x answered 429: slow down", status=429), 429, "slow down", "upstream_rate_limited"),
        (
            UpstreamError("answered 401: bad key sk-secret", status=401),
            502,
            "refused the gate's credentials",
            "upstream_error",
        ),
    ],
)
async def test_upstream_failures_of_the_answer_map_to_gateway_statuses(error, status, message, code):
    async with serving(failing(error)) as client:
        response = await ask(client, ANSWER_Q)
    assert_error(response, status, contains=message)
    assert response.json()["error"]["code"] == code
    assert "sk-secret" not in response.text
    assert (response.headers.get("retry-after") == "1") == (status == 429)


async def test_the_upstream_key_is_never_echoed_in_an_error():
    error = UpstreamError("openai/x answered 500: your key sk-upstream-123 is odd", status=None)
    async with serving(failing(error), api_key="sk-upstream-123") as client:
        response = await ask(client, ANSWER_Q)
    assert_error(response, 502, contains="your key *** is odd")


async def test_an_unknown_model_error_echoing_the_key_is_scrubbed_too():
    error = UnknownModelError("openai/x is not served: Incorrect API key provided: sk-upstream-123")
    async with serving(failing(error), api_key="sk-upstream-123") as client:
        response = await ask(client, ANSWER_Q)
    assert_error(response, 502, contains="misconfigured")
    assert "sk-upstream-123" not in response.text


class BlockingLLM(ScriptedLLM):
    """Answers only once ``release`` is set (a hanging upstream when it never is)."""

    release: asyncio.Event | None = None

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        assert self.release is not None
        await self.release.wait()
        return await super().generate(prompt, **kwargs)


def blocking() -> tuple[CountingGate, asyncio.Event]:
    llm = BlockingLLM(rules=RULES)
    llm.release = asyncio.Event()
    return make_gate(llm), llm.release


async def test_a_hanging_upstream_is_cut_by_the_request_timeout():
    gate, _ = blocking()
    async with serving(gate, request_timeout_s=0.2, **ALL_MODES) as client:
        response = await ask(client, ANSWER_Q, gate={"mode": "off"})
    assert_error(response, 504, contains="longer than this server's limit of 0.2 s")


async def test_requests_over_the_concurrency_limit_get_429_at_once():
    gate, release = blocking()
    async with serving(gate, max_concurrency=1, retry_after_s=3, **ALL_MODES) as client:
        first = asyncio.create_task(ask(client, ANSWER_Q, gate={"mode": "off"}))
        while client.app.state.server.slots.in_use == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        second = await asyncio.wait_for(ask(client, ANSWER_Q), timeout=2)
        health = await client.get("/healthz")
        release.set()
        first_response = await first
        third = await ask(client, ANSWER_Q)
    assert_error(second, 429, contains="more than 1 requests in flight")
    assert second.headers["retry-after"] == "3"
    assert health.status_code == 200
    assert first_response.status_code == 200 and third.status_code == 200


# --- streaming ----------------------------------------------------------------------------------------------


def sse_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


async def test_streaming_sends_the_final_content_as_chunks_with_the_gate_last_and_gates_once():
    gate = make_gate()
    async with serving(gate) as client:
        streamed = await ask(client, HEDGE_Q, stream=True)
        whole = await ask(client, HEDGE_Q)
    chunks = sse_chunks(streamed)
    assert len(gate.assessed) == 2  # one assessment per request, streamed or not
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == content(whole) == "Unknown poet\n\nNote: I am not confident in this answer."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["gate"]["decision"] == "hedge"
    assert all("gate" not in c for c in chunks[:-1])
    assert streamed.headers["x-gate-decision"] == "hedge"


async def test_streaming_with_usage_and_text_completions():
    gate = make_gate()
    async with serving(gate, include_original=True) as client:
        with_usage = await ask(client, ANSWER_Q, stream=True, stream_options={"include_usage": True})
        text = await client.post("/v1/completions", json={"model": MODEL, "prompt": ABSTAIN_Q, "stream": True})
    last = sse_chunks(with_usage)[-1]
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 6 and last["gate"]["decision"] == "answer"
    chunks = sse_chunks(text)
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks).startswith("I can't answer this reliably")
    assert chunks[-1]["gate"]["original"] == "Poseidonia"
    assert len(gate.assessed) == 2


async def test_text_completions_are_gated_like_chat():
    async with serving() as client:
        response = await client.post("/v1/completions", json={"model": MODEL, "prompt": HEDGE_Q, "max_tokens": 8})
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == "Unknown poet\n\nNote: I am not confident in this answer."
    assert body["gate"]["decision"] == "hedge"


# --- models, health, readiness --------------------------------------------------------------------------------


async def test_models_lists_the_served_model():
    async with serving() as client:
        response = await client.get("/v1/models")
    [model] = response.json()["data"]
    assert model["id"] == MODEL and model["object"] == "model" and isinstance(model["created"], int)


class SlowLoadingLLM(ScriptedLLM):
    """Loads its weights until ``loaded`` is set, or fails to."""

    loaded: asyncio.Event | None = None
    fail: bool = False

    async def load(self) -> None:
        assert self.loaded is not None
        await self.loaded.wait()
        if self.fail:
            raise OSError("weights are missing")


async def test_readyz_is_503_while_the_model_loads_and_requests_wait_for_it():
    llm = SlowLoadingLLM(rules=RULES)
    llm.loaded = asyncio.Event()
    async with serving(make_gate(llm)) as client:
        loading = await client.get("/readyz")
        early = await ask(client, ANSWER_Q)
        health = await client.get("/healthz")
        llm.loaded.set()
        await asyncio.sleep(0.05)
        ready = await client.get("/readyz")
        later = await ask(client, ANSWER_Q)
    assert loading.status_code == 503 and loading.json()["status"] == "loading"
    assert_error(early, 503, contains="still loading")
    assert health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ready", "model": MODEL, "calibration": "test-artifact"}
    assert later.status_code == 200


async def test_a_model_that_fails_to_load_keeps_the_server_unready_and_says_why():
    llm = SlowLoadingLLM(rules=RULES)
    llm.loaded, llm.fail = asyncio.Event(), True
    llm.loaded.set()
    async with serving(make_gate(llm)) as client:
        await asyncio.sleep(0.05)
        ready = await client.get("/readyz")
        response = await ask(client, ANSWER_Q)
    assert ready.status_code == 503 and ready.json()["status"] == "failed"
    assert "weights are missing" in ready.json()["error"]
    assert_error(response, 503, contains="the model failed to load: weights are missing")


class BrokenLLM(ScriptedLLM):
    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_is_a_500_in_the_error_shape_without_a_traceback():
    async with serving(make_gate(BrokenLLM()), **ALL_MODES) as client:
        response = await ask(client, ANSWER_Q, gate={"mode": "off"})
    assert_error(response, 500, contains="internal error in the gate")
    assert "a bug" not in response.text
