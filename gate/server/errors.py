"""The proxy's errors: every exception that becomes a response is mapped here, in OpenAI's error shape.

Bad requests are 400 (validation) or 413 (body size), upstream failures 502/504 (429 and 400 passed on as
they are), anything unexpected a 500 whose details stay in the server log. Messages never carry the
upstream API key or its address: the policy's :class:`gate.server.wire.Scrubber` masks the key and writes
"the upstream" for the address in anything that quotes the upstream (the server log keeps the address).
Every response here carries ``x-request-id`` (set by :class:`gate.server.guards.RequestId`; the 500 is
sent outside it, so its handler adds the header itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from gate.errors import StateUnavailableError, UnknownModelError, UpstreamError, UpstreamTooLargeError
from gate.server.responses import GateJSONResponse
from gate.server.state import REQUEST_ID_KEY, server_state
from gate.server.wire import (
    BadRequestError,
    NotReadyError,
    PayloadTooLargeError,
    WireError,
    error_body,
    validation_message,
)

logger = logging.getLogger(__name__)

UPSTREAM_STATUSES = {
    400: (400, "invalid_request_error", "upstream_rejected"),
    429: (429, "rate_limit_error", "upstream_rate_limited"),
    504: (504, "server_error", "upstream_timeout"),
}
"""Upstream statuses passed on as they are (status, OpenAI error type, code); any other failure is a 502."""


def wire_error_response(exc: WireError) -> GateJSONResponse:
    """The response for one of the proxy's own errors."""
    body = error_body(exc.message, type_=exc.type, param=exc.param, code=exc.code)
    return GateJSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _wire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    return wire_error_response(exc)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = validation_message(exc.errors())
    return wire_error_response(BadRequestError(message, param=param))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:  # raised by BodyLimit while the body streams in
        return wire_error_response(PayloadTooLargeError(server_state(request).settings.max_body_bytes))
    body = error_body(f"{request.method} {request.url.path}: {exc.detail}", type_="invalid_request_error")
    return GateJSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    server = server_state(request)
    scrubber = server.policy.scrubber
    logger.warning("upstream failure (%s): %s", exc.status, scrubber.secret_free(str(exc)))
    status, type_, code = UPSTREAM_STATUSES.get(exc.status or 502, (502, "server_error", "upstream_error"))
    message = f"the upstream model failed: {scrubber.text(str(exc))}"
    if isinstance(exc, UpstreamTooLargeError):
        status, type_, code = 502, "server_error", "upstream_response_too_large"
        message = f"upstream response too large: {scrubber.text(str(exc))}"
    elif isinstance(exc, UnknownModelError):
        status, type_, code = 502, "server_error", "upstream_misconfigured"
        message = f"the gate's upstream model is misconfigured: {scrubber.text(str(exc))}"
    elif exc.status in {401, 403}:  # the gate's own credentials were refused: not the client's business
        message = f"the upstream refused the gate's credentials (HTTP {exc.status}); see the server log"
    headers = {"retry-after": str(server.settings.retry_after_s)} if status == 429 else None
    return GateJSONResponse(error_body(message, type_=type_, code=code), status_code=status, headers=headers)


def state_unavailable_response(exc: StateUnavailableError, *, retry_after_s: float) -> GateJSONResponse:
    """503 while the shared state (Redis) is down and ``state_failure`` is closed; also used by the guards."""
    headers = {"retry-after": str(max(1, round(retry_after_s)))}
    return wire_error_response(NotReadyError(str(exc), code="state_unavailable", headers=headers))


async def _state_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StateUnavailableError)
    return state_unavailable_response(exc, retry_after_s=server_state(request).settings.state_retry_s)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware sends this and re-raises, so the server logs the traceback.
    body = error_body(
        "internal error in the gate; the server log has the details", type_="server_error", code="internal_error"
    )
    request_id = request.scope.get("state", {}).get(REQUEST_ID_KEY)
    return GateJSONResponse(body, status_code=500, headers={"x-request-id": request_id} if request_id else None)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Coroutine[Any, Any, Response]]]:
    """Exception class -> response, looked up along the exception's MRO."""
    return {
        WireError: _wire_error,
        RequestValidationError: _invalid_request,
        HTTPException: _http_error,
        UpstreamError: _upstream_error,
        StateUnavailableError: _state_unavailable,
        Exception: _unexpected,
    }
