"""Schemathesis against the proxy's own OpenAPI schema, over HTTP to a real uvicorn on loopback.

Schemathesis generates requests for every operation the schema declares (valid ones and, in negative mode,
ones that break the schema) and sends them to the running server. Whatever it sends, the server must
answer without a 5xx; an error must be OpenAI's error shape with no traceback; a 200 from the proxy routes
must carry the ``gate`` object (or be a pass-through in ``mode: off``). The number of examples is bounded
so the run takes seconds; the gate runs over the scripted LLM, so failures point at the server, not a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from estimators.testing import ScriptedLLM
from gate.config import Settings
from gate.server.app import create_app
from tests.test_server import MODEL, RULES, make_gate
from tests.test_server_client import running

MAX_EXAMPLES = 30


def _app() -> Any:
    return create_app(Settings(model=MODEL, max_answer_tokens=64), gate=make_gate(ScriptedLLM(rules=RULES)))


schema = schemathesis.openapi.from_dict(_app().openapi())


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Name the served model in most generated bodies, so fuzzing reaches past the unknown-model check."""
    if isinstance(body, dict) and isinstance(body.get("model"), str) and hash(json.dumps(body, default=str)) % 4:
        body["model"] = MODEL
    return body


@pytest.fixture(scope="module")
def server_root() -> Iterator[str]:
    with running(_app()) as (url, _):
        yield url.removesuffix("/v1")


def _header(response: Any, name: str) -> str | None:
    values = response.headers.get(name)  # schemathesis keeps every value of a header, as a list
    return values[0] if values else None


def _check_answer(path: str, response: Any) -> None:
    text = response.text
    assert "Traceback" not in text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
    elif path in ("/v1/chat/completions", "/v1/completions") and response.status_code == 200:
        if (_header(response, "content-type") or "").startswith("text/event-stream"):
            last = [line for line in text.splitlines() if line.startswith("data: {")][-1]
            assert "gate" in json.loads(last.removeprefix("data: "))
        else:
            assert "gate" in response.json() or _header(response, "x-gate-decision") is None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_request_the_schema_allows_or_breaks_gets_an_answer_in_the_openai_shape(case, server_root):
    response = case.call(base_url=server_root, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
    _check_answer(case.path, response)
