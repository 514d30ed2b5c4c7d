"""A tiny OpenAI-compatible upstream on loopback, for testing the upstream clients over real HTTP.

By default it answers every POST with a valid completion of ``StubState.text``; ``StubState.reply`` scripts
the assistant message per request (tool calls included), and a request with ``stream: true`` is answered with
SSE chunks in OpenAI's shape, as a real server streams. A test that needs the upstream to misbehave sets
``StubState.script``: for each request it returns the exact bytes to send (a :class:`RawAnswer`: any status,
content type, headers, declared length, a truncated body, a delay), or ``None`` for the normal answer. The
stub speaks HTTP/1.0, so every answer ends by closing its connection.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    """One upstream answer as it goes on the wire."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/json"  # None: no content-type header
    headers: tuple[tuple[str, str], ...] = ()
    length: int | None = None  # the content-length declared: None the body's own, -1 none (the body ends at close)
    delay_s: float = 0.0  # wait this long before answering (past the client's timeout: a hang)


Script = Callable[[dict[str, Any], str], RawAnswer | None]
"""(request body, request path) -> what to send, or None for the stub's normal answer."""


@dataclass
class StubState:
    """What the stub answers, and what it received."""

    text: str = "Paris"
    fail_first: int = 0
    fail_status: int = 500
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # request targets: absolute URIs when it serves as a proxy
    declare_length: bool = True  # False: no content-length, the body ends when the connection closes
    gzip: bool = False  # send the body gzip-compressed (content-encoding: gzip)
    broken_writes: int = 0  # answers the client stopped reading before their end
    script: Script | None = None  # scripted raw answers (see the module docstring)
    headers: list[dict[str, str]] = field(default_factory=list)  # request headers, in order
    # request -> the assistant message ({"content": ..., "tool_calls": [...]}); None: the fixed text
    reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _message(state: StubState, request: dict[str, Any]) -> dict[str, Any]:
    message = state.reply(request) if state.reply is not None else {"content": state.text}
    return {"role": "assistant", "content": None, **message}


def _chat_body(state: StubState, request: dict[str, Any]) -> dict[str, Any]:
    message = _message(state, request)
    text = message["content"] or ""
    words = text.split()
    logprobs = None
    if request.get("logprobs"):
        k = int(request.get("top_logprobs") or 0)
        logprobs = {
            "content": [
                {
                    "token": w,
                    "logprob": -0.25,
                    "bytes": None,
                    "top_logprobs": [{"token": w, "logprob": -0.25, "bytes": None}][:k]
                    + [{"token": "x", "logprob": -3.0, "bytes": None}] * max(0, k - 1),
                }
                for w in words
            ]
        }
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    choices = [
        {"index": i, "message": message, "finish_reason": finish, "logprobs": logprobs if words else None}
        for i in range(int(request.get("n") or 1))
    ]
    usage = {"prompt_tokens": 7, "completion_tokens": len(words) * len(choices), "total_tokens": 7 + len(words)}
    return {
        "id": "stub-1",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model"),
        "choices": choices,
        "usage": usage,
    }


def _text_body(state: StubState, request: dict[str, Any]) -> dict[str, Any]:
    words = state.text.split()
    logprobs = None
    if request.get("logprobs") is not None:
        logprobs = {
            "tokens": words,
            "token_logprobs": [-0.5] * len(words),
            "top_logprobs": [{w: -0.5} for w in words],
            "text_offset": [0] * len(words),
        }
    choices = [
        {"index": i, "text": state.text, "finish_reason": "stop", "logprobs": logprobs}
        for i in range(int(request.get("n") or 1))
    ]
    return {
        "id": "stub-2",
        "object": "text_completion",
        "created": 0,
        "model": request.get("model"),
        "choices": choices,
        "usage": {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 9},
    }


def _handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(request)
            state.paths.append(self.path)
            state.headers.append(dict(self.headers.items()))
            scripted = state.script(request, self.path) if state.script is not None else None
            if scripted is not None:
                self._send_raw(scripted)
            elif len(state.requests) <= state.fail_first:
                self._send(state.fail_status, {"error": {"message": "stub failure", "type": "server_error"}})
            elif self.path.endswith("/chat/completions") and request.get("stream"):
                self._stream(_chat_body(state, request))
            elif self.path.endswith("/chat/completions"):
                self._send(200, _chat_body(state, request))
            else:
                self._send(200, _text_body(state, request))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if state.gzip:
                payload = gzip.compress(payload, compresslevel=1)
                self.send_header("content-encoding", "gzip")
            if state.declare_length:
                self.send_header("content-length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except OSError:  # the client closed the connection mid-answer
                state.broken_writes += 1
                self.close_connection = True

        def _stream(self, body: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for chunk in _chunks(body):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

        def _send_raw(self, answer: RawAnswer) -> None:
            time.sleep(answer.delay_s)
            try:
                self.send_response(answer.status)
                if answer.content_type is not None:
                    self.send_header("content-type", answer.content_type)
                for name, value in answer.headers:
                    self.send_header(name, value)
                length = len(answer.body) if answer.length is None else answer.length
                if length >= 0:  # longer than the body: the connection closes before the declared end
                    self.send_header("content-length", str(length))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:  # the client gave up first (a timeout, or the size cap)
                state.broken_writes += 1
            self.close_connection = True

    return Handler


def _chunks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A whole chat completion as OpenAI streams it: role, words, tool calls (id and name, then arguments)."""
    [choice] = body["choices"]
    message = choice["message"]
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": 0, "model": body["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\s*\S+", message["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = function["arguments"]
        for start in range(0, len(arguments), 5):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 5]}}]})
    yield chunk({}, choice["finish_reason"])
    yield {**head, "choices": [], "usage": body["usage"]}


@contextmanager
def stub_upstream(state: StubState) -> Iterator[str]:
    """Serve ``state`` on a free loopback port; yields the base URL (ending in ``/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
