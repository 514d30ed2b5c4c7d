"""The upstream fuzzed like the client is (issue 17): hypothesis scripts what the upstream sends, byte for byte.

A real ``gate serve`` app runs under uvicorn on loopback in front of the stub upstream
(:mod:`tests.stub_upstream`), once per transport (the direct HTTP client and litellm). Each example is one
client request (chat or text, streamed or not, mode enforce, observe or off); the stub answers the gate's
calls as the example scripts: the answer call, the gate's own sampling calls (consistency, P(True),
verbalized confidence), one of them, or every call, gets a valid completion, one with any field (at any
depth) set to any JSON value or deleted, extra choices, a huge or truncated body, gzip, no declared length,
the wrong content type, SSE instead of JSON, an error status (quoting the key), non-JSON bytes, the key
quoted in the answer or a header, or no answer in time. (The gate never asks its upstream to stream, so
"JSON when SSE was asked" is the client's ``stream: true`` over all of the above.)

The invariant, whatever the upstream sends: the client gets a 200 with a valid completion (a lost signal is
reported in ``gate.errors``), or an OpenAI-shaped 502/504 (400/429 where the upstream said so), never a
500, never a torn or closed connection, never the upstream key. At the end the audit log holds one line
per request and ``/metrics`` counts no 500. Examples are derandomized (the same ones on every run) and
bounded so the file runs in well under a minute; ``GATE_FUZZ_EXAMPLES`` and ``GATE_FUZZ_RANDOM`` widen the
search (``benchmarks/reliability.py``), ``GATE_FUZZ_REPORT`` writes one JSON line per example.
"""
from __future__ import annotations

import gzip
import itertools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate.backends.litellm_client import check_model_name, import_litellm, provider_supports_n
from gate.config import Settings
from gate.server.app import create_app, uvicorn_options
from tests.stub_upstream import RawAnswer, StubState, _chat_body, _text_body, stub_upstream
from tests.test_server_client import running

KEY = "sk-fuzz-CANARY-0123456789abcdef"  # the upstream key: must never reach a client
ADMIN = "sk-fuzz-admin-key-000111222"  # a privileged client key: any mode
MODEL = "openai/stub"
QUESTION = "Who wrote Hamlet?"
LIMIT = 65_536  # max_upstream_bytes: small, so that "huge" answers stay cheap to make
TIMEOUT_S = 1.5  # the upstream timeout; a hang costs this much
SIGNALS = ["logprob_min", "logprob_mean", "consistency", "p_true", "verbalized"]
MAX_EXAMPLES = int(os.environ.get("GATE_FUZZ_EXAMPLES", "45"))  # per transport; benchmarks/reliability.py asks more
REPORT = os.environ.get("GATE_FUZZ_REPORT")  # a JSONL file that gets one line per example (the benchmark's figures)
ERROR_CODES = {
    "upstream_error",
    "upstream_timeout",
    "upstream_response_too_large",
    "upstream_misconfigured",
    "upstream_rejected",
    "upstream_rate_limited",
    "timeout",
}


# --- what the upstream may send -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)  # lone surrogates too
    | st.just(KEY)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
nasty = st.sampled_from(  # values a random draw rarely hits, each of which has broken a parser somewhere
    ["\ud800", "a\udfffb", "\x00", "", " ", "\u202e", float("nan"), float("inf"), -1e308, 2**64, -1, 0.5, True, [], {}]
)
field_values = nasty | json_values
STATUSES = [400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504]
CONTENT_TYPES = ["text/html", "text/plain", "text/event-stream", "application/octet-stream", None]

faults = st.one_of(
    st.tuples(st.just("valid")),
    st.tuples(st.just("set"), st.integers(0, 200), field_values),  # a field (any depth) gets any JSON value
    st.tuples(st.just("set"), st.integers(0, 200), field_values),  # (listed twice: the most varied kind)
    st.tuples(st.just("content"), field_values),  # the answer's text itself (one of many fields to "set")
    st.tuples(st.just("logprobs"), nasty | st.floats()),  # every log-prob in the body
    st.tuples(st.just("delete"), st.integers(0, 200)),
    st.tuples(st.just("extra_choices"), st.integers(1, 3)),
    st.tuples(st.just("status"), st.sampled_from(STATUSES), st.sampled_from(["openai", "echo_key", "html", "empty"])),
    st.tuples(st.just("not_json"), st.binary(max_size=64)),
    st.tuples(st.just("content_type"), st.sampled_from(CONTENT_TYPES)),
    st.tuples(st.just("sse"), st.sampled_from(["text/event-stream", "application/json"])),
    st.tuples(st.just("truncated"), st.floats(0.0, 0.95)),
    st.tuples(st.just("read_to_close")),
    st.tuples(st.just("gzip")),
    st.tuples(st.just("huge"), st.sampled_from(["content", "extra_field", "logprobs", "within_limit"])),
    st.tuples(st.just("echo_key"), st.sampled_from(["content", "header", "model"])),
    st.tuples(st.just("hang")),
)
targets = st.sampled_from(["answer", "sampling", "one_sampling", "every"])
clients = st.fixed_dictionaries(
    {
        "stream": st.booleans(),
        "route": st.sampled_from(["chat", "completions"]),
        "mode": st.sampled_from(["enforce", "enforce", "observe", "off"]),
    }
)
PLAIN = {"stream": False, "route": "chat", "mode": "enforce"}
FATAL = {"status", "not_json", "truncated", "hang"}
"""Fault kinds that break any call they hit (huge: over the limit unless ``within_limit``)."""


