"""The proxy's Prometheus metrics (``GET /metrics``, through ``prometheus_client``) and the ASGI middleware that
counts every response.

Metrics (per app, on ``ServerState.metrics``; summed over the workers of ``gate serve --workers N``)::

    gate_requests_total{route,mode,status}   every HTTP response; mode "none" before a gate mode was chosen
    gate_decisions_total{decision}           answer / hedge / abstain / not_assessed (off-mode pass-throughs have none)
    gate_errors_total{type}                  error responses by OpenAI error code (its type when it has none)
    gate_signal_failures_total{signal}       signals that failed, leaving an assessment with fewer signals
    gate_llm_calls_total, gate_llm_tokens_total   LLM work spent by the gate's own signals (not the answer)
    gate_audit_write_failures_total          audit lines that could not be written (the server log says why)
    gate_upstream_latency_seconds            histogram: the upstream model generating the answer
    gate_own_latency_seconds                 histogram: everything else the gate added to a request
    gate_in_flight_requests, gate_max_concurrency   gauges: completion requests being served, and the limit
    gate_feedback_total{joined}              labels POSTed to /v1/gate/feedback; joined "false": this replica did not
                                             serve the request (gate monitor joins it from the logs)
    gate_monitor_labelled, gate_monitor_error_rate, gate_monitor_error_lower_bound, gate_monitor_error_upper_bound,
    gate_monitor_error_target, gate_monitor_alarm   {tenant,calibration,tier}: gauges of the guarantee's monitor
                                             (gate/monitor.py) over this replica's window of labels, set when a label
                                             arrives; alarm is 1 when the lower bound exceeds the target

One process keeps its values in a ``CollectorRegistry`` of its own app (never the library's global one, so
several apps in one process stay apart). The workers of ``gate serve --workers N`` share one port, so a scrape
reaches any of them: they use prometheus_client's multiprocess mode. ``gate serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` (to ``metrics_dir``) before it spawns them, each worker's values go to its own files
there, and every scrape merges all the files: counters and histograms sum over the workers, those that have
exited too (totals never go down); the gauges sum over the live workers (a worker that stops cleanly removes its
own; one that crashes keeps counting in them until ``gate serve`` restarts). The monitor's gauges are a rate and
bounds, which do not sum: each worker (and each replica) shows its own window, one series per worker (``pid``
label) in multiprocess mode, and ``gate_monitor_alarm`` is the largest over the workers. ``gate monitor`` reads the
logs of every replica and is the complete view.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.audit.log import Outcome
from gate.errors import ConfigError
from gate.monitor import GroupReport

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text format ``generate_latest`` writes (prometheus_client's ``CONTENT_TYPE_LATEST`` names version 1.0.0)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds in seconds, from 1 ms to 60 s (slower observations land in the +Inf bucket)."""
ROUTES = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/gate/feedback", "/healthz", "/readyz", "/metrics"}
)
"""Paths labelled as themselves; any other path is "other", so that probing clients cannot grow the series."""
MODE_KEY = "gate_mode"
"""The ``request.state`` attribute the completion handlers set once a request's gate mode is known."""
ERROR_BODY_LIMIT = 65_536
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MONITOR_LABELS = ("tenant", "calibration", "tier")
MONITOR_GAUGES = {
    "labelled": "labelled answered requests in the window",
    "error_rate": "error rate among them",
    "error_lower_bound": "one-sided Clopper-Pearson lower bound on the error rate",
    "error_upper_bound": "one-sided Clopper-Pearson upper bound on the error rate",
    "error_target": "the largest error rate the artifact promises (NaN: unknown)",
    "alarm": "1 when the lower bound exceeds the target (the target is no longer met)",
}


