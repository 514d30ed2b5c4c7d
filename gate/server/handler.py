"""The completion routes, and one request's way through the proxy, in order, each step once.

``policy.plan`` (the request checked against the operator's bounds) -> generate or assess (mode ``off``:
the model directly; a request the gate does not assess (``plan.unassessed``): the model directly, with the
verdict ``not_assessed``; otherwise ``Gate.assess``, under the request timeout) -> ``policy.render``
(content, tool calls, the ``gate`` view with the upstream key masked, headers) -> record (metrics, audit
log) -> the response, one JSON object or SSE chunks. The client's own fields (tools, response_format...)
go upstream with the answer (``options``), never with the gate's own calls. A request that fails after it
was planned is recorded with its error, then answered by the exception handlers (:mod:`gate.server.errors`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, Protocol, runtime_checkable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from estimators.base import Message as ChatMessage
from estimators.base import Prompt
from gate.audit.log import Outcome
from gate.backends.options import RefusesRequests
from gate.pipeline import Gate, not_assessed
from gate.server.claim_replies import claim_events, streams_claims
from gate.server.metrics import MODE_KEY
from gate.server.policy import Answered, Plan
from gate.server.replies import Envelope, Reply, completion_body, stream_events
from gate.server.responses import GateJSONResponse
from gate.server.state import ServerState, is_privileged, request_id, server_state, tenant_name
from gate.server.wire import BadRequestError, ChatRequest, CompletionRequest, GatewayTimeoutError
from gate.state.assessment_cache import request_key, served_from_cache

logger = logging.getLogger(__name__)


async def chat_completions(body: ChatRequest, request: Request) -> Response:
    """OpenAI chat completions, gated."""
    return await _complete(request, body, body.wire_prompt(), chat=True)


async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI text completions, gated (the prompt is assessed as a question)."""
    return await _complete(request, body, [{"role": "user", "content": body.prompt}], chat=False)


async def _complete(
    request: Request, body: ChatRequest | CompletionRequest, prompt: list[ChatMessage], *, chat: bool
) -> Response:
    """Plan, generate (and gate) exactly once, render, record, then answer as one JSON object or as SSE chunks."""
    started = time.perf_counter()
    server = server_state(request)
    gate = server.ready_gate()
    plan = server.policy.plan(body, signals=[spec.key for spec in gate.suite], privileged=is_privileged(request))
    setattr(request.state, MODE_KEY, plan.mode)  # the metrics middleware's mode label
    envelope = Envelope(chat=chat, model=server.settings.model, id=request_id(request))
    seen: dict[str, Any] = {
        "request_id": envelope.id,
        "route": "chat" if chat else "completions",
        "model": server.settings.model,
        "mode": plan.mode,
        "question": body.question(),
        "tenant": tenant_name(request),
    }
    if streams_claims(gate, plan, body):
        await _checked(server, gate, body, prompt, chat=chat)
        recording = (partial(_record, server), seen, started)
        events = claim_events(server, gate, plan, body=body, prompt=prompt, envelope=envelope, record=recording)
        first = await anext(events)  # a failure before any text is answered with its own status, as if buffered
        headers = {"x-gate-mode": plan.mode, "x-gate-claims": "streamed", "x-request-id": envelope.id}
        return StreamingResponse(_after(first, events), media_type="text/event-stream", headers=headers)
    try:
        result, reply_s = await _generate(server, gate, plan, body, prompt, chat=chat)
        reply = server.policy.render(
            plan.mode, result, original=plan.original, logprobs=plan.logprobs, claims=plan.claims
        )
    except Exception as exc:  # recorded here, answered by the exception handlers
        await _record(server, Outcome(**seen, total_s=time.perf_counter() - started, error=exc))
        raise
    seconds = time.perf_counter() - started
    await _record(server, Outcome.served(reply, total_s=seconds, reply_s=reply_s, **seen))
    logger.info("request %s mode=%s decision=%s in %.2fs", envelope.id, plan.mode, reply.gate.get("decision"), seconds)
    return _response(envelope, reply, body)


async def _generate(
    server: ServerState,
    gate: Gate,
    plan: Plan,
    body: ChatRequest | CompletionRequest,
    prompt: list[ChatMessage],
    *,
    chat: bool,
) -> tuple[Answered, float]:
    """What :func:`_answer` returns, under the request's time limit, and the seconds it took.

    ``prompt`` is the conversation as the client sent it (what a request passed through sends upstream).
    """
    limit = server.settings.request_timeout_s
    try:
        async with asyncio.timeout(limit):
            await _checked(server, gate, body, prompt, chat=chat)
            asked = time.perf_counter()
            result = await _answer(server, gate, plan, body, prompt)
    except TimeoutError:
        raise GatewayTimeoutError(f"the request took longer than this server's limit of {limit:g} s") from None
    return result, time.perf_counter() - asked


