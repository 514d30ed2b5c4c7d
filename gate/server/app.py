"""The OpenAI-compatible gating proxy: ``create_app(settings)`` composes routes, middleware, handlers, lifespan.

Point an OpenAI client at it (``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=...)``): every
completion comes back with a ``gate`` object and ``x-gate-*`` headers; per-request options travel in the
extra body field ``gate`` (see :mod:`gate.server.policy`). Errors use OpenAI's shape and are mapped from
exceptions in one place (:mod:`gate.server.errors`); the guards (API keys, in-flight limit, body size) are
in :mod:`gate.server.guards`. Every request that reaches the gate is counted in
``GET /metrics`` (:mod:`gate.server.metrics`; open like ``/healthz`` unless ``metrics_auth`` is set) and,
with ``audit_path`` set, appended to the audit log (:mod:`gate.audit.log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.middleware import Middleware

from estimators.base import Message as ChatMessage
from estimators.base import Prompt
from gate.audit.log import AuditLog, Outcome
from gate.backends.factory import close_llm
from gate.config import Settings
from gate.errors import ConfigError, UpstreamError
from gate.factory import create_gate
from gate.pipeline import Gate
from gate.server.errors import exception_handlers, scrubbed_view
from gate.server.guards import ApiKeyAuth, BodyLimit, ConcurrencyLimit, Slots
from gate.server.metrics import MetricsMiddleware, ProxyMetrics
from gate.server.metrics_share import SharedMetrics
from gate.server.policy import Plan, Policy
from gate.server.prom import CONTENT_TYPE
from gate.server.wire import (
    BadRequestError,
    ChatRequest,
    CompletionRequest,
    Envelope,
    GatewayTimeoutError,
    NotReadyError,
    Reply,
    completion_body,
    stream_events,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


def create_app(settings: Settings, *, gate: Gate | None = None) -> FastAPI:
    """The proxy for ``settings``; the gate loads in the lifespan unless one is given (tests inject one)."""
    policy = Policy.from_settings(settings)
    slots = Slots(limit=settings.max_concurrency)
    metrics = ProxyMetrics(in_flight=lambda: slots.in_use, limit=settings.max_concurrency)
    if settings.metrics_dir is not None:  # gate serve --workers: one /metrics for all of them
        metrics.shared = SharedMetrics(settings.metrics_dir, metrics.registry)
    guarded = (API_PREFIX, "/metrics") if settings.metrics_auth else API_PREFIX
    middleware = [
        Middleware(MetricsMiddleware, metrics=metrics),  # outermost: counts the 401s, 413s and 429s too
        Middleware(ApiKeyAuth, keys=_api_keys(settings), prefix=guarded),
        Middleware(ConcurrencyLimit, slots=slots, retry_after_s=settings.retry_after_s, prefix=API_PREFIX),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
    ]
    app = FastAPI(
        title="llm-gate",
        summary="OpenAI-compatible proxy that gates every answer: answer, hedge or abstain.",
        lifespan=_lifespan(settings, gate),
        middleware=middleware,
        exception_handlers=exception_handlers(),
    )
    app.state.settings, app.state.policy, app.state.slots = settings, policy, slots
    app.state.metrics, app.state.audit = metrics, AuditLog.from_settings(settings)
    app.state.gate, app.state.load_error, app.state.started = None, None, int(time.time())
    app.include_router(_proxy_routes())
    app.include_router(_health_routes())
    return app


def _api_keys(settings: Settings) -> tuple[bytes, ...]:
    keys = tuple(key.get_secret_value().encode() for key in settings.api_keys)
    if any(not key.strip() for key in keys):
        raise ConfigError("api_keys holds an empty key; remove it (an empty list turns authentication off)")
    return keys


# --- lifespan -----------------------------------------------------------------------------------------


@runtime_checkable
class Loadable(Protocol):
    """An LLM that loads its weights on request (the embedded model)."""

    async def load(self) -> None:
        """Load now rather than on the first request."""
        ...


def _lifespan(settings: Settings, injected: Gate | None) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shared = app.state.metrics.shared  # set with metrics_dir: this worker's values for the others
        publishing = asyncio.create_task(shared.run()) if shared is not None else None
        try:
            async with _serving(app, settings, injected):
                yield
        finally:
            if publishing is not None:
                publishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publishing

    return lifespan


@asynccontextmanager
async def _serving(app: FastAPI, settings: Settings, injected: Gate | None) -> AsyncIterator[None]:
    # Building the gate reads the artifact and the index: a misconfiguration stops the server here.
    # Loading the model's weights is slow, so it runs behind /readyz while /healthz already answers.
    gate = injected or await asyncio.to_thread(create_gate, settings)
    if not isinstance(gate.llm, Loadable):
        _ready(app, gate)
        try:
            yield
        finally:
            await close_llm(gate.llm)
        return
    loading = asyncio.create_task(_load(app, gate, gate.llm))
    try:
        yield
    finally:
        loading.cancel()


async def _load(app: FastAPI, gate: Gate, llm: Loadable) -> None:
    try:
        await llm.load()
    except UpstreamError as exc:  # the model's process died loading: already logged, in one line, with its cause
        app.state.load_error = f"the model failed to load: {exc}"
        return
    except Exception as exc:  # any failure to load: reported by /readyz and the log, never served
        logger.exception("the model failed to load")
        app.state.load_error = f"the model failed to load: {exc}"
        return
    _ready(app, gate)


def _ready(app: FastAPI, gate: Gate) -> None:
    app.state.gate = gate
    logger.info("gate ready: %s (calibration %s)", app.state.settings.model, gate.calibration.id)


# --- routes -------------------------------------------------------------------------------------------


def _proxy_routes() -> APIRouter:
    router = APIRouter(prefix="/v1")
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"], response_model=None)
    router.add_api_route("/completions", completions, methods=["POST"], response_model=None)
    router.add_api_route("/models", models, methods=["GET"])
    return router


def _health_routes() -> APIRouter:
    router = APIRouter()
    router.add_api_route("/healthz", healthz, methods=["GET"])
    router.add_api_route("/readyz", readyz, methods=["GET"])
    router.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response)
    return router


async def chat_completions(body: ChatRequest, request: Request) -> Response:
    """OpenAI chat completions, gated."""
    return await _complete(request, body, body.prompt(), chat=True)


async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI text completions, gated (the prompt is assessed as a question)."""
    return await _complete(request, body, [{"role": "user", "content": body.prompt}], chat=False)