class ProxyMetrics:
    """Every metric of one app; with ``multiprocess_dir``, this worker's share of the values of all workers."""

    def __init__(self, *, limit: int, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is not None:
            _check_multiprocess(multiprocess_dir)
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode the values live in the directory's files and each scrape reads them back.
        self.registry = CollectorRegistry() if multiprocess_dir is None else None
        registry = self.registry
        self.requests = Counter(
            "gate_requests_total",
            "HTTP responses by route, gate mode and status code.",
            ("route", "mode", "status"),
            registry=registry,
        )
        self.decisions = Counter("gate_decisions_total", "Gate decisions by kind.", ("decision",), registry=registry)
        self.tenant_requests = Counter(
            "gate_tenant_requests_total",
            "Requests that reached the gate by tenant (configured names only, never keys) and outcome.",
            ("tenant", "outcome"),
            registry=registry,
        )
        self.errors = Counter(
            "gate_errors_total", "Error responses by OpenAI error code.", ("type",), registry=registry
        )
        self.signal_failures = Counter(
            "gate_signal_failures_total",
            "Signals that failed (the assessment went on without them).",
            ("signal",),
            registry=registry,
        )
        self.llm_calls = Counter(
            "gate_llm_calls_total", "LLM calls spent by the gate's own signals.", registry=registry
        )
        self.llm_tokens = Counter("gate_llm_tokens_total", "Tokens spent by the gate's own signals.", registry=registry)
        self.audit_failures = Counter(
            "gate_audit_write_failures_total",
            "Audit lines that could not be written (see the server log).",
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "gate_upstream_latency_seconds",
            "Time the upstream model took to generate the answer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.own_latency = Histogram(
            "gate_own_latency_seconds",
            "Time the gate added to a request besides the upstream answer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Updated where the slots are taken and released (a callback would not reach the other workers).
        self.in_flight = Gauge(
            "gate_in_flight_requests",
            "Completion requests being served now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_concurrency = Gauge(
            "gate_max_concurrency",
            "Completion requests served at once; more get 429.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_concurrency.set(limit)
        self.feedback = Counter(
            "gate_feedback_total",
            "Labels received, by whether this replica served the request.",
            ("joined",),
            registry=registry,
        )
        self.monitor = {
            name: Gauge(
                f"gate_monitor_{name}",
                f"The guarantee's monitor over this replica's window of labels: {text}.",
                MONITOR_LABELS,
                registry=registry,
                multiprocess_mode="livemax" if name == "alarm" else "liveall",
            )
            for name, text in MONITOR_GAUGES.items()
        }

    def observe(self, outcome: Outcome) -> None:
        """Count a request that reached the gate (a failed one only through its error response)."""
        if outcome.tenant is not None:
            kind = "error" if outcome.error is not None else outcome.decision or "pass-through"
            self.tenant_requests.labels(outcome.tenant, kind).inc()
        if outcome.error is not None:
            return
        if outcome.decision is not None:
            self.decisions.labels(outcome.decision).inc()
        for key in outcome.gate.get("errors", {}):
            self.signal_failures.labels(key).inc()
        cost = outcome.gate_cost
        self.llm_calls.inc(cost.calls)
        self.llm_tokens.inc(cost.prompt_tokens + cost.completion_tokens)
        if outcome.upstream_s is not None:
            self.upstream_latency.observe(outcome.upstream_s)
        self.own_latency.observe(outcome.own_s)

    def observe_monitor(self, report: GroupReport) -> None:
        """Set the monitor's gauges of one (tenant, artifact, tier) from its latest report."""
        labels = (report.tenant, report.calibration, report.tier)
        values = {
            "labelled": report.labelled,
            "error_rate": report.error_rate,
            "error_lower_bound": report.lower,
            "error_upper_bound": report.upper,
            "error_target": report.target,
            "alarm": 1.0 if report.status == "alarm" else 0.0,
        }
        for name, value in values.items():
            self.monitor[name].labels(*labels).set(math.nan if value is None else value)

    def render(self) -> bytes:
        """The exposition text (every worker's values merged, in multiprocess mode)."""
        if self.registry is not None:
            return generate_latest(_WithoutCreated(self.registry))
        merged = CollectorRegistry()  # a fresh one per scrape, as prometheus_client's multiprocess mode asks
        multiprocess.MultiProcessCollector(merged, path=str(self.multiprocess_dir))
        return generate_latest(merged)

    def close(self) -> None:
        """A worker stopping cleanly: its gauges stop counting; its counters and histograms stay in the sums."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))


def _check_multiprocess(directory: Path) -> None:
    """Refuse a ``metrics_dir`` that prometheus_client is not writing to: it chooses per-process files over
    values in memory once, when it is imported, by ``PROMETHEUS_MULTIPROC_DIR``; ``gate serve --workers`` sets it."""
    configured = os.environ.get(MULTIPROC_ENV)
    files = getattr(values.ValueClass, "_multiprocess", False)
    if not files or configured is None or Path(configured).resolve() != directory.resolve():
        raise ConfigError(
            f"metrics_dir is {directory}, but prometheus_client keeps its values "
            + (f"in {MULTIPROC_ENV}={configured}" if files else "in memory")
            + f": metrics_dir is for the workers of gate serve --workers, which set {MULTIPROC_ENV} to it before "
            "they start; leave it unset otherwise"
        )


class _WithoutCreated:
    """A registry's metrics without the ``<name>_created`` series prometheus_client adds to counters and histograms.

    They were never exposed here, double the series a scrape stores, and the workers' files do not have them;
    the library's own switches are process-wide (``disable_created_metrics()``, or an environment variable read
    once at import), so they would reach other libraries' metrics in the process. This filter reaches this app's only.
    """

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():  # fresh objects on every collect: changing them changes nothing else
            family.samples = [sample for sample in family.samples if sample.name != f"{family.name}_created"]
            yield family


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
        self.metrics.requests.labels(route, mode, str(seen.status)).inc()
        if seen.status is not None and seen.status >= 400:
            self.metrics.errors.labels(seen.error_type()).inc()
