"""Secure defaults over real HTTP (uvicorn on loopback), issue 17 items 7 and 8.

What an ordinary client may change and what only a privileged key may; which paths need a key; the
``x-request-id`` header on every error; no upstream address in a message; the cap on the upstream's
response size; oversized and malformed request headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from estimators.base import Generation, Prompt
from estimators.testing import ScriptedLLM, prompt_text
from gate.config import Settings
from gate.errors import UpstreamError
from gate.server.app import create_app, uvicorn_options
from tests.stub_upstream import StubState, stub_upstream
from tests.test_server import ABSTAIN_Q, ANSWER_Q, HEDGE_Q, MODEL, RULES, make_gate
from tests.test_server_client import running

KEY, ADMIN = "sk-client-0123456789", "sk-operator-9876543210"
UNREACHABLE = (
    "cannot reach openai/x: Cannot connect to host 10.9.8.7:8000 ssl:default [Connect call failed ('10.9.8.7', 8000)]"
)
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


class TroubleLLM(ScriptedLLM):
    """The scripted model, failing on request: a bug ("crash"), an unreachable upstream ("unreachable"),
    or an answer that waits for ``release`` ("wait")."""

    release: threading.Event | None = None

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        text = prompt_text(prompt)
        if "crash" in text:
            raise RuntimeError("a bug")
        if "unreachable" in text:
            raise UpstreamError(UNREACHABLE, status=502)
        if "wait" in text:
            assert self.release is not None
            await asyncio.to_thread(self.release.wait, 10)
        return await super().generate(prompt, **kwargs)


@dataclass
class Served:
    url: str  # ends in /v1
    app: Any
    llm: TroubleLLM

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")


@contextmanager
def serving(**settings: Any) -> Iterator[Served]:
    """The proxy over the trouble model, served by uvicorn as ``gate serve`` runs it."""
    config = Settings(model=MODEL, **settings)
    llm = TroubleLLM(rules=RULES)
    llm.release = threading.Event()
    app = create_app(config, gate=make_gate(llm))
    try:
        with running(app, **uvicorn_options(config)) as (url, _):
            yield Served(url, app, llm)
    finally:
        llm.release.set()


@pytest.fixture(scope="module")
def keyed() -> Iterator[Served]:
    """Ordinary and privileged keys, otherwise the defaults (a small body limit, one request in flight)."""
    with serving(api_keys=[KEY], privileged_api_keys=[ADMIN], max_body_bytes=2048, max_concurrency=1) as served:
        yield served


def chat(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], **extra}


def post(served: Served, question: str, *, key: str | None = KEY, path: str = "/chat/completions", **extra: Any):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(served.url + path, json=chat(question, **extra), headers=headers, timeout=30)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"]), response.headers
    return error  # type: ignore[no-any-return]


# --- item 7: enforcement a client cannot switch off ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["off", "observe"])
def test_an_ordinary_key_cannot_weaken_enforcement(keyed, mode):
    calls = len(keyed.llm.calls)
    error = error_of(post(keyed, ABSTAIN_Q, gate={"mode": mode}), 403)
    assert error["type"] == "permission_error" and error["code"] == "mode_not_allowed"
    assert error["param"] == "gate.mode" and f"gate mode '{mode}' is not allowed" in error["message"]
    assert "allowed_modes setting permits ['enforce']" in error["message"]
    assert len(keyed.llm.calls) == calls  # refused before any model call


def test_an_ordinary_key_does_not_get_the_withheld_or_hedged_answer(keyed):
    abstained = post(keyed, ABSTAIN_Q)
    streamed = post(keyed, ABSTAIN_Q, stream=True)
    hedged = post(keyed, HEDGE_Q)
    assert abstained.json()["gate"]["decision"] == "abstain" and "original" not in abstained.json()["gate"]
    assert "Poseidonia" not in abstained.text and "Poseidonia" not in streamed.text
    assert streamed.text.endswith("data: [DONE]\n\n") and '"decision": "abstain"' in streamed.text
    assert hedged.json()["gate"]["decision"] == "hedge" and "original" not in hedged.json()["gate"]


def test_a_privileged_key_may_pick_any_mode_and_gets_the_original(keyed):
    off = post(keyed, ANSWER_Q, key=ADMIN, gate={"mode": "off"})
    observed = post(keyed, ABSTAIN_Q, key=ADMIN, gate={"mode": "observe"})
    enforced = post(keyed, ABSTAIN_Q, key=ADMIN)
    assert off.status_code == 200 and off.json()["gate"] == {"mode": "off"}
    assert observed.json()["choices"][0]["message"]["content"] == "Poseidonia"
    assert observed.json()["gate"]["original"] == "Poseidonia"
    assert enforced.json()["gate"]["decision"] == "abstain" and enforced.json()["gate"]["original"] == "Poseidonia"
    assert "Poseidonia" not in enforced.json()["choices"][0]["message"]["content"]


def test_without_keys_there_is_no_auth_and_every_client_gets_the_safe_defaults():
    with serving() as served:
        off = post(served, ANSWER_Q, key=ADMIN, gate={"mode": "off"})  # any key: nobody is privileged
        abstained = post(served, ABSTAIN_Q, key=None)
        pages = {path: httpx.get(served.root + path) for path in ("/metrics", "/docs", "/openapi.json", "/v1/models")}
    assert error_of(off, 403)["code"] == "mode_not_allowed"
    assert abstained.status_code == 200 and "Poseidonia" not in abstained.text
    assert {path: r.status_code for path, r in pages.items()} == dict.fromkeys(pages, 200)  # local use: open


def test_the_operator_may_widen_the_defaults_for_every_client():
    with serving(api_keys=[KEY], allowed_modes=["off", "enforce"], include_original=True) as served:
        off = post(served, ANSWER_Q, gate={"mode": "off"})
        observed = post(served, ANSWER_Q, gate={"mode": "observe"})
        abstained = post(served, ABSTAIN_Q)
    assert off.status_code == 200 and error_of(observed, 403)["code"] == "mode_not_allowed"
    assert abstained.json()["gate"]["original"] == "Poseidonia"


def test_privileged_keys_alone_turn_authentication_on():
    with serving(privileged_api_keys=[ADMIN]) as served:
        anonymous = post(served, ANSWER_Q, key=None)
        wrong = post(served, ANSWER_Q, key=KEY)
        admin = post(served, ANSWER_Q, key=ADMIN, gate={"mode": "off"})
    assert error_of(anonymous, 401)["code"] == "invalid_api_key" and error_of(wrong, 401)["code"] == "invalid_api_key"
    assert admin.status_code == 200 and KEY not in wrong.text


# --- item 8: unauthenticated paths ----------------------------------------------------------------------------

PAGES = ("/metrics", "/docs", "/redoc", "/openapi.json", "/v1/models")


def test_with_keys_metrics_and_the_api_docs_need_one_unless_listed_public(keyed):
    for path in PAGES:
        assert error_of(httpx.get(keyed.root + path), 401)["code"] == "invalid_api_key", path
        assert httpx.get(keyed.root + path, headers={"authorization": f"Bearer {KEY}"}).status_code == 200, path
    for path in ("/healthz", "/readyz"):
        assert httpx.get(keyed.root + path).status_code == 200, path
    public = ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"]
    with serving(api_keys=[KEY], public_paths=public) as served:
        opened = {path: httpx.get(served.root + path).status_code for path in PAGES}
    assert opened == {"/metrics": 200, "/docs": 200, "/redoc": 401, "/openapi.json": 200, "/v1/models": 401}


def test_a_public_path_must_be_a_path():
    with pytest.raises(ValueError, match="paths start with '/'"):
        Settings(model=MODEL, public_paths=["metrics"])


# --- item 8: x-request-id on every response, no upstream address in a message ---------------------------------


def test_every_error_response_carries_a_request_id(keyed):
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    responses = {
        "400 json": httpx.post(keyed.url + "/chat/completions", content=b'{"model": ', headers=auth),
        "400 validation": httpx.post(keyed.url + "/chat/completions", json={"model": MODEL}, headers=auth),
        "401": post(keyed, ANSWER_Q, key=None),
        "403": post(keyed, ANSWER_Q, gate={"mode": "off"}),
        "404": httpx.get(keyed.url + "/nothing", headers=auth),
        "405": httpx.get(keyed.url + "/chat/completions", headers=auth),
        "413": post(keyed, "x" * 4000),
        "500": post(keyed, "crash", key=ADMIN, gate={"mode": "off"}),
        "502": post(keyed, "unreachable", key=ADMIN, gate={"mode": "off"}),
    }
    waiting = threading.Thread(target=post, args=(keyed, "wait"), kwargs={"key": ADMIN, "gate": {"mode": "off"}})
    waiting.start()
    try:
        deadline = time.monotonic() + 5
        while keyed.app.state.server.slots.in_use == 0:
            assert time.monotonic() < deadline, "the waiting request never started"
            time.sleep(0.01)
        responses["429"] = post(keyed, ANSWER_Q)
    finally:
        keyed.llm.release.set()
        waiting.join(10)
        keyed.llm.release.clear()
    answered = post(keyed, ANSWER_Q)
    for name, response in responses.items():
        error_of(response, int(name[:3]))
        assert "Traceback" not in response.text, name
    ids = [response.headers["x-request-id"] for response in [*responses.values(), answered]]
    assert len(set(ids)) == len(ids)  # one id per request
    assert answered.json()["id"] == "chatcmpl-" + answered.headers["x-request-id"]  # the completion's own id


def test_an_upstream_error_names_the_upstream_not_its_address(keyed):
    error = error_of(post(keyed, "unreachable", key=ADMIN, gate={"mode": "off"}), 502)
    assert error["message"].startswith("the upstream model failed: cannot reach openai/x")
    assert "10.9.8.7" not in error["message"] and "8000" not in error["message"]


# --- item 8: the upstream's response size ---------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "read-to-close"])
def test_an_upstream_answer_over_max_upstream_bytes_is_a_502_and_is_not_read_to_its_end(declared):
    """A 24 MB answer against the default 10 MB cap (direct transport): declared or not, the proxy stops
    reading, drops the connection and answers 502 at once."""
    state = StubState(text="a" * 24_000_000, declare_length=declared)
    with stub_upstream(state) as upstream:
        config = Settings(
            model="openai/stub",
            api_base=upstream,
            api_key="sk-upstream-secret-0123",
            transport="direct",
            signals=["logprob_min"],
            max_retries=0,
        )
        with running(create_app(config), ready_within_s=60, **uvicorn_options(config)) as (url, _):
            started = time.perf_counter()
            body = {**chat(ANSWER_Q), "model": "openai/stub"}
            response = httpx.post(url + "/chat/completions", json=body, timeout=60)
            elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 10
        while state.broken_writes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    error = error_of(response, 502)
    assert error["code"] == "upstream_response_too_large" and error["type"] == "server_error"
    assert error["message"].startswith("upstream response too large") and "10000000 bytes" in error["message"]
    assert upstream.split("//")[1].split("/")[0] not in response.text and "sk-upstream" not in response.text
    assert state.broken_writes == 1 and len(state.requests) == 1  # cut off mid-answer, and not retried
    assert elapsed < 20, elapsed


def test_the_litellm_transport_answers_an_upstream_answer_over_max_upstream_bytes_with_a_502_naming_the_limit():
    """The same setting, through litellm: a 3 MB answer against a 1 MB cap is refused, not relayed; litellm reads
    whole bodies, so the cap is applied to the answer it parsed (an answer under the cap is served)."""
    state = StubState(text="b" * 3_000_000)
    with stub_upstream(state) as upstream:
        options = {"model": "openai/stub", "api_base": upstream, "api_key": "sk-upstream-0123", "transport": "litellm"}
        config = Settings(**options, signals=["logprob_min"], max_upstream_bytes=1_000_000, max_retries=2)
        with running(create_app(config), ready_within_s=60, **uvicorn_options(config)) as (url, _):
            body = {**chat(ANSWER_Q), "model": "openai/stub"}
            refused = httpx.post(url + "/chat/completions", json=body, timeout=60)
            state.text = "b" * 200_000  # with its log-probs (the word thrice): about 0.6 MB
            served = httpx.post(url + "/chat/completions", json=body, timeout=60)
    error = error_of(refused, 502)
    assert error["code"] == "upstream_response_too_large" and "1000000 bytes" in error["message"]
    assert "bbbb" not in refused.text and len(state.requests) == 2  # not retried
    assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"] == "b" * 200_000


def test_a_compressed_upstream_answer_is_counted_as_it_decompresses():
    """A 24 MB answer sent gzip-compressed (about 0.1 MB on the wire, its length declared): the cap holds for
    the decoded bytes, so a small compressed body cannot expand past it."""
    state = StubState(text="a" * 24_000_000, gzip=True)
    with stub_upstream(state) as upstream:
        config = Settings(model="openai/stub", api_base=upstream, transport="direct", signals=["logprob_min"])
        with running(create_app(config), ready_within_s=60, **uvicorn_options(config)) as (url, _):
            body = {**chat(ANSWER_Q), "model": "openai/stub"}
            response = httpx.post(url + "/chat/completions", json=body, timeout=60)
    assert error_of(response, 502)["code"] == "upstream_response_too_large"


# --- item 8: oversized and malformed request headers ----------------------------------------------------------


def raw_request(served: Served, head: bytes) -> tuple[bytes, bool]:
    """Send ``head`` on a fresh connection; the bytes that came back, and whether the server closed it."""
    host, port = served.root.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close while the head is still being sent
            sock.sendall(head)
        data, closed = b"", False
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and b"content-length: 15" in data.lower() and data.endswith(b"}"):
                    return data, False  # a complete JSON answer on a connection kept alive
            closed = True
        except ConnectionResetError:  # closed with the rest of the head unread: the kernel resets
            closed = True
    return data, closed


def test_a_header_within_max_header_bytes_is_served(keyed):
    data, closed = raw_request(keyed, b"GET /healthz HTTP/1.1\r\nHost: gate\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b"x-request-id: " in data and not closed


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: gate\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", id="1MB"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: gate\r\nno colon in this line\r\n\r\n", id="malformed"),
    ],
)
def test_an_oversized_or_malformed_header_gets_uvicorns_own_400_and_the_connection_closes(keyed, head):
    """uvicorn (h11, ``max_header_bytes``) answers these before the app sees a request: a plain-text 400,
    not OpenAI's error shape and without ``x-request-id``, then it closes the connection. The server lives on."""
    data, closed = raw_request(keyed, head)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"connection: close" in data.lower()
    assert closed
    assert httpx.get(keyed.root + "/healthz").status_code == 200
