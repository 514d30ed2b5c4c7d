"""``POST /v1/gate/feedback``: delayed labels (was the answer right?) from users or reviewers, for the monitor.

Body: ``{"request_id": "...", "correct": true, "note": "..."}`` (strict: ``correct`` is a JSON boolean, no other
fields; ``request_id`` is the ``x-request-id`` header of the answer, or its completion id ``chatcmpl-...``, which
is the same id with a prefix). The label is stored append-only beside the audit log (:mod:`gate.audit.feedback`:
the feedback file and, with ``audit_stream``, the Redis stream ``gate:feedback``) and answered 202 once stored.

- **Who may label.** With API keys configured, only a privileged key (``privileged_api_keys``): a label moves the
  monitor, so whoever can send labels can raise an alarm that asks for a recalibration, or hide a real one under
  made-up "correct" labels. Ordinary keys are handed to applications whose users are not trusted; a product that
  collects its users' thumbs up/down sends them on from its backend, with the privileged key. Without keys the
  proxy is open and so is this route, as every other one.
- **Unknown ids are accepted.** Replicas (and the workers of ``gate serve --workers``) each know only the requests
  they served, and a label may reach another one: it is stored anyway and joined by ``gate monitor``, which reads
  every replica's logs and reports the labels that match no audit record. The response says whether this replica
  could join it (``joined``), and only joined labels move this replica's gauges.
- **Idempotent per request id.** Sending a label again appends another line; the latest label of a request wins,
  here and in ``gate monitor``, and a request counts once.
- **Nothing secret is logged**: the note is stored with every configured key masked, and the server log names the
  request id only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.audit.feedback import feedback_log, feedback_record
from gate.audit.log import AuditLog
from gate.config import Settings
from gate.monitor import DEFAULT_TENANT, STATUS_TEXT, LiveMonitor, Targets, recalibration_command
from gate.server.metrics import ProxyMetrics
from gate.server.responses import GateJSONResponse
from gate.server.state import is_privileged, server_state
from gate.server.wire import BadRequestError, ForbiddenError, WireError, validation_message

logger = logging.getLogger(__name__)

LIVE_WINDOW = 1000
"""Labels per (tenant, artifact, tier) behind this replica's gauges: the most recent ones, so a drift shows."""
RECENT_REQUESTS = 100_000
"""Answered requests this replica remembers to join labels with (about 100 bytes each)."""
COMPLETION_PREFIXES = ("chatcmpl-", "cmpl-")
LABEL_FIELDS = '{"request_id": str, "correct": true | false, "note": optional str}'
TENANT_KEY = "tenant"
"""Where an authentication guard that knows tenants leaves the request's tenant, in ``scope["state"]``."""


