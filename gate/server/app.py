"""The OpenAI-compatible gating proxy: ``create_app(settings)`` composes routes, middleware, handlers, lifespan.

Point an OpenAI client at it (``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=...)``): every
completion comes back with a ``gate`` object and ``x-gate-*`` headers; per-request options travel in the
extra body field ``gate`` (see :mod:`gate.server.policy`). A completion request runs one way through
:mod:`gate.server.handler` (plan, generate or assess, render, record). What the routes share is one
:class:`gate.server.state.ServerState`. Errors use OpenAI's shape and are mapped from exceptions in one
place (:mod:`gate.server.errors`); the guards (request id, API keys and their tenants, per-tenant rate limits
on Redis, in-flight limit, body size) are in :mod:`gate.server.guards`; tenants and the SIGHUP reload in
:mod:`gate.tenants`. With API keys configured every path needs one except
``public_paths`` (``/healthz`` and ``/readyz`` by default: ``/metrics`` and the OpenAPI pages ``/docs``, ``/redoc``,
``/openapi.json`` need a key unless listed there). Every request that reaches the gate is counted in
``GET /metrics`` (:mod:`gate.server.metrics`) and, with ``audit_path`` set, appended to the audit log
(:mod:`gate.audit.log`). ``docs/security.md`` says what a client may change and what is stored where.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.middleware import Middleware

from gate.backends.factory import close_llm
from gate.config import Settings
from gate.errors import UpstreamError
from gate.factory import create_gate
from gate.pipeline import Gate
from gate.server.errors import exception_handlers
from gate.server.feedback import Feedback
from gate.server.guards import ApiKeyAuth, BodyLimit, ConcurrencyLimit, RateLimit, RequestId
from gate.server.handler import chat_completions, completions
from gate.server.metrics import CONTENT_TYPE, MetricsMiddleware
from gate.server.reload import Loader, install_sighup
from gate.server.responses import GateJSONResponse
from gate.server.state import ServerState, server_state

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


def create_app(settings: Settings, *, gate: Gate | None = None, reload: Loader | None = None) -> FastAPI:
    """The proxy for ``settings``; the gate loads in the lifespan unless one is given (tests inject one).

    ``reload``: re-read the configuration on SIGHUP with it (``gate serve``; needs the main thread's loop).
    """
    state = ServerState.from_settings(settings)
    middleware = [
        Middleware(RequestId),  # outermost: every response carries x-request-id (the 500 handler sets its own)
        Middleware(MetricsMiddleware, metrics=state.metrics),  # counts the 401s, 413s and 429s too
        Middleware(ApiKeyAuth, state=state),  # the request's tenant, from the tenants of the moment
        # between authentication (only known keys take from a bucket) and the in-flight limit
        Middleware(RateLimit, prefix=API_PREFIX),
        Middleware(
            ConcurrencyLimit,
            slots=state.slots,
            in_flight=state.metrics.in_flight,
            retry_after_s=settings.retry_after_s,
            prefix=API_PREFIX,
        ),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
    ]
    app = FastAPI(
        title="llm-gate",
        summary="OpenAI-compatible proxy that gates every answer: answer, hedge or abstain.",
        lifespan=_lifespan(state, gate, reload),
        default_response_class=GateJSONResponse,
        middleware=middleware,
        exception_handlers=exception_handlers(),
    )
    app.state.server = state  # read through server_state(request), nowhere else
    app.include_router(_proxy_routes())
    app.include_router(_health_routes())
    app.include_router(Feedback(settings, audit=state.audit, metrics=state.metrics).router())  # labels, the monitor
    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn must serve the app: h11 (httptools ignores this header limit) at ``max_header_bytes``.

    A request line and headers over the limit, or malformed ones, are answered by uvicorn itself with a plain
    400 before the app sees the request (no JSON body, no ``x-request-id``), and the connection is closed.
    """
    return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}


# --- lifespan -----------------------------------------------------------------------------------------


@runtime_checkable
class Loadable(Protocol):
    """An LLM that loads its weights on request (the embedded model)."""

    async def load(self) -> None:
        """Load now rather than on the first request."""
        ...


def _lifespan(state: ServerState, injected: Gate | None, reload: Loader | None) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        remove = install_sighup(state, reload) if reload is not None else None
        try:
            async with _serving(state, injected):
                yield
        finally:
            if remove is not None:
                remove()
            state.metrics.close()
            if state.state_client is not None:
                await state.state_client.aclose(close_connection_pool=True)
            if state.audit is not None:
                await state.audit.aclose()

    return lifespan


@asynccontextmanager
async def _serving(state: ServerState, injected: Gate | None) -> AsyncIterator[None]:
    # Building the gate reads the artifact and the index: a misconfiguration stops the server here.
    # Loading the model's weights is slow, so it runs behind /readyz while /healthz already answers.
    gate = injected or await asyncio.to_thread(create_gate, state.settings)
    if not isinstance(gate.llm, Loadable):
        _ready(state, gate)
        try:
            yield
        finally:
            await close_llm(gate.llm)
        return
    loading = asyncio.create_task(_load(state, gate, gate.llm))
    try:
        yield
    finally:
        loading.cancel()


async def _load(state: ServerState, gate: Gate, llm: Loadable) -> None:
    try:
        await llm.load()
    except UpstreamError as exc:  # the model's process died loading: already logged, in one line, with its cause
        state.load_error = f"the model failed to load: {exc}"
        return
    except Exception as exc:  # any failure to load: reported by /readyz and the log, never served
        logger.exception("the model failed to load")
        state.load_error = f"the model failed to load: {exc}"
        return
    _ready(state, gate)


def _ready(state: ServerState, gate: Gate) -> None:
    state.ready(gate)
    logger.info("gate ready: %s (calibration %s)", state.settings.model, gate.calibration.id)


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


async def models(request: Request) -> dict[str, Any]:
    """The one model this gate serves."""
    server = server_state(request)
    model = {"id": server.settings.model, "object": "model", "created": server.started, "owned_by": "llm-gate"}
    return {"object": "list", "data": [model]}


async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


async def readyz(request: Request) -> GateJSONResponse:
    """Readiness: 200 once the gate (model and calibration) is loaded, 503 until then or when loading failed."""
    server = server_state(request)
    if server.gate is None:
        status = "failed" if server.load_error else "loading"
        return GateJSONResponse({"status": status, "error": server.load_error}, status_code=503)
    ready = {"status": "ready", "model": server.settings.model, "calibration": server.gate.calibration.id}
    return GateJSONResponse(ready)


async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)
