"""A streamed reply released claim by claim: each sentence goes out once it is judged, as the policy shows it.

Where :meth:`gate.pipeline.Gate.assess_streamed` applies (a long answer expected, a model that streams), the
reply's chunks follow the generation: every claim judged is handed to :class:`gate.claim_stream.ClaimRelease`,
and what it releases goes out at once as a content chunk; the rest (the strike note, text after the last
claim) follows the assessment, and the last chunk carries the ``gate`` object as in a buffered stream.
Struck claims never go out under ``strike``; ``mark`` sends the marked form. The response headers are sent
before any decision exists, so they say ``x-gate-claims: streamed`` instead of the decision and confidence.
When nothing was released (a short answer judged whole, an abstention, a request the gate passes on), the
reply is streamed whole as :func:`gate.server.replies.stream_events` streams any reply.

A failure before any text went out is raised, and answered with its status as for a buffered request (the
handler reads the first event before it sends the headers). A failure after that cannot change the status: it
ends the stream with an OpenAI-shaped ``error`` event (no upstream detail), recorded like any error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from estimators.base import Message
from gate.assessment import Assessment
from gate.audit.log import Outcome
from gate.claim_stream import ClaimRelease, StreamsText
from gate.errors import UpstreamError
from gate.pipeline import Gate
from gate.server.policy import Plan
from gate.server.replies import Envelope, Reply, stream_events, usage_body
from gate.server.state import ServerState
from gate.server.wire import ChatRequest, CompletionRequest, GatewayTimeoutError, error_body

logger = logging.getLogger(__name__)

Record = Callable[[Outcome], Awaitable[None]]


def streams_claims(gate: Gate, plan: Plan, body: ChatRequest | CompletionRequest) -> bool:
    """Whether this request's reply may go out claim by claim (else it is buffered until the decision)."""
    return (
        body.stream
        and plan.mode in ("enforce", "observe")
        and plan.claims != "off"
        and plan.unassessed is None
        and plan.logprobs is None  # log-probs ride on the buffered reply's tokens
        and not plan.tools
        and body.n == 1
        and gate.claims is not None
        and isinstance(gate.llm, StreamsText)
    )


async def claim_events(
    server: ServerState,
    gate: Gate,
    plan: Plan,
    *,
    body: ChatRequest | CompletionRequest,
    prompt: list[Message],
    envelope: Envelope,
    record: tuple[Record, dict[str, Any], float],
) -> AsyncIterator[str]:
    """SSE events of the reply, claim by claim; ``record`` = (how to record, the request's fields, start time)."""
    save, seen, started = record
    release = ClaimRelease(plan.claims, server.policy.claim_mark, observe=plan.mode == "observe")
    sent, result = "", None
    try:
        async with asyncio.timeout(server.settings.request_timeout_s):
            async for item in gate.assess_streamed(
                body.prompt() if isinstance(body, ChatRequest) else prompt,
                signals=plan.signals,
                cascade=plan.cascade,
                precheck=plan.precheck,
                budget=plan.budget,
                temperature=body.temperature,
                max_tokens=body.answer_tokens(),
                options=body.options() or None,
            ):
                if isinstance(item, Assessment):
                    result = item
                elif text := release.add(item):
                    if not sent:
                        yield _event(_opening(envelope))
                    sent += text
                    yield _event(_text_chunk(envelope, server.policy.scrubber.secret_free(text)))
        assert result is not None  # the pipeline always ends with the assessment
        reply = server.policy.render(plan.mode, result, original=plan.original, claims=plan.claims)
    except Exception as exc:
        if isinstance(exc, TimeoutError):
            limit = server.settings.request_timeout_s
            exc = GatewayTimeoutError(f"the request took longer than this server's limit of {limit:g} s")
        await save(Outcome(**seen, total_s=time.perf_counter() - started, error=exc))
        if not sent:  # nothing went out: the handler answers with the error's own status
            raise exc from None
        yield _event(_error(exc))  # the headers are gone: the stream ends with an error event
        yield "data: [DONE]\n\n"
        return
    await save(Outcome.served(reply, total_s=time.perf_counter() - started, reply_s=reply.usage.seconds, **seen))
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    if not sent:
        for event in stream_events(envelope, reply, include_usage=include_usage):
            yield event
        return
    for chunk in _closing(envelope, reply, sent, include_usage=include_usage):
        yield _event(chunk)
    yield "data: [DONE]\n\n"


def _closing(envelope: Envelope, reply: Reply, sent: str, *, include_usage: bool) -> list[dict[str, Any]]:
    """The text the assessment added after what was released (a note, a tail), the finish, usage and ``gate``."""
    [text] = reply.texts
    chunks = []
    if text.startswith(sent):
        if rest := text[len(sent) :]:
            chunks.append(_text_chunk(envelope, rest))
    else:  # the whole answer judged otherwise than sentence by sentence: the gate object says how
        logger.warning("request %s: the released claims differ from the final reply", envelope.id)
    chunks.append(_finish_chunk(envelope, reply.finish_reasons[0]))
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**envelope.head(chunk=True), "choices": [], "usage": usage_body(reply.usage)})
    chunks[-1]["gate"] = reply.gate
    return chunks


def _opening(envelope: Envelope) -> dict[str, Any]:
    if envelope.chat:
        return _choice(envelope, {"role": "assistant", "content": ""})
    return _choice(envelope, {"text": ""})


def _text_chunk(envelope: Envelope, text: str) -> dict[str, Any]:
    return _choice(envelope, {"content": text} if envelope.chat else {"text": text})


def _finish_chunk(envelope: Envelope, reason: str) -> dict[str, Any]:
    return _choice(envelope, {} if envelope.chat else {"text": ""}, reason)


def _choice(envelope: Envelope, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    if envelope.chat:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
    else:
        choice = {"index": 0, "text": delta["text"], "logprobs": None, "finish_reason": reason}
    return {**envelope.head(chunk=True), "choices": [choice]}


def _error(exc: Exception) -> dict[str, Any]:
    """What the client reads of a failure mid-stream: its kind, never the upstream's words (the log has them)."""
    if isinstance(exc, GatewayTimeoutError):
        return error_body(str(exc), type_="timeout")
    if isinstance(exc, UpstreamError):
        logger.warning("upstream failure while streaming (status %s)", exc.status)
        return error_body("the upstream failed while the answer streamed", type_="server_error", code="upstream_error")
    logger.exception("the claim stream failed")
    return error_body("internal error while the answer streamed", type_="server_error")


def _event(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"
