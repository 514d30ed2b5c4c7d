"""The proxy's guards, as ASGI middleware: the request id, API keys (tenants), per-tenant rate limits (on Redis),
the in-flight limit, the body size limit.

Each guard answers in OpenAI's error shape (401, 429 with ``retry-after``, 413) before a request reaches a
route; every response, errors included, carries ``x-request-id``. What a guard learns for the routes (the
request's id, its tenant, whether that is privileged) goes into ``scope["state"]``, read back by
:func:`gate.server.state.request_id`, :func:`gate.server.state.server_state` and
:func:`gate.server.state.is_privileged`.
"""

from __future__ import annotations

import logging
import math
import uuid

from prometheus_client import Gauge
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.errors import StateUnavailableError
from gate.server.errors import state_unavailable_response, wire_error_response
from gate.server.state import CALLER_KEY, PRIVILEGED_KEY, REQUEST_ID_KEY, TENANT_NAME_KEY, Caller, ServerState, Slots
from gate.server.wire import OverloadedError, PayloadTooLargeError, UnauthorizedError
from gate.state.quota import key_hash
from gate.tenants.table import Tenant

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"


class RequestId:
    """Give every HTTP request an id, in ``scope["state"]`` and in its response's ``x-request-id`` header.

    The completion routes use it as the completion's id; the 500 handler, which answers outside the user
    middleware (Starlette's ``ServerErrorMiddleware``), sets the header itself from the same state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = uuid.uuid4().hex
        scope.setdefault("state", {})[REQUEST_ID_KEY] = value
        header = (REQUEST_ID_HEADER, value.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if all(name.lower() != REQUEST_ID_HEADER for name, _ in headers):
                    message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class ApiKeyAuth:
    """Bearer API keys on every path but the public ones (constant-time comparison; never logged or echoed).

    Keys belong to tenants (:class:`gate.tenants.table.Tenants`, read from ``state.tenants`` once per request,
    so a reload applies from the next request on): the plain ``api_keys`` and ``privileged_api_keys``, and the
    hashed keys of configured tenants. The matched tenant goes into ``scope["state"]`` for the routes, marked
    privileged when it is. With no key and no tenant configured there is no authentication and every client is
    the ``anonymous`` tenant with the operator's defaults.
    """

    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tenants = self.state.tenants
        if not tenants.auth:
            self._found(scope, tenants.anonymous)
            await self.app(scope, receive, send)
            return
        scheme, _, token = (Headers(scope=scope).get("authorization") or "").partition(" ")
        tenant = tenants.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if tenant is not None:
            self._found(scope, tenant)
        if tenant is not None or scope["path"] in tenants.public:
            await self.app(scope, receive, send)
            return
        if scheme.lower() != "bearer" or not token.strip():
            error = UnauthorizedError("missing API key: send the header 'Authorization: Bearer <key>'")
        else:
            error = UnauthorizedError("invalid API key")
        await wire_error_response(error)(scope, receive, send)

    def _found(self, scope: Scope, tenant: Tenant) -> None:
        """Leave the request's caller (tenant and policy), its tenant's name and its privilege for the routes."""
        state = scope.setdefault("state", {})
        state[CALLER_KEY], state[TENANT_NAME_KEY] = self.state.caller(tenant), tenant.name
        if tenant.privileged:
            state[PRIVILEGED_KEY] = True


class RateLimit:
    """429 beyond a tenant's rate or daily quota (:class:`gate.state.quota.Quota`, shared by every replica).

    Runs after :class:`ApiKeyAuth` and takes the quota of the tenant it found, so only known keys take from a
    bucket. A configured tenant has one bucket for all its keys; the plain ``api_keys`` one per key, as before.
    Without authentication every client shares one anonymous bucket: a Bearer value a client makes up must not
    buy it a bucket of its own. Each POST under ``prefix`` takes one request and one unit of the daily quota.
    With Redis down and ``state_failure`` closed, the answer is 503 (``retry-after``: ``state_retry_s``).
    """

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("state", {}).get(CALLER_KEY) if scope["type"] == "http" else None
        tenant = caller.tenant if isinstance(caller, Caller) else None
        if tenant is None or tenant.quota is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        _, _, token = (Headers(scope=scope).get("authorization") or "").partition(" ")
        bucket = tenant.bucket(token.strip())
        try:
            allowed = await tenant.quota.check_and_take(bucket)
        except StateUnavailableError as exc:
            retry_s = tenant.settings.state_retry_s
            await state_unavailable_response(exc, retry_after_s=retry_s)(scope, receive, send)
            return
        if allowed.ok:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(allowed.retry_after))
        who = f"tenant {tenant.name}" if tenant.bucket_name else "key " + key_hash(bucket)[:8]
        logger.info("%s over its %s limit; retry after %d s", who, allowed.limit, retry_after)
        what = "daily quota" if allowed.limit == "daily" else "rate limit"
        holder = "tenant" if tenant.bucket_name else "API key"
        error = OverloadedError(
            f"this {holder} is over its {what}; retry after {retry_after} s",
            code="quota_exceeded" if allowed.limit == "daily" else "rate_limit_exceeded",
            headers={"retry-after": str(retry_after)},
        )
        await wire_error_response(error)(scope, receive, send)


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
