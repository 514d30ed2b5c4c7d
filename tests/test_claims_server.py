"""Long answers claim by claim through ``gate serve``: real uvicorn on loopback, the real ``openai`` client, and
a scripted OpenAI-compatible upstream (exact answers and samples); an agent loop whose final answer does or
does not stay with what the tool returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from estimators.testing import ScriptedLLM
from gate.claim_judge import ClaimJudge
from gate.config import Settings
from gate.pipeline import Budget, Gate
from gate.server.app import create_app
from gate.server.claim_replies import streams_claims
from gate.server.policy import Plan
from gate.server.wire import ChatRequest
from tests.stub_upstream import RawAnswer, StubState, stub_upstream
from tests.test_agent_loop import WEATHER, get_weather, weather_model
from tests.test_claims_gate import ANSWER, SAMPLE, SUITE, WholeAnswer, saved_claim_artifact
from tests.test_claims_gate_stream import StreamingLLM
from tests.test_server_client import running

MODEL = "openai/stub"
KEY, PRIVILEGED = "sk-claims-client", "sk-claims-operator"
QUESTION = "Who was Ada Lovelace? Tell me about her life."
NOTE = "Note: 1 statement(s) that could not be verified were removed."
STRUCK = f"Ada Lovelace was a mathematician. She was born in 1815.\n\n{NOTE}"
FORECAST = "Expect heavy snow in Lyon tomorrow."


def scripted(request: dict[str, Any]) -> dict[str, Any]:
    """Ada Lovelace: a long answer with one invented claim, and samples that agree on the rest; else weather."""
    messages = request["messages"]
    if messages[-1]["role"] == "tool":
        result = json.loads(messages[-1]["content"])
        text = f"It is {result['temperature_c']} degrees in {result['city']}."
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        return {"content": f"{text} {FORECAST}" if "forecast" in question else text}
    if "Ada" in messages[-1]["content"]:
        return {"content": SAMPLE if request.get("temperature") else ANSWER}
    return weather_model(request)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, StubState, Path]]:
    folder = tmp_path_factory.mktemp("claims")
    state = StubState(reply=scripted)
    with stub_upstream(state) as upstream:
        settings = Settings(
            model=MODEL,
            api_base=upstream,
            api_key="sk-upstream",
            transport="direct",
            signals=["logprob_min"],
            max_tokens=128,
            api_keys=[KEY],
            privileged_api_keys=[PRIVILEGED],
            claims="annotate",
            claims_grounded_artifact=saved_claim_artifact(folder, "claim_support"),
            claims_closed_artifact=saved_claim_artifact(folder, "claim_consistency"),
            audit_path=folder / "audit.jsonl",
        )
        with running(create_app(settings), ready_within_s=30) as (url, _):
            yield url, state, folder / "audit.jsonl"


def client_for(served: tuple[str, StubState, Path], key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0], api_key=key, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, claims: str | None = None, **gate: Any) -> tuple[str, dict[str, Any]]:
    extra = {"gate": {**gate, **({"claims": claims} if claims else {})}}
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=200, extra_body=extra
    )
    return completion.choices[0].message.content or "", (completion.model_extra or {})["gate"]


def streamed(client: openai.OpenAI, claims: str, *, chat: bool = True) -> tuple[list[str], dict[str, Any]]:
    """The text pieces of a streamed answer, in order, and the gate object of the last chunk."""
    extra = {"gate": {"claims": claims}}
    if chat:
        messages = [{"role": "user", "content": QUESTION}]
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True, extra_body=extra))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    else:
        chunks = list(client.completions.create(model=MODEL, prompt=QUESTION, stream=True, extra_body=extra))
        pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    return pieces, (chunks[-1].model_extra or {})["gate"]


def test_annotate_lists_every_claim_and_leaves_the_text(served) -> None:
    text, view = ask(client_for(served))
    assert text == ANSWER
    assert view["claims_policy"] == "annotate" and view["claim_route"] == "closed" and view["decision"] == "hedge"
    assert [(c["text"], c["decision"]) for c in view["claims"]] == [
        ("Ada Lovelace was a mathematician.", "keep"),
        ("She was born in 1815.", "keep"),
        ("She lived on the Moon.", "withhold"),
    ]
    assert all(ANSWER[c["span"][0] : c["span"][1]] == c["text"] for c in view["claims"])
    assert "not in references: Moon" in view["claims"][2]["evidence"]


def test_mark_flags_the_unsupported_claim_inline(served) -> None:
    text, view = ask(client_for(served), "mark")
    assert text == ANSWER.replace("She lived on the Moon.", "[unverified: She lived on the Moon.]")
    assert view["claims_policy"] == "mark"


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_strike_streams_the_kept_claims_and_never_the_struck_one(served, chat) -> None:
    pieces, view = streamed(client_for(served), "strike", chat=chat)
    assert "".join(pieces) == STRUCK
    assert len(pieces) > 3 and not any("Moon" in piece for piece in pieces)
    assert view["claims_policy"] == "strike" and [c["decision"] for c in view["claims"]][-1] == "withhold"
    assert "Moon" not in json.dumps(view)  # the struck claim is not in the gate object either


def test_observe_only_annotates_and_a_laxer_policy_is_refused(served) -> None:
    text, view = ask(client_for(served, PRIVILEGED), "strike", mode="observe")
    assert text == ANSWER and view["claims_policy"] == "annotate"
    with pytest.raises(openai.PermissionDeniedError, match="would show more of an unsupported claim"):
        ask(client_for(served), "off")


def test_the_audit_log_keeps_each_claims_verdict_without_its_text(served) -> None:
    ask(client_for(served), "strike")
    record = json.loads(served[2].read_text().splitlines()[-1])
    assert record["claim_route"] == "closed"
    assert [c["decision"] for c in record["claims"]] == ["keep", "keep", "withhold"]
    assert "Moon" not in json.dumps(record)


# --- an agent loop: the final answer is checked against the tool's result -------------------------------------


def agent(client: openai.OpenAI, question: str, claims: str, *, stream: bool) -> tuple[list[str], dict[str, Any]]:
    """Ask with the tool, run its call, send the result back; the final answer's pieces and gate object."""
    messages: list[Any] = [{"role": "user", "content": question}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    [call] = first.choices[0].message.tool_calls or []
    messages.append(first.choices[0].message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}))
    result = get_weather(**json.loads(call.function.arguments))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    extra = {"gate": {"claims": claims}}
    if not stream:
        final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], extra_body=extra)
        return [final.choices[0].message.content or ""], (final.model_extra or {})["gate"]
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], stream=True, extra_body=extra)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    return pieces, (chunks[-1].model_extra or {})["gate"]


