"""The proxy's guards, as ASGI middleware: API keys, the in-flight limit, the body size limit.

Each answers in OpenAI's error shape (401, 429 with ``retry-after``, 413) before a request reaches a route.
"""

from __future__ import annotations

import hmac

from prometheus_client import Gauge
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.server.errors import wire_error_response
from gate.server.state import Slots
from gate.server.wire import OverloadedError, PayloadTooLargeError, UnauthorizedError


class ApiKeyAuth:
    """Bearer API keys on paths under ``prefix`` (one or several; constant-time comparison; never logged or echoed)."""

    def __init__(self, app: ASGIApp, *, keys: tuple[bytes, ...], prefix: str | tuple[str, ...]) -> None:
        self.app, self.keys, self.prefix = app, keys, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        scheme, _, token = (Headers(scope=scope).get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = UnauthorizedError("missing API key: send the header 'Authorization: Bearer <key>'")
        elif not self._known(token.strip().encode()):
            error = UnauthorizedError("invalid API key")
        else:
            await self.app(scope, receive, send)
            return
        await wire_error_response(error)(scope, receive, send)

    def _known(self, token: bytes) -> bool:
        matched = False
        for key in self.keys:  # every key is compared, so the time taken does not depend on which one matched
            matched |= hmac.compare_digest(token, key)
        return matched


class ConcurrencyLimit:
    """Answer 429 at once beyond ``slots.limit`` in-flight POSTs under ``prefix``: no unbounded queue.

    ``in_flight`` follows ``slots.in_use`` for /metrics (summed over the workers of ``gate serve --workers``).
    """

    def __init__(self, app: ASGIApp, *, slots: Slots, in_flight: Gauge, retry_after_s: int, prefix: str) -> None:
        self.app, self.slots, self.in_flight = app, slots, in_flight
        self.retry_after_s, self.prefix = retry_after_s, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.slots.in_use >= self.slots.limit:
            error = OverloadedError(
                f"more than {self.slots.limit} requests in flight; retry after {self.retry_after_s} s",
                headers={"retry-after": str(self.retry_after_s)},
            )
            await wire_error_response(error)(scope, receive, send)
            return
        self.slots.in_use += 1
        self.in_flight.inc()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.in_use -= 1
                self.in_flight.dec()

        async def send_then_release(message: Message) -> None:
            await send(message)
            # The client has the whole response once its last body part is sent, and may send its next request
            # at once: a streamed response's app returns only after tearing down its disconnect listener, and
            # holding the slot until then refused such clients with spurious 429s.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            release()


class BodyLimit:
    """413 for a body over ``max_bytes``: at once when Content-Length says so, else as soon as it is exceeded.

    Starlette's own limit answers in plain text; this one raises an ``HTTPException`` from ``receive``,
    which FastAPI passes on to the handlers below, so the client gets OpenAI's error shape.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await wire_error_response(PayloadTooLargeError(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413)
            return message

        await self.app(scope, limited, send)
