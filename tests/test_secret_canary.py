"""Secrets never leave (issue 17): a canary upstream key and a canary password, searched for at every exit.

The gate is configured with a recognisable upstream API key, or with a password in ``api_base`` (the two
together are refused when the gate is built: an OpenAI-compatible upstream gets one Authorization header),
over both transports, and serves real HTTP on loopback in front of a stub upstream that quotes whatever
credentials it was sent: in error messages (401, 403, 404, 400, 429, 500, 503), in response headers, in
HTML and non-JSON bodies, in the answer itself, in SSE, in the gate's own sampling calls; it also hangs,
answers too much, or is not there at all. Every logger runs at DEBUG (litellm's, httpx's, aiohttp's and
uvicorn's included) and everything written to stdout and stderr is captured, the audit log is on,
``/metrics`` is scraped and ``gate config`` / ``gate serve`` print their output. Then the canaries (and a
distinctive piece of each, in case something masks a secret only partly) are searched for in all of it.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gate.backends.litellm_client import check_model_name, import_litellm, provider_supports_n
from gate.cli.main import app as cli
from gate.config import Settings
from gate.server.app import create_app, uvicorn_options
from tests.stub_upstream import RawAnswer, StubState, _chat_body, _text_body, stub_upstream
from tests.test_server_client import running

KEY = "sk-canary-KEYPART-7f3a9c2e5b"  # the upstream API key
PASSWORD = "pw-canary-PWPART-4d8e1f"  # the password in api_base
FRAGMENTS = (KEY, PASSWORD, "KEYPART-7f3a9c", "PWPART-4d8e1f", base64.b64encode(f"gate:{PASSWORD}".encode()).decode())
ADMIN = "sk-canary-admin-client-000"  # a privileged client key: any mode, gate.original
MODEL = "openai/stub"
TIMEOUT_S = 1.0
STATUSES = {"s400": 400, "s401": 401, "s403": 403, "s404": 404, "s429": 429, "s500": 500, "s503": 503}
SERVED = ["ok", "echo-content", "echo-header", "sampling-500", "sampling-not-json", "sampling-echo-content"]
FAILED = ["html-500", "not-json", "malformed", "huge", "sse", "hang", *STATUSES]
CASES = SERVED + FAILED
"""Cases the client gets an answer for (asked plain, streamed, in mode off and as a text completion), and
cases that fail before any answer exists (asked once: how the request was made changes nothing there)."""
ENV = ("GATE_CONFIG", "GATE_MODEL", "GATE_API_BASE", "GATE_API_KEY", "GATE_TRANSPORT", "GATE_SIGNALS")
ENV += ("GATE_UPSTREAM_API_KEY", "GATE_UPSTREAM_API_BASE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "GATE_LOG_LEVEL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def litellm_imported() -> None:
    import_litellm()
    check_model_name(MODEL)
    provider_supports_n(MODEL)


# --- an upstream that quotes the credentials it was sent ------------------------------------------------------


def credentials(headers: dict[str, str]) -> str:
    """What a careless upstream quotes back: the Authorization header, decoded when it is Basic."""
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        return f"{authorization} ({base64.b64decode(authorization[6:]).decode()})"
    return authorization or "(no credentials)"


def case_of(request: dict[str, Any]) -> str:
    text = request.get("prompt") or json.dumps(request.get("messages"))
    return next((case for case in CASES if f"[{case}]" in text), "ok")


def is_answer_call(request: dict[str, Any]) -> bool:
    """The answer call asks 5 log-prob alternatives; consistency's samples ask 1, P(True)'s is a text prompt."""
    return "messages" in request and request.get("top_logprobs") in (5, None) and int(request.get("n") or 1) == 1


def upstream_answer(request: dict[str, Any], path: str, quoted: str) -> RawAnswer | None:
    case = case_of(request)
    if case.startswith("sampling-"):
        if is_answer_call(request):
            return None
        case = case.removeprefix("sampling-")
    state = StubState(text="William Shakespeare")
    body = _chat_body(state, request) if path.endswith("/chat/completions") else _text_body(state, request)
    error = json.dumps({"error": {"message": f"Incorrect API key provided: {quoted}", "type": "invalid_request_error"}})
    echo = (("x-echo", quoted), ("www-authenticate", f'Bearer realm="{quoted}"'))
    if case in STATUSES:
        return RawAnswer(error.encode(), status=STATUSES[case], headers=echo)
    if case in ("echo-content", "echo-header"):
        choice = body["choices"][0]
        if case == "echo-content":
            choice.setdefault("message", {})["content"] = choice["text"] = f"You sent {quoted}."
        return RawAnswer(json.dumps(body).encode(), headers=echo)
    answers = {
        "html-500": RawAnswer(f"<html>no entry for {quoted}</html>".encode(), status=500, content_type="text/html"),
        "500": RawAnswer(error.encode(), status=500, headers=echo),
        "not-json": RawAnswer(f"upstream confused by {quoted}".encode()),
        "malformed": RawAnswer(json.dumps({"choices": f"for {quoted}", "usage": quoted}).encode()),
        "huge": RawAnswer(json.dumps({**body, "padding": quoted * 40_000}).encode()),
        "sse": RawAnswer(f"data: {json.dumps(body)}\n\ndata: {quoted}\n\n".encode(), content_type="text/event-stream"),
        "hang": RawAnswer(json.dumps(body).encode(), delay_s=TIMEOUT_S + 1.5),
    }
    return answers.get(case)


# --- capturing every exit ------------------------------------------------------------------------------------


@dataclass
class Exits:
    """Everything that left the gate, by where it went."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, where: str, text: str) -> None:
        self.texts.setdefault(where, []).append(text)

    def leaks(self) -> list[tuple[str, str, str]]:
        found = []
        for where, texts in self.texts.items():
            for text in texts:
                for fragment in FRAGMENTS:
                    if fragment in text:
                        at = text.index(fragment)
                        found.append((where, fragment, text[max(0, at - 150) : at + 80]))
        return found