async def models(request: Request) -> dict[str, Any]:
    """The one model this gate serves."""
    state = request.app.state
    model = {"id": state.settings.model, "object": "model", "created": state.started, "owned_by": "llm-gate"}
    return {"object": "list", "data": [model]}


async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 once the gate (model and calibration) is loaded, 503 until then or when loading failed."""
    state = request.app.state
    if state.gate is None:
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "error": state.load_error}, status_code=503)
    return JSONResponse({"status": "ready", "model": state.settings.model, "calibration": state.gate.calibration.id})


async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


# --- one request ----------------------------------------------------------------------------------------


async def _complete(
    request: Request, body: ChatRequest | CompletionRequest, prompt: list[ChatMessage], *, chat: bool
) -> Response:
    """Check, generate (and gate) exactly once, record it, then answer as one JSON object or as SSE chunks."""
    started = time.perf_counter()
    state = request.app.state
    gate = _ready_gate(state)
    plan = _plan(state, gate, body)
    request.state.gate_mode = plan.mode  # the metrics middleware's mode label (proxy_metrics.MODE_KEY)
    envelope = Envelope(chat=chat, model=state.settings.model)
    seen = {
        "request_id": envelope.id,
        "route": "chat" if chat else "completions",
        "model": state.settings.model,
        "mode": plan.mode,
        "question": prompt[-1]["content"],
    }
    try:
        reply, reply_s = await _generate(state, gate, plan, body, prompt, chat=chat)
        reply = replace(reply, gate=scrubbed_view(reply.gate, state.settings))  # signal errors quote the upstream
    except Exception as exc:  # recorded here, answered by the exception handlers
        await _record(state, Outcome(**seen, total_s=time.perf_counter() - started, error=exc))
        raise
    seconds = time.perf_counter() - started
    await _record(state, Outcome.served(reply, total_s=seconds, reply_s=reply_s, **seen))
    headers = {**reply.headers, "x-request-id": envelope.id}
    logger.info("request %s mode=%s decision=%s in %.2fs", envelope.id, plan.mode, reply.gate.get("decision"), seconds)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = stream_events(envelope, reply, include_usage=include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return JSONResponse(completion_body(envelope, reply), headers=headers)


async def _generate(
    state: Any, gate: Gate, plan: Plan, body: ChatRequest | CompletionRequest, prompt: list[ChatMessage], *, chat: bool
) -> tuple[Reply, float]:
    """The reply under the request's time limit, and the seconds generating and gating it took."""
    limit = state.settings.request_timeout_s
    try:
        async with asyncio.timeout(limit):
            param = "messages" if chat else "prompt"
            await _check_context(gate.llm, prompt, body.answer_tokens() or gate.answer_tokens, param=param)
            asked = time.perf_counter()
            reply = await state.policy.reply(
                gate, plan, prompt, n=body.n, temperature=body.temperature, max_tokens=body.answer_tokens()
            )
    except TimeoutError:
        raise GatewayTimeoutError(f"the request took longer than this server's limit of {limit:g} s") from None
    return reply, time.perf_counter() - asked


async def _record(state: Any, outcome: Outcome) -> None:
    """Count ``outcome`` in the metrics and append it to the audit log, when one is configured."""
    state.metrics.observe(outcome)
    if state.audit is None:
        return
    try:
        await state.audit.write(outcome)
    except OSError:
        # The answer path stays up when the log cannot be written; the failure is logged and counted, not hidden.
        logger.exception("could not append to the audit log %s", state.audit.path)
        state.metrics.audit_failures.inc()


def _ready_gate(state: Any) -> Gate:
    if state.gate is None:
        raise NotReadyError(state.load_error or "the gate is still loading; retry when /readyz answers 200")
    return state.gate  # type: ignore[no-any-return]


def _plan(state: Any, gate: Gate, body: ChatRequest | CompletionRequest) -> Plan:
    """The request's gating plan, after the checks that need the server's configuration."""
    settings: Settings = state.settings
    if body.model != settings.model:
        raise BadRequestError(
            f"model {body.model!r} is not served here; this gate serves {settings.model!r}",
            param="model",
            code="model_not_found",
        )
    max_tokens = body.answer_tokens()
    if max_tokens is not None and max_tokens > settings.max_answer_tokens:
        limit = settings.max_answer_tokens
        raise BadRequestError(f"max_tokens {max_tokens} is above this server's limit of {limit}", param="max_tokens")
    return state.policy.plan(body.gate, signals=[spec.key for spec in gate.suite], n=body.n)  # type: ignore[no-any-return]


@runtime_checkable
class CountsTokens(Protocol):
    """An LLM that knows its context size and can count a prompt's tokens cheaply (the embedded model)."""

    n_ctx: int

    async def count_tokens(self, prompt: Prompt) -> int:
        """Prompt length in tokens, as the model will see it."""
        ...


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