async def _checked(
    server: ServerState, gate: Gate, body: ChatRequest | CompletionRequest, prompt: list[ChatMessage], *, chat: bool
) -> None:
    """Refuse, before anything is generated, what the upstream cannot do or what cannot fit its context."""
    _check_backend(gate.llm, prompt, body.options())
    param = "messages" if chat else "prompt"
    await _check_context(gate.llm, prompt, body.answer_tokens() or gate.answer_tokens, param=param)


async def _answer(
    server: ServerState, gate: Gate, plan: Plan, body: ChatRequest | CompletionRequest, prompt: list[ChatMessage]
) -> Answered:
    """Mode ``off``: the model's generations, ungated; a request the gate does not assess: the model's answer
    with that verdict; otherwise the gate's assessment of the answer it generates (or, with the assessment
    cache on, of the identical greedy request it answered before)."""
    max_tokens, options = body.answer_tokens(), body.options()
    if plan.mode == "off" or plan.unassessed is not None:
        generations = await gate.llm.generate(
            prompt,
            n=body.n,
            temperature=body.temperature,
            max_tokens=max_tokens or gate.answer_tokens,
            **({"options": options} if options else {}),
        )
        if plan.mode == "off" or plan.unassessed is None:
            return generations
        kind, reason = plan.unassessed  # n is 1 here: the plan allows several choices only in mode off
        return not_assessed(body.question(), generations[0], kind=kind, reason=reason, calibration=gate.calibration.id)
    asked = body.prompt() if isinstance(body, ChatRequest) else prompt
    inputs = {
        "signals": plan.signals,
        "cascade": plan.cascade,
        "precheck": plan.precheck,
        "budget": plan.budget,
        "claims": plan.claims != "off",
        "max_tokens": max_tokens,
    }
    cache, key = server.assessments, None
    if cache is not None:
        key = _cache_key(server, gate, asked, body.temperature, {**inputs, "options": options})
        if key is not None and (stored := await cache.get(key)) is not None:
            return served_from_cache(stored)
    assessment = await gate.assess(
        asked, temperature=body.temperature, **inputs, **({"options": options} if options else {})
    )
    if cache is not None and key is not None:
        await cache.put(key, assessment)
    return assessment


def _cache_key(
    server: ServerState, gate: Gate, prompt: Prompt, temperature: float | None, inputs: dict[str, Any]
) -> str | None:
    """The assessment cache's key for this request (``None``: the request is sampled, so never cached)."""
    namespace = server.tenant.name if server.tenant is not None else ""
    return request_key(
        model=server.settings.model,
        calibration=gate.calibration.id,
        prompt=prompt,
        temperature=temperature,
        inputs={**inputs, "budget": dataclasses.asdict(inputs["budget"])},
        namespace=namespace,
    )


async def _after(first: str, events: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for event in events:
        yield event


async def _record(server: ServerState, outcome: Outcome) -> None:
    """Count ``outcome`` in the metrics and its tenant's quota, and append it to the audit log, when configured."""
    server.metrics.observe(outcome)
    await server.charge(outcome)
    if server.audit is None:
        return
    try:
        await server.audit.write(outcome)
    except OSError:
        # The answer path stays up when the log cannot be written; the failure is logged and counted, not hidden.
        logger.exception("could not append to the audit log %s", server.audit.path)
        server.metrics.audit_failures.inc()


def _response(envelope: Envelope, reply: Reply, body: ChatRequest | CompletionRequest) -> Response:
    """The rendered reply as one completion object, or as SSE chunks when the request streams."""
    headers = {**reply.headers, "x-request-id": envelope.id}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = stream_events(envelope, reply, include_usage=include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return GateJSONResponse(completion_body(envelope, reply), headers=headers)


@runtime_checkable
class CountsTokens(Protocol):
    """An LLM that knows its context size and can count a prompt's tokens cheaply (the embedded model)."""

    n_ctx: int

    async def count_tokens(self, prompt: Prompt) -> int:
        """Prompt length in tokens, as the model will see it."""
        ...


def _check_backend(llm: object, prompt: list[ChatMessage], options: dict[str, Any]) -> None:
    """Refuse, as a 400 naming the field, what the upstream cannot do at all (the embedded model: tools...)."""
    if isinstance(llm, RefusesRequests) and (refused := llm.unsupported(prompt, options)) is not None:
        param, why = refused
        raise BadRequestError(f"{param}: {why}", param=param, code="unsupported_by_model")


async def _check_context(llm: object, prompt: list[ChatMessage], max_tokens: int, *, param: str) -> None:
    """Refuse a prompt that cannot fit the model's context with its answer (only where tokens can be counted)."""
    if not isinstance(llm, CountsTokens):
        return
    used = await llm.count_tokens(prompt)
    if used + max_tokens > llm.n_ctx:
        raise BadRequestError(
            f"the prompt is {used} tokens and max_tokens {max_tokens}; the model's context holds {llm.n_ctx} tokens",
            param=param,
            code="context_length_exceeded",
        )