class Capture(logging.Handler):
    """Keeps every record, formatted with its exception and stack, as text."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.lines.append(self.format(record))


@contextmanager
def every_logger_at_debug() -> Iterator[Capture]:
    """All loggers, those that exist now (litellm's have their own handlers) and those made later, at DEBUG."""
    capture = Capture()
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *(lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = [(lg, lg.level, lg.propagate, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if not lg.propagate:
            lg.addHandler(capture)
    logging.getLogger().addHandler(capture)
    try:
        yield capture
    finally:
        for lg, level, propagate, disabled in saved:
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled
            if capture in lg.handlers:
                lg.removeHandler(capture)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- driving the gate ----------------------------------------------------------------------------------------


def drive(url: str, exits: Exits, cases: list[str]) -> int:
    """Each case (see ``CASES``), then the other pages; returns the number of completion requests."""
    sent = 0
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30) as client:
        for case in cases:
            question = f"[{case}] Who wrote Hamlet?"
            chat = {"model": MODEL, "messages": [{"role": "user", "content": question}]}
            variants = [chat] if case in FAILED else [chat, {**chat, "stream": True}, {**chat, "gate": {"mode": "off"}}]
            for body in variants:
                record(exits, "response", client.post("/chat/completions", json=body))
            if case in SERVED:
                record(exits, "response", client.post("/completions", json={"model": MODEL, "prompt": question}))
            sent += len(variants) + (case in SERVED)
        root = url.removesuffix("/v1")
        for path in ("/v1/models", "/healthz", "/readyz", "/metrics"):
            record(exits, "metrics" if path == "/metrics" else "response", client.get(root + path))
    return sent


def record(exits: Exits, where: str, response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    exits.add(where, response.text)
    exits.add("response headers", str(response.headers.multi_items()))


def serve_and_drive(settings: Settings, exits: Exits, cases: list[str]) -> None:
    app = create_app(settings)
    with running(app, ready_within_s=30, **uvicorn_options(settings)) as (url, _):
        sent = drive(url, exits, cases)
    assert settings.audit_path is not None  # every request reached the gate: one audit line each
    assert len(settings.audit_path.read_text(encoding="utf-8").splitlines()) == sent


def settings_for(transport: str, api_base: str, tmp_path: Path, *, key: bool, retries: bool) -> Settings:
    audit = tmp_path / f"audit-{transport}-{'key' if key else 'password'}-{len(list(tmp_path.iterdir()))}.jsonl"
    return Settings(
        model=MODEL,
        api_base=api_base,
        api_key=KEY if key else None,
        transport=transport,
        signals=["logprob_min", "consistency", "p_true"],
        cascade=False,
        max_retries=1 if retries else 0,
        timeout_s=TIMEOUT_S,
        max_upstream_bytes=200_000,
        privileged_api_keys=[ADMIN],
        familiarity_cache="off",
        audit_path=audit,
        audit_question="text",
        log_level="debug",
    )


def cli_output(exits: Exits, monkeypatch, args: list[str], env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, args)
    exits.add("cli", result.output + str(result.exception or ""))
    for name in env:
        monkeypatch.delenv(name)


def test_the_canary_key_and_password_reach_no_exit(tmp_path, monkeypatch, capfd):
    exits = Exits()
    stub = StubState()
    stub.script = lambda request, path: upstream_answer(request, path, credentials(stub.headers[-1]))
    with every_logger_at_debug() as logs, stub_upstream(stub) as upstream:
        # with the password, failures are retried: the retry's log line quoted the password (test_llm_client
        # checks the key's); each retry waits about 0.5 s, so the other configurations make none
        with_password = upstream.replace("http://", f"http://gate:{PASSWORD}@")
        for transport in ("direct", "litellm"):
            for key, api_base in ((True, upstream), (False, with_password)):
                serve_and_drive(settings_for(transport, api_base, tmp_path, key=key, retries=not key), exits, CASES)
            unreachable = f"http://gate:{PASSWORD}@127.0.0.1:{closed_port()}/v1"
            settings = settings_for(transport, unreachable, tmp_path, key=False, retries=False)
            serve_and_drive(settings, exits, ["ok"])
        env = {"GATE_MODEL": MODEL, "GATE_API_BASE": with_password, "GATE_API_KEY": KEY}
        cli_output(exits, monkeypatch, ["config"], env)
        cli_output(exits, monkeypatch, ["config"], {**env, "GATE_MAX_RETRIES": "many"})  # a configuration error
        cli_output(exits, monkeypatch, ["serve", "--port", str(closed_port())], env)  # refused: key and password
        no_key = {"GATE_MODEL": MODEL, "GATE_API_BASE": with_password, "GATE_MAX_RETRIES": "1"}
        cli_output(exits, monkeypatch, ["ask", "[s500] Who wrote Hamlet?"], no_key)  # the error, after a retry
    for audit in tmp_path.glob("audit-*.jsonl"):
        exits.add("audit", audit.read_text(encoding="utf-8"))
    exits.add("log", "\n".join(logs.lines))
    out, err = capfd.readouterr()
    exits.add("stdout/stderr", out + err)
    assert logs.count > 1000 and any("litellm" in line.lower() for line in logs.lines)  # it did log at DEBUG
    assert len(stub.requests) > 100 and "Bearer " + KEY in {h.get("Authorization") for h in stub.headers}
    cli = "".join(exits.texts["cli"])
    assert "one Authorization header" in cli and "answered 500" in cli  # serve refused key and password; ask failed
    leaks = exits.leaks()
    assert not leaks, summary(leaks)


def summary(leaks: list[tuple[str, str, str]]) -> str:
    """One line per (exit, fragment) with a count and the first place it was found."""
    first: dict[tuple[str, str], str] = {}
    counts: dict[tuple[str, str], int] = {}
    for where, fragment, around in leaks:
        first.setdefault((where, fragment), around)
        counts[where, fragment] = counts.get((where, fragment), 0) + 1
    return "\n".join(f"{where} x{counts[key]} {key[1]!r}: ...{around!r}" for key, around in first.items())
