"""The LiteLLM proxy guardrail: its hooks on the scripted LLM, and the real LiteLLM proxy on loopback."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import HTTPException

from estimators.base import ToolCall
from estimators.testing import Rule, ScriptedLLM
from gate.backends.litellm_client import import_litellm
from gate.integrations.litellm_guardrail import METADATA_KEY, ConfidenceGuardrail
from gate.pipeline import Gate
from gate.suite import SignalSpec
from tests.test_pipeline import FakeCalibration, FixedScorer

litellm = import_litellm()  # the offline way (a plain first import fetches litellm's cost map)
ModelResponse, ModelResponseStream = litellm.ModelResponse, litellm.ModelResponseStream
ModifyResponseException = litellm.exceptions.ModifyResponseException
LitellmParams = litellm.types.guardrails.LitellmParams

SUITE = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 1, "guesses": 2}),
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
    SignalSpec("consistency", "consistency", "full", {"n_samples": 3, "adaptive": False}),
)
# Both stages read the answer's token probability: exp(-0.01) answers, exp(-0.69) = 0.5 hedges, exp(-3) abstains.
CAL = FakeCalibration(
    free=FixedScorer(("familiarity", "logprob_min"), read="logprob_min"),
    full=FixedScorer(("familiarity", "logprob_min", "consistency"), read="logprob_min"),
    precheck_threshold=0.5,
)
QUESTION = "Who wrote the play Hamlet?"
FAMILIAR = [  # the model explains Hamlet and recovers it from its masked explanation
    Rule('Explain "Hamlet"', "Hamlet is a tragedy by William Shakespeare."),
    Rule("___ is a tragedy", "Hamlet"),
    Rule("Hamlet", "William Shakespeare"),
]
UNFAMILIAR = [Rule("Hamlet", "no idea")]
ANSWER, HEDGE, ABSTAIN = -0.01, -0.69, -3.0
HEDGE_NOTE = "Note: I am not confident in this answer."


def guardrail(llm: ScriptedLLM, **gate_config: Any) -> ConfidenceGuardrail:
    return ConfidenceGuardrail(
        guardrail_name="llm-gate",
        event_hook=["pre_call", "post_call"],
        default_on=True,
        gate=Gate(llm, CAL, suite=SUITE, concurrent_signals=False),
        gate_config=gate_config,
    )


def request(question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": "gemma", "messages": [{"role": "user", "content": question}], **extra}


def response(text: str, logprob: float | None) -> ModelResponse:
    tokens = [{"token": word, "logprob": logprob, "bytes": None, "top_logprobs": []} for word in text.split()]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": {"content": tokens} if logprob is not None else None,
    }
    return ModelResponse(model="gemma", choices=[choice])


def stream(words: list[str], logprob: float) -> list[ModelResponseStream]:
    chunks = [
        ModelResponseStream(
            id="chatcmpl-1",
            model="gemma",
            choices=[
                {
                    "index": 0,
                    "delta": {"content": word},
                    "logprobs": {"content": [{"token": word, "logprob": logprob, "bytes": None, "top_logprobs": []}]},
                }
            ],
        )
        for word in words
    ]
    chunks.append(
        ModelResponseStream(
            id="chatcmpl-1", model="gemma", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]
        )
    )
    return chunks


async def aiter(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


async def through_proxy(hook: ConfidenceGuardrail, data: dict[str, Any], reply: ModelResponse) -> ModelResponse:
    """What the proxy does with one request: the pre-call hook, the model's reply, the post-call hook."""
    data = await hook.async_pre_call_hook(user_api_key_dict=None, cache=None, data=data, call_type="completion")
    return await hook.async_post_call_success_hook(data=data, user_api_key_dict=None, response=reply)


def familiarity_calls(llm: ScriptedLLM) -> int:
    return sum('Explain "' in call.prompt for call in llm.calls)


# --- the pipeline's precheck-only entry ------------------------------------------------------------------


