"""The proxy's Prometheus metrics (``GET /metrics``) and the ASGI middleware that counts every response.

Metrics (per app, on ``ServerState.metrics``; summed over the workers of ``gate serve --workers N``)::

    gate_requests_total{route,mode,status}   every HTTP response; mode "none" before a gate mode was chosen
    gate_decisions_total{decision}           answer / hedge / abstain (off-mode pass-throughs have none)
    gate_errors_total{type}                  error responses by OpenAI error code (its type when it has none)
    gate_signal_failures_total{signal}       signals that failed, leaving an assessment with fewer signals
    gate_llm_calls_total, gate_llm_tokens_total   LLM work spent by the gate's own signals (not the answer)
    gate_audit_write_failures_total          audit lines that could not be written (the server log says why)
    gate_upstream_latency_seconds            histogram: the upstream model generating the answer
    gate_own_latency_seconds                 histogram: everything else the gate added to a request
    gate_in_flight_requests, gate_max_concurrency   gauges: completion requests being served, and the limit
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.audit.log import Outcome
from gate.server.metrics_share import SharedMetrics
from gate.server.prom import Counter, Gauge, Histogram, Registry

ROUTES = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz", "/readyz", "/metrics"})
"""Paths labelled as themselves; any other path is "other", so that probing clients cannot grow the series."""
MODE_KEY = "gate_mode"
"""The ``request.state`` attribute the completion handlers set once a request's gate mode is known."""
ERROR_BODY_LIMIT = 65_536


class ProxyMetrics:
    """Every metric of one app; updated on the event loop only, so no lock is needed."""

    def __init__(self, *, in_flight: Callable[[], float], limit: int) -> None:
        add = (registry := Registry()).add
        self.registry = registry
        self.shared: SharedMetrics | None = None  # gate serve --workers: the other workers' values too
        self.requests = add(
            Counter(
                "gate_requests_total",
                "HTTP responses by route, gate mode and status code.",
                ("route", "mode", "status"),
            )
        )
        self.decisions = add(Counter("gate_decisions_total", "Gate decisions by kind.", ("decision",)))
        self.errors = add(Counter("gate_errors_total", "Error responses by OpenAI error code.", ("type",)))
        self.signal_failures = add(
            Counter(
                "gate_signal_failures_total", "Signals that failed (the assessment went on without them).", ("signal",)
            )
        )
        self.llm_calls = add(Counter("gate_llm_calls_total", "LLM calls spent by the gate's own signals."))
        self.llm_tokens = add(Counter("gate_llm_tokens_total", "Tokens spent by the gate's own signals."))
        self.audit_failures = add(
            Counter("gate_audit_write_failures_total", "Audit lines that could not be written (see the server log).")
        )
        self.upstream_latency = add(
            Histogram("gate_upstream_latency_seconds", "Time the upstream model took to generate the answer.")
        )
        self.own_latency = add(
            Histogram("gate_own_latency_seconds", "Time the gate added to a request besides the upstream answer.")
        )
        add(Gauge("gate_in_flight_requests", "Completion requests being served now.", in_flight))
        add(Gauge("gate_max_concurrency", "Completion requests served at once; more get 429.", lambda: limit))

    def observe(self, outcome: Outcome) -> None:
        """Count a request that reached the gate (a failed one only through its error response)."""
        if outcome.error is not None:
            return
        if outcome.decision is not None:
            self.decisions.inc(outcome.decision)
        for key in outcome.gate.get("errors", {}):
            self.signal_failures.inc(key)
        cost = outcome.gate_cost
        self.llm_calls.inc(amount=cost.calls)
        self.llm_tokens.inc(amount=cost.prompt_tokens + cost.completion_tokens)
        if outcome.upstream_s is not None:
            self.upstream_latency.observe(outcome.upstream_s)
        self.own_latency.observe(outcome.own_s)

    def render(self) -> str:
        """The exposition text (every worker's values summed, when they share them)."""
        return self.registry.render() if self.shared is None else self.shared.render()


@dataclass
class _Seen:
    """What the middleware saw of one response."""

    status: int | None = None
    body: bytearray = field(default_factory=bytearray)

    def record(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and (self.status or 0) >= 400:
            self.body += message.get("body", b"")[: ERROR_BODY_LIMIT - len(self.body)]

    def error_type(self) -> str:
        """The OpenAI error code of an error body (its type when it has no code), else ``http_<status>``."""
        try:
            error = json.loads(self.body)["error"]
            return str(error.get("code") or error["type"])
        except (ValueError, KeyError, TypeError, AttributeError):  # not OpenAI's error shape
            return f"http_{self.status}"


class MetricsMiddleware:
    """Counts every HTTP response by route, gate mode and status, and error responses by their code."""

    def __init__(self, app: ASGIApp, *, metrics: ProxyMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the same dict request.state writes to downstream
        seen = _Seen()

        async def observed(message: Message) -> None:
            seen.record(message)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            if seen.status is None:  # Starlette's outermost middleware answers 500 after this one re-raises
                seen.status, seen.body = 500, bytearray(b'{"error": {"code": "internal_error"}}')
            raise
        finally:
            if seen.status is not None:
                self._count(scope["path"], str(state.get(MODE_KEY, "none")), seen)

    def _count(self, path: str, mode: str, seen: _Seen) -> None:
        route = path if path in ROUTES else "other"
        self.metrics.requests.inc(route, mode, str(seen.status))
        if seen.status is not None and seen.status >= 400:
            self.metrics.errors.inc(seen.error_type())