def valid_body(request: dict[str, Any], path: str) -> dict[str, Any]:
    """The stub's own valid answer to ``request``."""
    state = StubState(text="William Shakespeare")
    return _chat_body(state, request) if path.endswith("/chat/completions") else _text_body(state, request)


def node_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a field or item inside ``value`` (depth first), the root excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths += node_paths(child, (*prefix, key))
    return paths


def changed(body: dict[str, Any], index: int, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """``body`` with the ``index``-th field (modulo their number) replaced by ``value`` or deleted."""
    body = json.loads(json.dumps(body))
    paths = node_paths(body)
    *parents, last = paths[index % len(paths)]
    holder = body
    for part in parents:
        holder = holder[part]
    if delete:
        del holder[last]
    else:
        holder[last] = value
    return body


def encode(body: Any) -> bytes:
    """JSON as Python writes it (NaN and Infinity included; a lone surrogate as its escape)."""
    return json.dumps(body).encode()


def raw_answer(fault: tuple[Any, ...], request: dict[str, Any], path: str, authorization: str) -> RawAnswer:
    """What the upstream sends for ``request`` under ``fault``."""
    kind, body = fault[0], valid_body(request, path)
    if kind == "set":
        return RawAnswer(encode(changed(body, fault[1], fault[2])))
    if kind == "content":
        choice = body["choices"][0]
        if "message" in choice:
            choice["message"]["content"] = fault[1]
        else:
            choice["text"] = fault[1]
        return RawAnswer(encode(body))
    if kind == "logprobs":
        return RawAnswer(encode(with_logprobs(body, fault[1])))
    if kind == "delete":
        return RawAnswer(encode(changed(body, fault[1], delete=True)))
    if kind == "extra_choices":
        body["choices"] += [dict(body["choices"][0], index=i + 1) for i in range(fault[1])]
        return RawAnswer(encode(body))
    if kind == "status":
        texts = {
            "openai": encode({"error": {"message": "upstream trouble", "type": "server_error", "code": None}}),
            "echo_key": encode({"error": {"message": f"Incorrect API key provided: {authorization}", "code": None}}),
            "html": f"<html><body>error {fault[1]} for {authorization}</body></html>".encode(),
            "empty": b"",
        }
        content_type = "text/html" if fault[2] == "html" else "application/json"
        return RawAnswer(texts[fault[2]], status=fault[1], content_type=content_type)
    if kind == "not_json":
        return RawAnswer(fault[1])
    if kind == "content_type":
        return RawAnswer(encode(body), content_type=fault[1])
    if kind == "sse":
        chunk = {**body, "object": "chat.completion.chunk"}
        return RawAnswer(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), content_type=fault[1])
    if kind == "truncated":
        raw = encode(body)
        return RawAnswer(raw[: int(len(raw) * fault[1])], length=len(raw))
    if kind == "read_to_close":
        return RawAnswer(encode(body), length=-1)
    if kind == "gzip":
        return RawAnswer(gzip.compress(encode(body)), headers=(("content-encoding", "gzip"),))
    if kind == "huge":
        return RawAnswer(encode(huge(body, fault[1])))
    if kind == "echo_key":
        return echo_key(body, fault[1], authorization)
    assert kind in ("valid", "hang"), kind
    return RawAnswer(encode(body), delay_s=TIMEOUT_S + 1.0 if kind == "hang" else 0.0)