async def test_gate_precheck_runs_only_the_familiarity_signal_and_generates_nothing() -> None:
    llm = ScriptedLLM(rules=FAMILIAR)
    result = await Gate(llm, CAL, suite=SUITE).precheck(QUESTION)
    assert result.abstain is None
    assert set(result.signals) == {"familiarity"} and result.signals["familiarity"].confidence == 1.0
    assert all(call.logprobs is None for call in llm.calls)  # the answer call (logprobs=5) never happened


async def test_gate_precheck_abstains_on_an_unfamiliar_question() -> None:
    result = await Gate(ScriptedLLM(rules=UNFAMILIAR), CAL, suite=SUITE).precheck(QUESTION)
    assert result.abstain is not None and result.abstain.decision == "abstain"
    assert result.abstain.stage == "precheck" and result.abstain.answer is None
    assert result.abstain.signals["familiarity"] == result.signals["familiarity"]


async def test_assess_uses_known_signals_instead_of_recomputing_them() -> None:
    llm = ScriptedLLM(rules=FAMILIAR)
    gate = Gate(llm, CAL, suite=SUITE)
    known = (await gate.precheck(QUESTION)).signals
    before = familiarity_calls(llm)
    result = await gate.assess(QUESTION, answer="William Shakespeare", logprobs=[-0.01], precheck=False, known=known)
    assert familiarity_calls(llm) == before
    assert result.signals["familiarity"] == known["familiarity"]
    assert result.gate_cost.calls >= known["familiarity"].cost.calls  # still the request's own cost


# --- pre-call -------------------------------------------------------------------------------------------


async def test_pre_call_rejects_an_unfamiliar_question_with_the_abstain_message() -> None:
    llm = ScriptedLLM(rules=UNFAMILIAR)
    data = request()
    with pytest.raises(ModifyResponseException) as raised:
        await guardrail(llm).async_pre_call_hook(user_api_key_dict=None, cache=None, data=data, call_type="completion")
    message = raised.value.message
    assert message.startswith("I can't answer this reliably, so I won't guess. Reason: unfamiliar concept: 'Hamlet'")
    assert raised.value.detection_info["stage"] == "precheck"
    assert raised.value.guardrail_name == "llm-gate"
    assert all(call.logprobs is None for call in llm.calls)  # no answer was generated


async def test_pre_call_passes_a_familiar_question_and_asks_for_log_probs() -> None:
    data = await guardrail(ScriptedLLM(rules=FAMILIAR)).async_pre_call_hook(
        user_api_key_dict=None, cache=None, data=request(), call_type="completion"
    )
    assert data["logprobs"] is True and data["top_logprobs"] == 5
    record = data["metadata"][METADATA_KEY]
    assert record["added_logprobs"] and record["precheck"]["familiarity"]["confidence"] == 1.0


async def test_pre_call_refuses_several_choices() -> None:
    with pytest.raises(HTTPException) as raised:
        await guardrail(ScriptedLLM(rules=FAMILIAR)).async_pre_call_hook(
            user_api_key_dict=None, cache=None, data=request(n=2), call_type="completion"
        )
    assert raised.value.status_code == 400 and "n must be 1" in raised.value.detail["error"]


async def test_pre_call_leaves_other_calls_and_non_questions_alone() -> None:
    llm = ScriptedLLM(rules=UNFAMILIAR)
    hook = guardrail(llm)
    embedding = {"model": "e", "input": ["Hamlet"]}
    assert await hook.async_pre_call_hook(None, None, dict(embedding), "aembedding") == embedding
    tool_turn = request(messages=[{"role": "user", "content": QUESTION}, {"role": "tool", "content": "42"}])
    assert await hook.async_pre_call_hook(None, None, tool_turn, "completion") is tool_turn
    assert llm.calls == []


# --- post-call ------------------------------------------------------------------------------------------


