"""``Policy`` plans and renders without calling a model; the handler owns generation; one typed server state."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import SecretStr

from estimators.base import Cost, Generation, Signal
from estimators.testing import ScriptedLLM
from gate.assessment import Assessment
from gate.config import Settings
from gate.server.app import create_app
from gate.server.policy import Policy, several_choices_refusal
from gate.server.state import ServerState
from gate.server.wire import BadRequestError, ChatRequest, Scrubber
from tests.test_server import ANSWER_Q, MODEL, RULES, ask, make_gate, serving

SECRET = "sk-upstream-0123456789abcdef"


def policy(**settings: Any) -> Policy:
    return Policy.from_settings(Settings(model=MODEL, **settings))


def assessment(**fields: Any) -> Assessment:
    values: dict[str, Any] = {"question": "q?", "answer": "an answer", "decision": "answer", "calibration": "test"}
    return Assessment(**{**values, **fields})


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": MODEL, "messages": [{"role": "user", "content": "q?"}], **fields})


def test_render_builds_the_view_already_scrubbed_of_the_upstream_key():
    failed = Signal(name="consistency", error=f"upstream said: Incorrect API key provided: {SECRET}")
    rendered = policy(api_key=SecretStr(SECRET), include_original=True).render(
        "enforce", assessment(answer=f"echo {SECRET}", signals={"consistency": failed}, reasons=[SECRET])
    )
    assert SECRET not in repr(rendered.gate)
    assert rendered.gate["errors"]["consistency"].endswith("***")
    assert rendered.gate["original"] == "echo ***" and rendered.gate["reasons"] == ["***"]


def test_render_replaces_the_upstream_address_in_errors_but_not_in_the_answer():
    base = "http://user:pa55word@gpu-7.internal.example:8443/v1"
    failed = Signal(name="consistency", error="Cannot connect to host gpu-7.internal.example:8443 [('10.1.2.3', 8443)]")
    rendered = policy(api_base=base, include_original=True).render(
        "enforce",
        assessment(answer="ask gpu-7.internal.example:8443", signals={"consistency": failed}, reasons=[f"GET {base}"]),
    )
    error = rendered.gate["errors"]["consistency"]
    assert "gpu-7" not in error and "10.1.2.3" not in error and error.startswith("Cannot connect to host the upstream")
    assert rendered.gate["reasons"] == ["GET the upstream"] and "pa55word" not in repr(rendered.gate)
    assert rendered.gate["original"] == "ask gpu-7.internal.example:8443"  # the answer is the model's, unchanged


def test_render_of_a_pass_through_uses_the_generations_as_they_are():
    generations = [
        Generation(text=" one ", finish_reason="length", usage=Cost(calls=1, prompt_tokens=5, completion_tokens=2)),
        Generation(text="two", usage=Cost(completion_tokens=1)),
    ]
    reply = policy().render("off", generations)
    assert reply.texts == ["one", "two"] and reply.finish_reasons == ["length", "stop"]
    assert reply.usage == Cost(calls=1, prompt_tokens=5, completion_tokens=3)
    assert reply.gate == {"mode": "off"} and reply.headers == {"x-gate-mode": "off"}


@pytest.mark.parametrize(
    ("mode", "decision", "content", "reason"),
    [
        ("enforce", "answer", "an answer", "length"),
        ("enforce", "abstain", "I can't answer", "stop"),
        ("observe", "abstain", "an answer", "length"),
    ],
)
def test_render_of_an_assessment(mode: Any, decision: Any, content: str, reason: str):
    reply = policy().render(mode, assessment(decision=decision, probability=0.25, finish_reason="length"))
    assert reply.texts[0].startswith(content) and reply.finish_reasons == [reason]
    assert reply.headers == {"x-gate-mode": mode, "x-gate-decision": decision, "x-gate-confidence": "0.2500"}
    assert reply.gate["mode"] == mode and reply.gate["decision"] == decision


def test_plan_checks_the_served_model_and_the_answer_length_before_the_options():
    with pytest.raises(BadRequestError) as wrong_model:
        policy().plan(request(model="other", n=2), signals=["logprob_min"])
    assert wrong_model.value.param == "model"
    with pytest.raises(BadRequestError) as too_long:
        policy(max_answer_tokens=8).plan(request(max_tokens=9), signals=["logprob_min"])
    assert too_long.value.param == "max_tokens"
    plan = policy().plan(request(gate={"estimators": ["logprob_min"]}), signals=["logprob_min", "logprob_mean"])
    assert plan.mode == "enforce" and plan.signals == ("logprob_min",)


def test_the_several_choices_refusal_is_one_text_for_the_proxy_and_the_guardrail():
    assert several_choices_refusal(1, "enforce") is None and several_choices_refusal(3, "off") is None
    refusal = several_choices_refusal(2, "observe")
    assert refusal is not None and refusal.startswith("n must be 1 while the gate is on (mode 'observe')")
    with pytest.raises(BadRequestError) as refused:
        policy(allowed_modes=["observe"], mode="observe").plan(request(n=2), signals=[])
    assert refused.value.message == refusal and refused.value.param == "n"


def test_the_scrubber_changes_nothing_without_a_key_and_never_shows_it():
    view = {"errors": {"a": "x"}, "reasons": ["y"]}
    assert Scrubber().view(view) == view
    assert SECRET not in repr(Scrubber((SECRET,))) and SECRET not in repr(policy(api_key=SecretStr(SECRET)))
    assert Scrubber().text("POST http://10.0.0.5:8000/v1/chat failed") == "POST the upstream failed"


def test_the_scrubber_masks_the_password_of_api_base_in_every_form_an_upstream_may_quote_it():
    """Found by the canary test: an upstream quoting the Basic credentials it got (base64 of user:password)."""
    scrubber = Scrubber.from_settings(Settings(model=MODEL, api_base="http://gate:p%40ss-w0rd@llm.internal/v1"))
    basic = base64.b64encode(b"gate:p@ss-w0rd").decode()
    quoted = f"no entry for Basic {basic} (gate:p@ss-w0rd; as sent: gate:p%40ss-w0rd)"
    assert scrubber.secret_free(quoted) == "no entry for Basic *** (gate:***; as sent: gate:***)"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("Cannot connect to host [::1]:8000 ssl:default", "Cannot connect to host the upstream ssl:default"),
        ("GET http://user:pw@[::1]:9/v1/chat).", "GET the upstream)."),
        ("Connect call failed ('10.0.0.5', 8000)", "Connect call failed the upstream"),
        ("host 10.0.0.1:80.", "host the upstream."),
        ("probability 0.67 is between [0.30:0.70]; version 1.2.3.4.5", None),  # not addresses: unchanged
    ],
)
def test_the_scrubber_replaces_any_url_or_ip_address(text: str, scrubbed: str | None):
    assert Scrubber().text(text) == (scrubbed or text)


async def test_the_app_holds_one_typed_state_and_the_gate_once_loaded():
    gate = make_gate()
    async with serving(gate) as client:
        state = client.app.state.server  # type: ignore[attr-defined]
        assert isinstance(state, ServerState) and state.gate is gate and state.load_error is None
        assert state.settings.model == MODEL and state.slots.limit == state.settings.max_concurrency


async def test_mode_off_generates_in_the_handler_without_the_gate_pipeline():
    llm = ScriptedLLM(rules=RULES)
    gate = make_gate(llm)
    async with serving(gate, allowed_modes=["off", "enforce"]) as client:
        response = await ask(client, ANSWER_Q, gate={"mode": "off"}, n=2)
    assert response.status_code == 200 and response.headers["x-gate-mode"] == "off"
    assert [c["message"]["content"] for c in response.json()["choices"]] == ["William Shakespeare"] * 2
    assert gate.assessed == []  # the pipeline never ran: the handler asked the model itself
    assert [call.n for call in llm.calls] == [2]


def test_create_app_stores_the_state_and_nothing_else_on_app_state():
    app = create_app(Settings(model=MODEL), gate=make_gate())
    assert isinstance(app.state.server, ServerState)
    for name in ("settings", "policy", "slots", "metrics", "audit", "gate", "load_error", "started"):
        assert not hasattr(app.state, name), name