def with_logprobs(value: Any, logprob: Any) -> Any:
    """``value`` with every log-prob in it (chat: ``logprob`` fields; text: the lists and maps of them) set."""
    if isinstance(value, list):
        return [with_logprobs(item, logprob) for item in value]
    if not isinstance(value, dict):
        return value
    changed = {key: with_logprobs(item, logprob) for key, item in value.items()}
    if "logprob" in changed:
        changed["logprob"] = logprob
    if "token_logprobs" in changed:
        changed["token_logprobs"] = [logprob] * len(changed["token_logprobs"])
        changed["top_logprobs"] = [dict.fromkeys(top or {}, logprob) for top in changed.get("top_logprobs") or []]
    return changed


def huge(body: dict[str, Any], where: str) -> dict[str, Any]:
    """``body`` grown past the size limit (or to half of it, ``within_limit``)."""
    size = LIMIT // 2 if where == "within_limit" else LIMIT * 3
    choice = body["choices"][0]
    if where in ("content", "within_limit"):
        key = "message" if "message" in choice else None
        if key:
            choice["message"]["content"] = "a" * size
        else:
            choice["text"] = "a" * size
    elif where == "extra_field":
        body["padding"] = "x" * size
    else:
        choice["logprobs"] = {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": []}] * (size // 40)}
    return body


def echo_key(body: dict[str, Any], where: str, authorization: str) -> RawAnswer:
    """A 200 that quotes the key the gate sent: in the answer text, a response header, or the model name."""
    if where == "header":
        return RawAnswer(encode(body), headers=(("x-echo", authorization),))
    if where == "model":
        body["model"] = authorization
    else:
        choice = body["choices"][0]
        if "message" in choice:
            choice["message"]["content"] = f"The key is {authorization}."
        else:
            choice["text"] = f"The key is {authorization}."
    return RawAnswer(encode(body))


@dataclass
class Example:
    """One example's script: which of the gate's calls the fault hits, counted as they arrive."""

    fault: tuple[Any, ...]
    target: str
    calls: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hit: list[int] = field(default_factory=list)

    def __call__(self, request: dict[str, Any], path: str, authorization: str) -> RawAnswer:
        with self.lock:
            number = next(self.calls)  # 0: the answer call (the first of every request); then sampling calls
        if self.applies(number):
            self.hit.append(number)
            return raw_answer(self.fault, request, path, authorization)
        return raw_answer(("valid",), request, path, authorization)

    def applies(self, number: int) -> bool:
        if self.target == "answer":
            return number == 0
        if self.target == "sampling":
            return number > 0
        if self.target == "one_sampling":
            return number == 1  # the first sampling call to arrive (they run concurrently)
        return True


# --- the gate under test -----------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    stub: StubState = field(repr=False)
    audit: Path
    transport: str
    sent: int = 0


@pytest.fixture(scope="module", autouse=True)
def litellm_imported() -> None:
    """Import litellm before any clock starts (the import alone takes seconds on a busy machine)."""
    import_litellm()
    check_model_name(MODEL)
    provider_supports_n(MODEL)


@pytest.fixture(scope="module", params=["direct", "litellm"])
def served(request, tmp_path_factory) -> Iterator[Served]:
    """The gate as ``gate serve`` runs it, over the stub, with the audit log on."""
    stub = StubState(text="William Shakespeare")
    audit = tmp_path_factory.mktemp("audit") / f"{request.param}.jsonl"
    with stub_upstream(stub) as upstream:
        config = Settings(
            model=MODEL,
            api_base=upstream,
            api_key=KEY,
            transport=request.param,
            signals=SIGNALS,
            cascade=False,
            max_retries=0,
            timeout_s=TIMEOUT_S,
            request_timeout_s=20.0,
            max_upstream_bytes=LIMIT,
            privileged_api_keys=[ADMIN],
            familiarity_cache="off",
            audit_path=audit,
        )
        with running(create_app(config), ready_within_s=30, **uvicorn_options(config)) as (url, _):
            served = Served(url, stub, audit, request.param)
            yield served
            check_the_aftermath(served)


def check_the_aftermath(served: Served) -> None:
    """One audit line per request, no 500 in /metrics, no key in either."""
    lines = served.audit.read_text(encoding="utf-8").splitlines()
    assert len(lines) == served.sent, (len(lines), served.sent)
    metrics = httpx.get(served.url.removesuffix("/v1") + "/metrics", headers=auth(), timeout=10).text
    assert 'status="500"' not in metrics
    for text in (served.audit.read_text(encoding="utf-8"), metrics):
        assert KEY not in text


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN}"}


def request_body(client: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"model": MODEL, "stream": client["stream"], "gate": {"mode": client["mode"]}}
    if client["route"] == "chat":
        return "/chat/completions", {**body, "messages": [{"role": "user", "content": QUESTION}]}
    return "/completions", {**body, "prompt": QUESTION}


# --- the invariant ------------------------------------------------------------------------------------------