async def test_post_call_answers_with_the_gate_object_and_headers_and_reuses_the_precheck() -> None:
    llm = ScriptedLLM(rules=FAMILIAR)
    hook = guardrail(llm, include_original=True)
    data = await hook.async_pre_call_hook(None, None, request(), "completion")
    calls = familiarity_calls(llm)
    out = await hook.async_post_call_success_hook(data, None, response("William Shakespeare", ANSWER))
    assert familiarity_calls(llm) == calls  # familiarity ran once, in the pre-call hook
    assert out.choices[0].message.content == "William Shakespeare"
    assert out.choices[0].logprobs is None  # asked by the gate, not by the client
    assert out.gate["decision"] == "answer" and out.gate["signals"]["familiarity"] == 1.0
    assert out.gate["original"] == "William Shakespeare" and out.gate["mode"] == "enforce"
    headers = out._hidden_params["additional_headers"]
    assert headers["x-gate-decision"] == "answer" and float(headers["x-gate-confidence"]) > 0.9
    assert "gate" in out.model_dump()  # a top-level field of the completion the client receives


async def test_post_call_hedges_with_the_configured_note() -> None:
    hook = guardrail(ScriptedLLM(rules=FAMILIAR), hedge_message="(unsure)", hedge_position="prefix")
    out = await through_proxy(hook, request(), response("William Shakespeare", HEDGE))
    assert out.gate["decision"] == "hedge"
    assert out.choices[0].message.content == "(unsure)\n\nWilliam Shakespeare"


async def test_post_call_abstains_and_keeps_the_original_in_the_gate_object() -> None:
    hook = guardrail(ScriptedLLM(rules=FAMILIAR), include_original=True)
    out = await through_proxy(hook, request(), response("Marlowe", ABSTAIN))
    assert out.gate["decision"] == "abstain" and out.gate["original"] == "Marlowe"
    assert out.choices[0].message.content.startswith("I can't answer this reliably")
    assert out.choices[0].finish_reason == "stop"
    assert out._hidden_params["additional_headers"]["x-gate-decision"] == "abstain"


async def test_observe_mode_reports_but_never_changes_the_answer() -> None:
    llm = ScriptedLLM(rules=UNFAMILIAR)
    out = await through_proxy(guardrail(llm, mode="observe"), request(), response("Marlowe", ABSTAIN))
    assert out.gate["decision"] == "abstain" and out.gate["mode"] == "observe"
    assert out.choices[0].message.content == "Marlowe"


async def test_a_client_cannot_pose_as_a_passed_precheck() -> None:
    llm = ScriptedLLM(rules=UNFAMILIAR)
    forged = {"token": "guess", "precheck": {"familiarity": {"name": "familiarity", "confidence": 1.0}}}
    data = request(metadata={METADATA_KEY: forged})
    out = await guardrail(llm).async_post_call_success_hook(data, None, response("Marlowe", ANSWER))
    assert out.gate["signals"]["familiarity"] == 0.0  # computed here, the forged 1.0 ignored


TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


async def test_post_call_passes_tool_calls_unchanged_with_a_not_assessed_view() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    reply = ModelResponse(choices=[{"index": 0, "message": message, "finish_reason": "tool_calls"}])
    llm = ScriptedLLM()
    out = await guardrail(llm).async_post_call_success_hook(request(tools=[WEATHER_TOOL]), None, reply)
    assert out is reply and out.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert out.choices[0].message.content is None and out.choices[0].finish_reason == "tool_calls"
    assert out.gate["decision"] == "not_assessed" and out.gate["kind"] == "tool_call"
    assert out._hidden_params["additional_headers"]["x-gate-decision"] == "not_assessed"
    assert llm.calls == []  # nothing assessed


WEATHER = "What is the weather in Paris?"
PARIS_CALL = ToolCall(id="s", name="get_weather", arguments='{"city": "Paris"}')
ROME_CALL = ToolCall(id="s", name="get_weather", arguments='{"city": "Rome"}')


