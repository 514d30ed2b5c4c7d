"""Faults through the whole proxy (litellm client -> a misbehaving upstream on loopback), and fuzzed requests.

The fault tests build the gate from settings as ``gate serve`` does (``openai/stub`` at a loopback URL),
narrowed to cheap signals, and check what a client sees: the status, OpenAI's error shape, a message that
says what failed, no traceback and never the upstream API key. The fuzz tests throw arbitrary JSON at the
request validation of an app over the scripted LLM: every answer is a 200 or an error in OpenAI's shape.
"""

from __future__ import annotations

import json
import socket
import string
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gate.backends.litellm_client import check_model_name, import_litellm, provider_supports_n
from gate.config import Settings
from gate.server.app import create_app
from tests.stub_upstream import StubState, _chat_body, _text_body
from tests.test_server import ALL_MODES, ANSWER_Q, MODEL, make_gate

SECRET = "sk-fault-test-SECRET-0123456789"
UPSTREAM_MODEL = "openai/stub"
QUESTION = "Who wrote Hamlet?"
ENV = ("GATE_CONFIG", "GATE_MODE", "GATE_API_KEYS", "GATE_SIGNALS", "GATE_CASCADE", "GATE_MODEL", "GATE_API_BASE")
ENV += ("GATE_API_KEY", "GATE_MAX_RETRIES", "GATE_TIMEOUT_S", "GATE_REQUEST_TIMEOUT_S")


@pytest.fixture(scope="module", autouse=True)
def litellm_imported() -> None:
    """Import litellm before any clock starts (the import alone takes seconds on a busy machine)."""
    import_litellm()
    check_model_name(UPSTREAM_MODEL)
    provider_supports_n(UPSTREAM_MODEL)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["litellm", "direct"])
def transport(request, monkeypatch) -> str:
    """Every fault test runs over both upstream transports (``proxy`` reads GATE_TRANSPORT)."""
    monkeypatch.setenv("GATE_TRANSPORT", request.param)
    return str(request.param)


# --- a loopback upstream that misbehaves on request --------------------------------------------------------

Behaviour = Callable[[dict[str, Any]], tuple[int, bytes, str] | None]
"""Request body -> (status, raw body, content type) to send, or None to hang until the test ends."""


@dataclass
class FaultyUpstream:
    behaviour: Behaviour
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def ok(request: dict[str, Any]) -> tuple[int, bytes, str]:
    return 200, json.dumps(_chat_body(StubState(text="William Shakespeare"), request)).encode(), "application/json"


def status(code: int, *, echo_key: bool = False) -> Behaviour:
    def answer(request: dict[str, Any]) -> tuple[int, bytes, str]:
        message = "stub failure" + (f" (Incorrect API key provided: {SECRET})" if echo_key else "")
        body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return code, json.dumps(body).encode(), "application/json"

    return answer