class FeedbackBody(BaseModel):
    """One label: whether the answer to ``request_id`` was correct."""

    model_config = ConfigDict(strict=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    correct: bool
    note: str | None = Field(default=None, max_length=2000)

    def audit_id(self) -> str:
        """The id the audit log has: the completion id without its ``chatcmpl-`` / ``cmpl-`` prefix."""
        for prefix in COMPLETION_PREFIXES:
            if self.request_id.startswith(prefix):
                return self.request_id.removeprefix(prefix)
        return self.request_id


class FeedbackNotConfiguredError(WireError):
    """Labels are stored beside the audit log, and this server keeps none."""

    status, default_code = 404, "feedback_not_configured"


class Feedback:
    """The route's state: where labels go, the live monitor and the metrics it sets."""

    def __init__(self, settings: Settings, *, audit: AuditLog | None, metrics: ProxyMetrics) -> None:
        self.metrics = metrics
        self.log = None if audit is None else feedback_log(settings, audit)
        self.live = LiveMonitor(window=LIVE_WINDOW, recent=RECENT_REQUESTS)
        if audit is not None:
            audit.add_listener(self.live.remember)
        self._alarmed: set[tuple[str, str, str]] = set()

    def router(self) -> APIRouter:
        """The route, bound to this state; the body is validated by the route (see :func:`parse_body`), and the
        schema still shows it."""
        router = APIRouter(prefix="/v1/gate")
        body_schema = {"required": True, "content": {"application/json": {"schema": FeedbackBody.model_json_schema()}}}
        router.add_api_route(
            "/feedback", self._endpoint(), methods=["POST"], status_code=202, openapi_extra={"requestBody": body_schema}
        )
        return router

    def _endpoint(self) -> Callable[[Request, Any], Coroutine[Any, Any, GateJSONResponse]]:
        async def feedback(request: Request, body: Annotated[Any, Body()] = None) -> GateJSONResponse:
            """Store a label for an earlier request: {request_id, correct, note?} (see gate.server.feedback)."""
            return await self.receive(body, request)

        return feedback

    async def receive(self, raw: Any, request: Request) -> GateJSONResponse:
        """Check who sends it and what, store it, then move this replica's monitor when it served the request."""
        # no key and no tenant: no authentication anywhere (read per request: a reload may add keys)
        if server_state(request).tenants.auth and not is_privileged(request):
            raise ForbiddenError("labels need a key from privileged_api_keys (they move the monitor of the guarantee)")
        if self.log is None:
            raise FeedbackNotConfiguredError(
                "labels are stored beside the audit log: configure audit_path (or feedback_path) or audit_stream"
            )
        body = parse_body(raw)
        request_id, tenant = body.audit_id(), _tenant(request)
        record = feedback_record(request_id, correct=body.correct, tenant=tenant, note=body.note)
        await self.log.write_line(self.log.masked(record))
        joined = self._monitor(request, request_id, correct=body.correct)
        self.metrics.feedback.labels("true" if joined else "false").inc()
        logger.info("label for request %s stored (joined here: %s)", request_id, joined)
        return GateJSONResponse(
            {"object": "gate.feedback", "request_id": request_id, "correct": body.correct, "joined": joined},
            status_code=202,
        )

    def _monitor(self, request: Request, request_id: str, *, correct: bool) -> bool:
        gate = server_state(request).gate
        targets = Targets.from_artifact(getattr(gate.calibration, "target", None) if gate is not None else None)
        reports = self.live.label(request_id, correct, targets=targets)
        if reports is None:
            return False
        for report in reports:
            self.metrics.observe_monitor(report)
            key = (report.tenant, report.calibration, report.tier)
            if report.status == "alarm" and key not in self._alarmed:
                logger.warning(
                    "monitor %s: tenant %s, artifact %s, tier %s: error rate %.3f, lower bound %.3f > target %.3f "
                    "over the last %d labels on this replica; recalibrate: %s",
                    STATUS_TEXT[report.status], *key, report.error_rate, report.lower, report.target,
                    report.labelled, recalibration_command(targets),
                )  # fmt: skip
            if report.status == "alarm":
                self._alarmed.add(key)
            else:
                self._alarmed.discard(key)
        return True


def parse_body(body: Any) -> FeedbackBody:
    """The label in ``body``; a 400 that names the field and what a label holds (the completion routes' messages
    speak of OpenAI parameters, which a label has none of)."""
    if not isinstance(body, dict):
        got = "an empty body" if body is None else f"a JSON {type(body).__name__}"
        raise BadRequestError(f"the request body must be a JSON object {LABEL_FIELDS}; got {got}")
    try:
        return FeedbackBody.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error.get("type") == "extra_forbidden":
            name = str(error["loc"][-1])
            raise BadRequestError(f"unknown field {name!r}: a label is {LABEL_FIELDS}", param=name) from None
        message, param = validation_message(exc.errors())
        raise BadRequestError(message, param=param) from None


def _tenant(request: Request) -> str:
    """The tenant the authentication guard found for the request's key, where it knows tenants; else the default."""
    tenant = request.scope.get("state", {}).get(TENANT_KEY)
    name = getattr(tenant, "name", tenant)
    return name if isinstance(name, str) and name else DEFAULT_TENANT