def check_reply(response: httpx.Response, example: Example, client: dict[str, Any]) -> None:
    text = response.text
    assert KEY not in text, text[:500]
    assert KEY not in str(response.headers)
    assert "Traceback" not in text and 'File "' not in text
    assert response.headers.get("connection", "").lower() != "close", response.headers
    kind, answer_hit = example.fault[0], 0 in example.hit
    upstream_status = example.fault[1] if kind == "status" and answer_hit else None
    allowed = {200, 502, 504} | ({upstream_status} & {400, 429})
    assert response.status_code in allowed, (response.status_code, text[:500])
    if response.status_code != 200:
        check_error(response)
        assert answer_hit or kind == "hang", "a failed sampling call must cost a signal, not the answer"
        return
    fatal = kind in FATAL or (kind == "huge" and example.fault[1] != "within_limit")
    assert not (answer_hit and fatal), f"{example.fault} on the answer call was served as a 200"
    completion = check_stream(text) if client["stream"] else response.json()
    check_completion(completion, chat=client["route"] == "chat", mode=client["mode"])
    if fatal and example.hit and client["mode"] != "off":  # a sampling call broke: the signal is reported lost
        assert completion["gate"]["errors"], completion["gate"]


def check_error(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] in ERROR_CODES and isinstance(error["message"], str) and error["message"], error
    assert response.headers["x-request-id"]


def check_stream(text: str) -> dict[str, Any]:
    """The SSE chunks of a streamed 200, folded into one completion-like object."""
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    chunks = [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: {")]
    content, gate = "", chunks[-1]["gate"]
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice.get("delta", {"content": choice.get("text")})
            content += delta.get("content") or ""
    first = chunks[0]
    kind = first["object"].replace(".chunk", "")
    reason = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    choice = {"message": {"content": content}, "text": content, "finish_reason": reason}
    return {"object": kind, "choices": [choice], "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "gate": gate}


def check_completion(completion: dict[str, Any], *, chat: bool, mode: str) -> None:
    assert completion["object"] == ("chat.completion" if chat else "text_completion")
    [choice] = completion["choices"]
    content = choice["message"]["content"] if chat else choice["text"]
    assert isinstance(content, str) and isinstance(choice["finish_reason"], str)
    for count in ("prompt_tokens", "completion_tokens"):
        value = completion["usage"][count]
        assert isinstance(value, int) and 0 <= value < 10**9
    gate = completion["gate"]
    if mode == "off":
        assert gate == {"mode": "off"}
        return
    assert gate["decision"] in {"answer", "hedge", "abstain"} and gate["mode"] == mode
    assert isinstance(gate["errors"], dict)


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("GATE_FUZZ_RANDOM") is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fault=faults, target=targets, client=clients)
# What the fuzzer found, kept as examples that run every time:
@example(("content", "a\ud800b"), "answer", PLAIN)  # a lone surrogate in the answer: Starlette's JSON raised (500)
@example(("echo_key", "content"), "answer", {**PLAIN, "mode": "off"})  # the key quoted in the answer: served
@example(("huge", "content"), "answer", PLAIN)  # over max_upstream_bytes through litellm: relayed
@example(("logprobs", float("nan")), "sampling", PLAIN)  # NaN in P(True)'s verdict: a NaN confidence (500)
@example(("logprobs", 1000.0), "sampling", PLAIN)  # exp() overflowed in P(True) (500)
@example(("status", 404, "echo_key"), "answer", PLAIN)  # issue 17, item 1: the 404 branch skipped the scrubber
def test_whatever_the_upstream_sends_the_client_gets_a_completion_or_an_openai_error(served, fault, target, client):
    example = Example(fault, target)
    served.stub.script = lambda request, path: example(request, path, f"Bearer {KEY}")
    path, body = request_body(client)
    try:
        response = httpx.post(served.url + path, json=body, headers=auth(), timeout=30)
    finally:
        served.stub.script = None
    served.sent += 1
    if REPORT:
        record(served, example, client, response)
    check_reply(response, example, client)


def record(served: Served, example: Example, client: dict[str, Any], response: httpx.Response) -> None:
    """One line for the reliability benchmark: what was sent, what came back."""
    code = None if response.status_code == 200 else response.json().get("error", {}).get("code")
    lost = None
    if response.status_code == 200 and client["mode"] != "off" and not client["stream"]:
        lost = len(response.json()["gate"]["errors"])
    line = {
        "transport": served.transport,
        "fault": example.fault[0],
        "target": example.target,
        "calls_hit": len(example.hit),
        "status": response.status_code,
        "code": code,
        "signals_lost": lost,
        **client,
    }
    with open(REPORT, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")