def _handler(upstream: FaultyUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                request = {}
            request["_authorization"] = self.headers.get("authorization")
            upstream.requests.append(request)
            answer = upstream.behaviour(request)
            if answer is None:  # hang: never answer (until the test releases it)
                upstream.release.wait(30)
                self.close_connection = True
                return
            code, payload, content_type = answer
            try:
                self.send_response(code)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up first
                self.close_connection = True

    return Handler


@contextmanager
def faulty_upstream(behaviour: Behaviour) -> Iterator[tuple[str, FaultyUpstream]]:
    upstream = FaultyUpstream(behaviour)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", upstream
    finally:
        upstream.release.set()
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def proxy(api_base: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The proxy as ``gate serve`` builds it (the lifespan creates the gate) over the upstream at ``api_base``."""
    options: dict[str, Any] = {
        "model": UPSTREAM_MODEL,
        "api_base": api_base,
        "api_key": SECRET,
        "max_retries": 0,
        "timeout_s": 5.0,
        "request_timeout_s": 10.0,
        "signals": ["logprob_min"],  # one cheap signal: one upstream call per attempt
        **overrides,
    }
    app = create_app(Settings(**options))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate", timeout=60) as client:
            yield client


async def ask(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    body = {"model": UPSTREAM_MODEL, "messages": [{"role": "user", "content": QUESTION}], **extra}
    return await client.post("/v1/chat/completions", json=body)


def assert_upstream_error(response: httpx.Response, status_code: int, *, contains: str, code: str) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error" and error["code"] == code and error["param"] is None
    assert contains in error["message"], error["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert SECRET not in response.text and SECRET not in str(response.headers)
    assert "gate" not in response.json()
    return error  # type: ignore[no-any-return]


# --- upstream faults ----------------------------------------------------------------------------------------


async def test_the_stub_upstream_serves_a_gated_answer_through_the_proxy(transport):
    """The control: the same wiring with a healthy upstream answers 200, and the key reaches only the upstream."""
    with faulty_upstream(ok) as (url, upstream):
        async with proxy(url) as client:
            response = await ask(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "William Shakespeare"
    assert set(body["gate"]["signals"]) == {"logprob_min"} and body["gate"]["errors"] == {}
    assert upstream.requests[0]["_authorization"] == f"Bearer {SECRET}"
    assert SECRET not in response.text


async def test_refused_connection_is_a_502_naming_the_unreachable_upstream(transport):
    async with proxy(f"http://127.0.0.1:{closed_port()}/v1") as client:
        started = time.perf_counter()
        response = await ask(client)
        elapsed = time.perf_counter() - started
    assert_upstream_error(response, 502, contains=f"cannot reach {UPSTREAM_MODEL}", code="upstream_error")
    assert elapsed < 5.0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_an_unreachable_upstream_is_named_without_its_address(transport, host):
    """Client-facing messages say "the upstream", never its host, IP or port (the server log keeps them)."""
    port = closed_port()
    async with proxy(f"http://{host}:{port}/v1") as client:
        response = await ask(client)
    error = assert_upstream_error(response, 502, contains=f"cannot reach {UPSTREAM_MODEL}", code="upstream_error")
    for address in (host, "127.0.0.1", "::1", str(port)):
        assert address not in error["message"], error["message"]


async def test_hanging_upstream_is_a_504_within_the_upstream_timeout(transport):
    with faulty_upstream(lambda request: None) as (url, upstream):
        async with proxy(url, timeout_s=1.0) as client:
            started = time.perf_counter()
            response = await ask(client)
            elapsed = time.perf_counter() - started
    assert_upstream_error(response, 504, contains="timed out", code="upstream_timeout")
    assert 0.9 <= elapsed < 4.0, elapsed
    assert len(upstream.requests) == 1  # max_retries=0: no second attempt


async def test_hanging_upstream_is_cut_by_the_request_timeout(transport):
    """With a long upstream timeout, the proxy's own per-request limit still answers in time."""
    with faulty_upstream(lambda request: None) as (url, _):
        async with proxy(url, timeout_s=60.0, max_retries=3, request_timeout_s=1.0) as client:
            started = time.perf_counter()
            response = await ask(client)
            elapsed = time.perf_counter() - started
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "timeout"
    assert "longer than this server's limit of 1 s" in error["message"]
    assert "Traceback" not in response.text and SECRET not in response.text
    assert 0.9 <= elapsed < 4.0, elapsed


@pytest.mark.parametrize(
    ("behaviour", "contains"),
    [
        pytest.param(lambda r: (200, b"<html>bad gateway</html>", "text/html"), "the upstream model failed", id="html"),
        pytest.param(lambda r: (200, b"{not json", "application/json"), "the upstream model failed", id="broken-json"),
        pytest.param(
            lambda r: (200, json.dumps({"id": "x", "object": "chat.completion"}).encode(), "application/json"),
            "the upstream model failed",
            id="no-choices",
        ),
        pytest.param(
            lambda r: (200, json.dumps({"choices": []}).encode(), "application/json"),
            "the upstream model failed",
            id="empty-choices",
        ),
    ],
)
async def test_garbage_from_the_upstream_is_a_502(transport, behaviour, contains):
    with faulty_upstream(behaviour) as (url, _):
        async with proxy(url) as client:
            response = await ask(client)
    assert_upstream_error(response, 502, contains=contains, code="upstream_error")


def malformed(change: Callable[[dict[str, Any]], None]) -> Behaviour:
    """A 200 whose otherwise valid completion ``change`` has broken."""

    def answer(request: dict[str, Any]) -> tuple[int, bytes, str]:
        body = _chat_body(StubState(text="William Shakespeare"), request)
        change(body)
        return 200, json.dumps(body).encode(), "application/json"

    return answer


def first_choice(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["choices"][0].__setitem__(key, value)


def first_token(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["choices"][0]["logprobs"]["content"][0].__setitem__(key, value)


MALFORMED = {  # issue 17, items 3 and 4: each gave a 500 or a 200 with an empty answer
    "content-number": first_choice("message", {"role": "assistant", "content": 42}),
    "content-object": first_choice("message", {"role": "assistant", "content": {"text": "x"}}),
    "no-message": lambda body: body["choices"][0].pop("message"),
    "logprob-text": first_token("logprob", "abc"),
    "logprob-null": first_token("logprob", None),
    "token-null": first_token("token", None),
    "usage-text": lambda body: body.__setitem__("usage", "lots"),
    "usage-negative": lambda body: body["usage"].__setitem__("completion_tokens", -5),  # item 8: nonsense usage
    "usage-huge": lambda body: body["usage"].__setitem__("prompt_tokens", 1e30),
    "finish-reason-number": first_choice("finish_reason", 7),
    "two-choices-for-n-1": lambda body: body["choices"].append(dict(body["choices"][0])),
    "choices-null": lambda body: body.__setitem__("choices", [None]),
    "choices-text": lambda body: body.__setitem__("choices", ["x"]),
    "choices-object": lambda body: body.__setitem__("choices", {"a": 1}),
    # found by tests/test_upstream_fuzz.py: Python's JSON reader takes NaN and Infinity, and a log-prob above 0
    # reached P(True)'s arithmetic (a NaN confidence, an overflow: a 500)
    "logprob-nan": first_token("logprob", float("nan")),
    "logprob-infinite": first_token("logprob", float("-inf")),
    "logprob-positive": first_token("logprob", 1000.0),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_completion_is_a_502_or_a_valid_answer_never_a_500(transport, case):
    with faulty_upstream(malformed(MALFORMED[case])) as (url, _):
        async with proxy(url) as client:
            response = await ask(client)
    if response.status_code == 200:  # litellm repairs some faults itself (a numeric finish reason)
        assert response.json()["choices"][0]["message"]["content"] == "William Shakespeare"
        assert transport == "litellm" and case == "finish-reason-number"
    else:
        assert_upstream_error(response, 502, contains="the upstream model failed", code="upstream_error")


async def test_a_malformed_completion_in_a_signals_call_costs_that_signal_only(transport):
    def answer_well_sample_badly(request: dict[str, Any]) -> tuple[int, bytes, str]:
        sampling = int(request.get("n") or 1) > 1  # consistency's samples come in one call with n
        return malformed(MALFORMED["choices-null"])(request) if sampling else ok(request)

    with faulty_upstream(answer_well_sample_badly) as (url, _):
        async with proxy(url, signals=["logprob_min", "consistency"], cascade=False) as client:
            response = await ask(client)
    assert response.status_code == 200, response.text
    gate = response.json()["gate"]
    assert gate["errors"]["consistency"].startswith("upstream error") and gate["signals"]["logprob_min"] is not None


async def test_a_non_finite_logprob_in_p_trues_call_costs_that_signal_only(transport):
    """P(True)'s verdict call (a text completion) answers log-probs of NaN: that signal is lost, not the request."""

    def verdict_with_nan(request: dict[str, Any]) -> tuple[int, bytes, str]:
        if "prompt" not in request:
            return ok(request)
        body = _text_body(StubState(text="Yes"), request)
        body["choices"][0]["logprobs"]["top_logprobs"] = [{"Yes": float("nan"), "No": -2.0}]
        return 200, json.dumps(body).encode(), "application/json"

    with faulty_upstream(verdict_with_nan) as (url, upstream):
        async with proxy(url, signals=["logprob_min", "p_true"], cascade=False) as client:
            response = await ask(client)
    assert response.status_code == 200, response.text
    gate = response.json()["gate"]
    assert "not a finite number" in gate["errors"]["p_true"] and gate["signals"]["logprob_min"] is not None
    assert any("prompt" in request for request in upstream.requests)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_with_a_lone_surrogate_is_served_as_sent(transport, stream):
    """JSON may escape a lone surrogate ("\\ud800"), which UTF-8 cannot encode: found by the upstream fuzz test,
    the proxy's own JSON response then failed to render (a 500). The client now reads the string as sent."""
    with faulty_upstream(malformed(first_choice("message", {"role": "assistant", "content": "a\ud800b"}))) as (url, _):
        async with proxy(url, allowed_modes=["observe"]) as client:
            response = await ask(client, stream=stream, gate={"mode": "observe"})
    assert response.status_code == 200, response.text
    if stream:
        assert '"content": "a\\ud800b"' in response.text and response.text.endswith("data: [DONE]\n\n")
    else:
        assert response.json()["choices"][0]["message"]["content"] == "a\ud800b"


async def test_an_upstream_error_quoting_a_lone_surrogate_is_a_502(transport):
    def fails(request: dict[str, Any]) -> tuple[int, bytes, str]:
        body = {"error": {"message": "broken \udc80 text", "type": "server_error"}}
        return 500, json.dumps(body).encode(), "application/json"

    with faulty_upstream(fails) as (url, _):
        async with proxy(url) as client:
            response = await ask(client)
    assert_upstream_error(response, 502, contains="answered 500", code="upstream_error")


@pytest.mark.parametrize("mode", ["enforce", "off"])
async def test_an_upstream_that_echoes_the_key_in_its_answer_does_not_leak_it(transport, mode):
    """Found by the upstream fuzz test: the answer itself quoted the key the gate sent, and was served as it was."""
    echo = first_choice("message", {"role": "assistant", "content": f"Your key is Bearer {SECRET}."})
    with faulty_upstream(malformed(echo)) as (url, _):
        async with proxy(url, allowed_modes=["off", "enforce"]) as client:
            response = await ask(client, gate={"mode": mode})
            streamed = await ask(client, gate={"mode": mode}, stream=True)
    for served in (response, streamed):
        assert served.status_code == 200, served.text
        assert "***" in served.text and SECRET not in served.text  # streamed: the text is split into pieces
    assert response.json()["choices"][0]["message"]["content"].startswith("Your key is Bearer ***.")


@pytest.mark.parametrize("code", [500, 503])
async def test_upstream_5xx_is_a_502_after_the_configured_retries(transport, code):
    with faulty_upstream(status(code)) as (url, upstream):
        async with proxy(url, max_retries=1) as client:
            response = await ask(client)
    assert_upstream_error(response, 502, contains=f"answered {code}", code="upstream_error")
    assert len(upstream.requests) == 2  # the first attempt and one retry, no more


async def test_an_upstream_that_echoes_the_key_does_not_leak_it(transport):
    with faulty_upstream(status(500, echo_key=True)) as (url, _):
        async with proxy(url) as client:
            response = await ask(client)
    error = assert_upstream_error(response, 502, contains="answered 500", code="upstream_error")
    assert "sk-fault" not in error["message"]


@pytest.mark.parametrize("code", [401, 403])
async def test_refused_gate_credentials_are_reported_without_the_upstreams_text(transport, code):
    with faulty_upstream(status(code, echo_key=True)) as (url, _):
        async with proxy(url) as client:
            response = await ask(client)
    assert_upstream_error(response, 502, contains="refused the gate's credentials", code="upstream_error")


async def test_a_failing_estimator_degrades_the_assessment_not_the_answer(transport):
    """Sampling (n > 1, for consistency) fails upstream; the answer itself is served with the error noted."""

    def fails_when_sampling(request: dict[str, Any]) -> tuple[int, bytes, str]:
        return status(500)(request) if int(request.get("n") or 1) > 1 else ok(request)

    with faulty_upstream(fails_when_sampling) as (url, upstream):
        options = {"signals": ["logprob_min", "consistency"], "cascade": False, "include_original": True}
        async with proxy(url, **options) as client:
            response = await ask(client)
            per_request = await ask(client, gate={"estimators": ["logprob_min", "consistency"]})
    for served in (response, per_request):
        assert served.status_code == 200, served.text
        body = served.json()
        assert body["choices"][0]["message"]["content"]  # an answer or the gate's message, never an error
        gate = body["gate"]
        assert "consistency" in gate["errors"], gate
        assert gate["errors"]["consistency"] and "Traceback" not in served.text and SECRET not in served.text
        assert gate["original"] == "William Shakespeare"
        assert served.headers["x-gate-decision"] == gate["decision"]
    assert any(int(r.get("n") or 1) > 1 for r in upstream.requests)  # the sampling call was made and failed


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_estimator_whose_error_echoes_the_key_does_not_leak_it(transport, stream):
    """Signal errors travel to the client in ``gate.errors`` and ``gate.reasons``: scrubbed like upstream errors."""

    def fails_when_sampling(request: dict[str, Any]) -> tuple[int, bytes, str]:
        return status(500, echo_key=True)(request) if int(request.get("n") or 1) > 1 else ok(request)

    with faulty_upstream(fails_when_sampling) as (url, _):
        async with proxy(url, signals=["logprob_min", "consistency"], cascade=False) as client:
            response = await ask(client, stream=stream)
    assert response.status_code == 200, response.text
    assert "Incorrect API key provided: ***" in response.text  # the error is reported, the key is not
    assert SECRET not in response.text and "sk-fault" not in response.text


# --- fuzzed request validation ------------------------------------------------------------------------------

STATUSES = {200, 400, 413}
MAX_BODY = 2048

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "", "USER"]) | json_scalars
text_content = st.sampled_from([ANSWER_Q, "Who wrote Beowulf?", "What is the capital of Atlantis?", " ", ""]) | st.text(
    alphabet=string.printable + "éß中\u200b\x00", max_size=40
)
content = (
    text_content
    | st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": text_content}), max_size=3
    )
    | json_values
)
message = st.fixed_dictionaries({"role": roles, "content": content}, optional={"name": json_values}) | json_values
messages = st.lists(message, max_size=4) | json_values
numbers = st.integers(min_value=-5, max_value=10_000) | st.floats(allow_nan=True, allow_infinity=True) | json_values
gate_options = (
    st.fixed_dictionaries(
        {},
        optional={
            "mode": st.sampled_from(["off", "observe", "enforce", "bogus"]) | json_values,
            "estimators": st.lists(st.sampled_from(["familiarity", "logprob_min", "logprob_mean", "consistency"]))
            | json_values,
            "cascade": st.booleans() | json_values,
            "budget": st.fixed_dictionaries(
                {}, optional={"max_calls": numbers, "max_tokens": numbers, "max_seconds": numbers, "x": json_values}
            )
            | json_values,
            "max_risk": json_values,
        },
    )
    | json_values
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from([MODEL, "gpt-4o", ""]) | json_values,
        "messages": messages,
        "temperature": numbers,
        "max_tokens": numbers,
        "max_completion_tokens": numbers,
        "n": st.integers(min_value=-2, max_value=5) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values}) | json_values,
        "gate": gate_options,
        "tools": json_values,
        "user": json_values,
    },
)
valid_fields = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(min_value=0.0, max_value=2.0),
        "max_tokens": st.integers(min_value=1, max_value=512),  # the server's limit below
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "gate": st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from(["off", "observe", "enforce"]),
                "estimators": st.lists(st.sampled_from(["familiarity", "logprob_min", "logprob_mean"]), min_size=1),
                "cascade": st.just(True),
                "budget": st.fixed_dictionaries(
                    {},
                    optional={
                        "max_calls": st.integers(1, 8),
                        "max_tokens": st.integers(1, 4000),
                        "max_seconds": st.floats(0.01, 10),
                    },
                ),
            },
        ),
    },
)
one_junk_field = st.none() | st.tuples(
    st.sampled_from(["model", "messages", "temperature", "max_tokens", "n", "stream", "stream_options", "gate"]),
    json_values,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    settings = Settings(model=MODEL, max_body_bytes=MAX_BODY, max_answer_tokens=512, **ALL_MODES)
    app = create_app(settings, gate=make_gate())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def check(response: Any) -> None:
    assert response.status_code in STATUSES, (response.status_code, response.text)
    assert "Traceback" not in response.text
    if response.status_code == 200:
        return
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error["param"] is None or isinstance(error["param"], str)


def post_json(client: TestClient, path: str, body: Any) -> Any:
    raw = json.dumps(body)  # NaN/Infinity are written as Python's json module writes them
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


@FUZZ
@given(body=json_values)
def test_fuzz_any_json_body(app_client, body):
    for path in ("/v1/chat/completions", "/v1/completions"):
        check(post_json(app_client, path, body))


@FUZZ
@given(raw=st.binary(max_size=3000), content_type=st.sampled_from(["application/json", "text/plain", None]))
def test_fuzz_raw_bytes(app_client, raw, content_type):
    headers = {"content-type": content_type} if content_type else {}
    check(app_client.post("/v1/chat/completions", content=raw, headers=headers))


@FUZZ
@given(body=fields)
def test_fuzz_chat_fields(app_client, body):
    response = post_json(app_client, "/v1/chat/completions", body)
    check(response)
    if response.status_code == 200 and response.headers["content-type"].startswith("application/json"):
        assert response.json()["object"] == "chat.completion"


@FUZZ
@given(body=fields, prompt=text_content | json_values)
def test_fuzz_text_completion_fields(app_client, body, prompt):
    body = {k: v for k, v in body.items() if k != "messages"}
    check(post_json(app_client, "/v1/completions", {**body, "prompt": prompt}))


@FUZZ
@given(extra=valid_fields, junk=one_junk_field)
def test_fuzz_one_field_of_a_valid_request(app_client, extra, junk):
    """Valid requests with at most one arbitrary field reach deeper (policy, budget, generation, streaming)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": ANSWER_Q}], **extra}
    if junk is not None:
        body[junk[0]] = junk[1]
    response = post_json(app_client, "/v1/chat/completions", body)
    check(response)
    if response.status_code == 200 and response.headers["content-type"].startswith("application/json"):
        assert "gate" in response.json()
    elif response.status_code == 200:
        assert response.text.endswith("data: [DONE]\n\n") and '"gate"' in response.text
    if junk is None:  # valid by construction: served
        assert response.status_code == 200, response.text