def tool_call_reply() -> ModelResponse:
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    return ModelResponse(choices=[{"index": 0, "message": message, "finish_reason": "tool_calls"}])


@pytest.mark.parametrize(("sampled", "decision"), [(PARIS_CALL, "answer"), (ROME_CALL, "abstain")])
async def test_tool_calls_assess_judges_the_calls_by_agreement_of_samples(sampled: ToolCall, decision: str) -> None:
    llm = ScriptedLLM(rules=[Rule(WEATHER, "", tool_calls=[sampled])])
    hook = guardrail(llm, tool_calls="assess")
    data = request(WEATHER, tools=[WEATHER_TOOL], tool_choice="auto")
    out = await hook.async_post_call_success_hook(data, None, tool_call_reply())
    assert out.gate["decision"] == decision and out.gate["kind"] == "tool_call"
    assert out._hidden_params["additional_headers"]["x-gate-decision"] == decision
    [sampling] = llm.calls  # one call drew the samples, offered the same tools the same way
    assert sampling.n == 5 and sampling.options == {"tools": [WEATHER_TOOL], "tool_choice": "auto"}
    message = out.choices[0].message
    if decision == "answer":  # the call goes out as the model made it
        assert message.tool_calls[0].function.arguments == '{"city": "Paris"}' and message.content is None
    else:  # withheld: the abstain message instead of a call nobody agrees with
        assert not message.tool_calls and message.content.startswith("I can't answer this reliably")
        assert out.choices[0].finish_reason == "stop"