def test_an_answer_that_restates_the_tool_result_is_kept(served) -> None:
    pieces, view = agent(client_for(served), "What is the weather in Paris?", "strike", stream=False)
    assert pieces == ["It is 18 degrees in Paris."]
    assert view["decision"] == "answer" and view["claim_route"] == "grounded" and view["kind"] == "grounded"
    assert [c["decision"] for c in view["claims"]] == ["keep"]


def test_a_detail_the_tool_never_returned_is_flagged_in_annotate(served) -> None:
    pieces, view = agent(
        client_for(served), "What is the weather in Paris, and the forecast?", "annotate", stream=False
    )
    assert pieces == [f"It is 18 degrees in Paris. {FORECAST}"]
    assert [c["decision"] for c in view["claims"]] == ["keep", "withhold"]
    assert "Lyon" in view["claims"][1]["evidence"].partition("not in references:")[2]


def test_a_detail_the_tool_never_returned_is_struck_from_the_stream(served) -> None:
    pieces, view = agent(client_for(served), "What is the weather in Paris, and the forecast?", "strike", stream=True)
    assert "".join(pieces).startswith("It is 18 degrees in Paris.\n\nNote: 1 statement(s)")
    assert not any("Lyon" in piece or "snow" in piece for piece in pieces)
    assert view["decision"] == "hedge" and view["claims_policy"] == "strike"


# --- streamed claim by claim ------------------------------------------------------------------------------------

EXPOSITORY = "Tell me about Ada Lovelace."