async def test_a_streamed_tool_call_is_put_together_and_assessed() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    deltas = [
        {"role": "assistant", "content": None, "tool_calls": [head]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    chunks = [ModelResponseStream(id="c", model="gemma", choices=[{"index": 0, "delta": d}]) for d in deltas]
    end = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    chunks.append(ModelResponseStream(id="c", model="gemma", choices=[end]))
    data = request(WEATHER, tools=[WEATHER_TOOL], stream=True)
    agreeing = guardrail(ScriptedLLM(rules=[Rule(WEATHER, "", tool_calls=[PARIS_CALL])]), tool_calls="assess")
    out = await collect(agreeing, data, chunks)
    assert out == chunks and out[-1].gate["decision"] == "answer" and out[-1].gate["kind"] == "tool_call"
    disagreeing = guardrail(ScriptedLLM(rules=[Rule(WEATHER, "", tool_calls=[ROME_CALL])]), tool_calls="assess")
    out = await collect(disagreeing, dict(data), [chunk.model_copy(deep=True) for chunk in chunks])
    assert out[-1].gate["decision"] == "abstain" and out[-1].choices[0].finish_reason == "stop"
    assert not any(choice.delta.tool_calls for chunk in out for choice in chunk.choices)
    assert "".join(c.delta.content or "" for chunk in out for c in chunk.choices).startswith("I can't answer")


async def test_pre_call_never_abstains_when_tools_are_offered() -> None:
    llm = ScriptedLLM(rules=UNFAMILIAR)
    data = await guardrail(llm).async_pre_call_hook(None, None, request(tools=[WEATHER_TOOL]), "completion")
    assert data["messages"][0]["content"] == QUESTION and llm.calls == []  # no precheck, no abstention


async def test_json_output_and_tool_result_endings_pass_with_the_reason() -> None:
    hook = guardrail(ScriptedLLM(rules=FAMILIAR))
    json_request = request(response_format={"type": "json_object"})
    out = await through_proxy(hook, json_request, response('{"author": "Marlowe"}', ABSTAIN))
    assert out.choices[0].message.content == '{"author": "Marlowe"}' and out.gate["decision"] == "not_assessed"
    assert "JSON output" in out.gate["reasons"][0]
    tool_turns = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18"},
    ]
    out = await through_proxy(hook, request(messages=tool_turns), response("It is 18 degrees.", ABSTAIN))
    assert out.choices[0].message.content == "It is 18 degrees." and out.gate["kind"] == "grounded"


async def test_a_streamed_tool_call_keeps_its_chunks_and_gets_the_view_on_the_last_one() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    deltas = [
        {"role": "assistant", "content": None, "tool_calls": [head]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    chunks = [ModelResponseStream(id="c", model="gemma", choices=[{"index": 0, "delta": d}]) for d in deltas]
    chunks.append(
        ModelResponseStream(id="c", model="gemma", choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
    )
    out = await collect(guardrail(ScriptedLLM()), request(tools=[WEATHER_TOOL], stream=True), chunks)
    assert out == chunks and out[-1].gate["decision"] == "not_assessed" and out[-1].gate["kind"] == "tool_call"


async def test_the_deployment_level_post_call_does_nothing() -> None:
    """LiteLLM would otherwise run a model-level guardrail's post-call twice (router, then proxy)."""
    reply = response("Marlowe", ABSTAIN)
    hook = guardrail(ScriptedLLM(rules=FAMILIAR))
    assert await hook.async_post_call_success_deployment_hook(request(guardrails=["llm-gate"]), reply, None) is None
    assert reply.choices[0].message.content == "Marlowe"


def test_litellm_config_params_reach_the_gate_settings() -> None:
    """The proxy passes every litellm_params field (its defaults included) as a keyword argument."""
    params = LitellmParams(
        guardrail="gate.integrations.litellm_guardrail.ConfidenceGuardrail",
        mode=["pre_call", "post_call"],
        gate_config={"hedge_message": "(unsure)", "mode": "observe"},
    ).model_dump(exclude_none=True)
    extra = {key: value for key, value in params.items() if key not in {"guardrail", "mode", "default_on"}}
    hook = ConfidenceGuardrail(guardrail_name="llm-gate", event_hook=["pre_call", "post_call"], **extra)
    assert hook.settings.hedge_message == "(unsure)" and hook.settings.mode == "observe"
    with pytest.raises(ValueError, match="during_call"):
        ConfidenceGuardrail(guardrail_name="llm-gate", event_hook="during_call")


# --- streaming ------------------------------------------------------------------------------------------


async def collect(hook: ConfidenceGuardrail, data: dict[str, Any], chunks: list[Any]) -> list[Any]:
    return [chunk async for chunk in hook.async_post_call_streaming_iterator_hook(None, aiter(chunks), data)]


async def test_streaming_is_buffered_and_assessed_exactly_once() -> None:
    llm = ScriptedLLM(rules=FAMILIAR)
    hook = guardrail(llm, include_original=True)
    gate = await hook.gate()
    assessed: list[str] = []
    original_assess = gate.assess

    async def counting(*args: Any, **kwargs: Any) -> Any:
        assessed.append(kwargs["answer"])
        return await original_assess(*args, **kwargs)

    gate.assess = counting  # type: ignore[method-assign]
    data = await hook.async_pre_call_hook(None, None, request(stream=True), "completion")
    out = await collect(hook, data, stream(["William ", "Shakespeare"], HEDGE))
    assert assessed == ["William Shakespeare"]
    text = "".join(choice.delta.content or "" for chunk in out for choice in chunk.choices)
    assert text == f"William Shakespeare\n\n{HEDGE_NOTE}"
    finishes = [choice.finish_reason for chunk in out for choice in chunk.choices if choice.finish_reason]
    assert finishes == ["stop"]
    views = [chunk.gate for chunk in out if "gate" in chunk.model_dump()]
    assert len(views) == 1 and out[-1].gate["decision"] == "hedge"
    assert out[-1].gate["original"] == "William Shakespeare"


async def test_a_streamed_answer_is_delivered_as_the_model_wrote_it() -> None:
    hook = guardrail(ScriptedLLM(rules=FAMILIAR))
    data = await hook.async_pre_call_hook(None, None, request(stream=True), "completion")
    chunks = stream(["William ", "Shakespeare"], ANSWER)
    out = await collect(hook, data, chunks)
    assert out == chunks and out[-1].gate["decision"] == "answer"
    assert all(choice.logprobs is None for chunk in out for choice in chunk.choices)  # the gate asked for them


async def test_a_streamed_abstention_withholds_the_answer() -> None:
    out = await collect(guardrail(ScriptedLLM(rules=FAMILIAR)), request(stream=True), stream(["Marlowe"], ABSTAIN))
    text = "".join(choice.delta.content or "" for chunk in out for choice in chunk.choices)
    assert text.startswith("I can't answer this reliably") and "Marlowe" not in text
    assert out[-1].gate["decision"] == "abstain"


async def test_the_stream_of_a_pre_call_abstention_is_delivered_not_assessed() -> None:
    """LiteLLM streams the pre-call hook's message through the streaming hook: it must pass as it is."""
    llm = ScriptedLLM(rules=UNFAMILIAR)
    hook = guardrail(llm)
    data = request(stream=True)
    with pytest.raises(ModifyResponseException) as raised:
        await hook.async_pre_call_hook(None, None, data, "completion")
    calls = len(llm.calls)
    message = stream([raised.value.message], 0.0)
    out = await collect(hook, data, message)
    assert len(llm.calls) == calls
    assert out[0].choices[0].delta.content == raised.value.message
    assert out[-1].gate["stage"] == "precheck"


# --- the real LiteLLM proxy ------------------------------------------------------------------------------

PROXY_MODULES = ("websockets", "orjson", "backoff", "apscheduler", "jwt", "multipart", "mcp", "fastapi_sso", "uvloop")
MASTER_KEY = "sk-llm-gate-test"
PROXY_CONFIG = """\
model_list:
  - model_name: gemma
    litellm_params: {{model: local/gemma-3-270m, guardrails: [llm-gate]}}
  - model_name: gemma-strict
    litellm_params: {{model: local/gemma-3-270m, guardrails: [llm-gate-strict]}}
  - model_name: canned-stream
    litellm_params:
      model: openai/canned
      api_key: unused
      mock_response: "Paris is the capital of France."
      guardrails: [llm-gate]
litellm_settings:
  custom_provider_map:
    - {{provider: local, custom_handler: gate.litellm_guardrail.local_provider}}
guardrails:
  - guardrail_name: llm-gate
    litellm_params:
      guardrail: gate.litellm_guardrail.ConfidenceGuardrail
      mode: [pre_call, post_call]
      gate_config: {{artifact: {open}, max_tokens: 24, include_original: true}}
  - guardrail_name: llm-gate-strict
    litellm_params:
      guardrail: gate.litellm_guardrail.ConfidenceGuardrail
      mode: [pre_call, post_call]
      gate_config: {{artifact: {strict}, max_tokens: 24}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_artifacts(directory: Path) -> tuple[Path, Path]:
    """A fitted artifact for the embedded model: as it is, and with a precheck every question fails."""
    from gate.offline.calibrate import fit_artifact
    from gate.suite import DEFAULT_SUITE
    from tests.test_artifact import MODEL, OPTIONS, synthetic_rows

    fitted = fit_artifact(synthetic_rows(120), model=MODEL, suite=DEFAULT_SUITE, options=OPTIONS)
    open_ = dataclasses.replace(fitted, precheck_threshold=None).save(directory / "open.json")
    strict = dataclasses.replace(fitted, precheck_threshold=1.0).save(directory / "strict.json")
    return open_, strict


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The LiteLLM proxy (its own CLI, one worker) with our guardrails and the embedded model upstream."""
    missing = [name for name in PROXY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the LiteLLM proxy's dependencies are missing ({missing}): pip install -e '.[dev]'")
    directory = tmp_path_factory.mktemp("litellm-proxy")
    config = directory / "config.yaml"
    config.write_text(PROXY_CONFIG.format(open=directory / "open.json", strict=directory / "strict.json"))
    port = _free_port()
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = (directory / "proxy.log").open("w")
    command = [str(Path(sys.executable).parent / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", str(port)], cwd=directory, env=env, stdout=log, stderr=log)
    try:
        _write_artifacts(directory)  # read on the first request, so written while the proxy starts
        _wait_until_alive(f"http://127.0.0.1:{port}", process, directory / "proxy.log")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_alive(url: str, process: subprocess.Popen[bytes], log: Path, within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the LiteLLM proxy exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the LiteLLM proxy did not come up within {within_s:g} s:\n{log.read_text()[-3000:]}")


def _expected_content(view: dict[str, Any]) -> str:
    if view["decision"] == "answer":
        return view["original"]
    if view["decision"] == "hedge":
        return f"{view['original']}\n\n{HEDGE_NOTE}"
    return "I can't answer this reliably, so I won't guess. Reason: " + view["reasons"][0] + "."


@pytest.mark.integration
def test_the_real_litellm_proxy_gates_answers_with_our_guardrail(proxy: str) -> None:
    client = openai.OpenAI(base_url=proxy, api_key=MASTER_KEY, max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    raw = client.chat.completions.with_raw_response.create(model="gemma", messages=messages, max_tokens=16)
    completion = raw.parse()
    view = completion.model_extra["gate"]
    assert view["decision"] in {"answer", "hedge", "abstain"} and view["mode"] == "enforce"
    # through LiteLLM the upstream is a black box: the one-pass familiarity (forced log-probs) cannot run
    assert view["signals"].get("familiarity") is None and view["signals"]["logprob_min"] is not None
    assert completion.choices[0].message.content == _expected_content(view)
    assert completion.choices[0].logprobs is None  # the gate asked for them, the client did not
    assert raw.headers["x-gate-decision"] == view["decision"]

    refused = client.chat.completions.create(model="gemma-strict", messages=messages)
    assert refused.choices[0].finish_reason == "content_filter"  # LiteLLM's passthrough block
    assert refused.choices[0].message.content.startswith("I can't answer this reliably, so I won't guess.")
    assert "unfamiliar concept" in refused.choices[0].message.content

    chunks = list(client.chat.completions.create(model="canned-stream", messages=messages, stream=True))
    views = [chunk.model_extra["gate"] for chunk in chunks if chunk.model_extra and "gate" in chunk.model_extra]
    assert len(views) == 1 and views[0]["original"] == "Paris is the capital of France."
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == _expected_content(
        views[0]
    )

    chunks = list(client.chat.completions.create(model="gemma", messages=messages, stream=True, max_tokens=16))
    views = [chunk.model_extra["gate"] for chunk in chunks if chunk.model_extra and "gate" in chunk.model_extra]
    assert len(views) == 1 and views[0]["decision"] in {"answer", "hedge", "abstain"}  # the embedded model streams
    assert views[0]["original"] == view["original"]  # greedy: the same answer as the unstreamed request
    assert views[0]["signals"]["logprob_min"] == pytest.approx(view["signals"]["logprob_min"])  # log-probs streamed
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == _expected_content(views[0])

    chunks = list(client.chat.completions.create(model="gemma-strict", messages=messages, stream=True))
    views = [chunk.model_extra["gate"] for chunk in chunks if chunk.model_extra and "gate" in chunk.model_extra]
    assert len(views) == 1 and views[0]["stage"] == "precheck" and views[0]["decision"] == "abstain"


async def test_pre_call_refuses_a_conversation_ending_with_an_assistant_turn() -> None:
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "It was"}]
    with pytest.raises(HTTPException) as raised:
        await guardrail(ScriptedLLM(rules=FAMILIAR)).async_pre_call_hook(
            None, None, request(messages=turns), "completion"
        )
    assert raised.value.status_code == 400 and "the last message has role 'assistant'" in raised.value.detail["error"]