def claim_stream(served, claims: str, *, chat: bool = True) -> tuple[dict[str, str], list[str], dict[str, Any]]:
    """Headers, text pieces and final gate object of an expository request streamed through the real client."""
    client, extra = client_for(served), {"gate": {"claims": claims}}
    if chat:
        messages = [{"role": "user", "content": EXPOSITORY}]
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, stream=True, extra_body=extra
        )
        chunks = list(raw.parse())
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    else:
        raw = client.completions.with_raw_response.create(model=MODEL, prompt=EXPOSITORY, stream=True, extra_body=extra)
        chunks = list(raw.parse())
        pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    return dict(raw.headers), pieces, (chunks[-1].model_extra or {})["gate"]


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_a_long_answer_streams_claim_by_claim_and_the_struck_claim_never_goes_out(served, chat) -> None:
    headers, pieces, view = claim_stream(served, "strike", chat=chat)
    assert headers["x-gate-claims"] == "streamed" and "x-gate-decision" not in headers
    assert pieces == ["Ada Lovelace was a mathematician.", " She was born in 1815.", f"\n\n{NOTE}"]  # one per claim
    assert view["decision"] == "hedge" and view["claims_policy"] == "strike" and "Moon" not in json.dumps(view)


def test_mark_streams_the_marked_claim_and_annotate_the_text_as_written(served) -> None:
    _, marked_pieces, _ = claim_stream(served, "mark")
    assert marked_pieces[-1] == " [unverified: She lived on the Moon.]" and len(marked_pieces) == 3
    _, pieces, view = claim_stream(served, "annotate")
    assert "".join(pieces) == ANSWER and len(pieces) == 3
    assert [c["decision"] for c in view["claims"]] == ["keep", "keep", "withhold"]


def test_a_stream_cut_after_the_first_sentence_ends_with_an_error_event(served) -> None:
    state = served[1]
    head = {"id": "cut", "object": "chat.completion.chunk", "created": 0, "model": "stub"}
    words = ["Ada", " Lovelace", " was", " a", " mathematician.", " She", " was"]
    events = [{**head, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
    cut = "".join(f"data: {json.dumps(event)}\n\n" for event in events).encode()  # no [DONE]: the upstream died

    def script(request: dict[str, Any], path: str) -> RawAnswer | None:
        return RawAnswer(body=cut, content_type="text/event-stream", length=-1) if request.get("stream") else None

    state.script = script
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": EXPOSITORY}], "stream": True}
        response = httpx.post(served[0] + "/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    finally:
        state.script = None
    assert response.status_code == 200  # the first sentence had gone out: the status was sent with it
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    texts = [c["choices"][0]["delta"].get("content") for c in data if c.get("choices")]
    assert "Ada Lovelace was a mathematician." in texts
    assert data[-1]["error"]["code"] == "upstream_error" and "stub" not in json.dumps(data[-1])
    assert response.text.endswith("data: [DONE]\n\n")


def test_a_stream_that_fails_before_any_sentence_is_an_http_error(served) -> None:
    state = served[1]
    state.script = lambda request, path: RawAnswer(body=b"{}", status=503) if request.get("stream") else None
    try:
        with pytest.raises(openai.APIStatusError) as failed:
            claim_stream(served, "annotate")
    finally:
        state.script = None
    assert failed.value.status_code == 502  # an upstream failure, answered as a buffered request's would be


def test_an_upstream_that_cannot_stream_is_buffered_as_before() -> None:
    body = ChatRequest.model_validate({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    plan = Plan(mode="enforce", signals=None, cascade=True, budget=Budget(), claims="annotate")
    assert streams_claims(Gate(StreamingLLM(), WholeAnswer(), suite=SUITE, claims=ClaimJudge()), plan, body)
    assert not streams_claims(Gate(ScriptedLLM(), WholeAnswer(), suite=SUITE, claims=ClaimJudge()), plan, body)
    off = Plan(mode="enforce", signals=None, cascade=True, budget=Budget(), claims="off")
    assert not streams_claims(Gate(StreamingLLM(), WholeAnswer(), suite=SUITE, claims=ClaimJudge()), off, body)
