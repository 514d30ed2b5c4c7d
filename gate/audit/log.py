"""The proxy's audit log: one JSON line per request that reached the gate, appended, flushed, rotated by size.

Each line holds (``null`` where a value does not apply)::

    {"time": "2026-05-09T07:35:25.123Z",      # UTC, when the request was answered
     "request_id": "...", "route": "chat" | "completions", "model": "...", "mode": "off" | "observe" | "enforce",
     "tenant": "acme",                         # the caller's tenant (gate.tenants), never its key
     "question_sha256": "...",                 # always; "question": the text too when audit_question = "text"
     "decision": "answer" | "hedge" | "abstain" | "not_assessed" | null, "probability": 0.93,
     "stage": "precheck" | "free" | "full" | "none",
     "signals": {"logprob_min": 0.91, ...}, "signal_errors": {...}, "skipped": {...}, "reasons": [...],
     "calibration": "artifact id",
     "latency_ms": {"total": 812.4, "upstream": 640.1, "gate": 172.3},  # upstream: the answer's generation
     "cost": {"calls": 3, "tokens": 412, "gate_calls": 2, "gate_tokens": 300},
     "error": null | {"type": "UpstreamError", "status": 504}}

``off``-mode pass-through requests get a line too, with ``decision`` null and no signals, so the log has
exactly one line per answered request. A request that fails after its options were accepted (upstream
failure, timeout, prompt too long for the context) gets a line with ``error`` set; requests refused before
that (auth, 429, malformed bodies) get none. The log never holds request headers, and every configured
secret (client keys, the upstream key) is replaced by ``***`` should one ever appear in a message.
With ``audit_stream`` the same lines also go to a Redis stream shared by replicas (:mod:`gate.audit.stream`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from estimators.base import Cost
from gate.audit.stream import AuditStream
from gate.config import GateMode, Settings
from gate.errors import ConfigError
from gate.secrets import mask_known, upstream_secrets

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

QuestionMode = Literal["text", "hash"]


class ServedReply(Protocol):
    """What the log reads of a served reply (``gate.server.wire.Reply``): the gate's view and the answer's usage."""

    @property
    def gate(self) -> Mapping[str, Any]: ...

    @property
    def usage(self) -> Cost: ...


@dataclass(frozen=True)
class Outcome:
    """One request that reached the gate, as the audit log and the metrics see it (no HTTP types)."""

    request_id: str
    route: Literal["chat", "completions"]
    model: str
    mode: GateMode
    question: str
    total_s: float
    gate: Mapping[str, Any] = field(default_factory=dict)
    upstream_s: float | None = None
    answer_cost: Cost = field(default_factory=Cost)
    gate_cost: Cost = field(default_factory=Cost)
    error: BaseException | None = None
    tenant: str | None = None  # whose key it came with (gate.tenants): the tenant's name, never the key

    @classmethod
    def served(cls, reply: ServedReply, *, total_s: float, reply_s: float, **request: Any) -> Outcome:
        """A request answered with ``reply``; ``reply_s`` is how long generating and gating it took."""
        view = reply.gate
        if request["mode"] == "off":
            upstream_s: float | None = reply_s  # a pass-through is nothing but the upstream call
        elif view.get("stage") == "precheck":
            upstream_s = None  # abstained before any answer was generated
        else:
            upstream_s = reply.usage.seconds  # the pipeline times the answer's generation itself
        gate_cost = Cost(**view["gate_cost"]) if "gate_cost" in view else Cost()
        return cls(
            **request, total_s=total_s, gate=view, upstream_s=upstream_s, answer_cost=reply.usage, gate_cost=gate_cost
        )

    @property
    def decision(self) -> str | None:
        """The gate's decision (``None`` for a pass-through or a failure)."""
        return self.gate.get("decision")

    @property
    def own_s(self) -> float:
        """The gate's own share of the latency: everything but the upstream answer call."""
        return max(0.0, self.total_s - (self.upstream_s or 0.0))


def audit_record(outcome: Outcome, *, question: QuestionMode) -> dict[str, Any]:
    """The audit line of ``outcome`` as a JSON-able dict (the module docstring lists the fields)."""
    view, cost, gate_cost = outcome.gate, outcome.answer_cost + outcome.gate_cost, outcome.gate_cost
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": outcome.request_id,
        "route": outcome.route,
        "model": outcome.model,
        "mode": outcome.mode,
        **({"tenant": outcome.tenant} if outcome.tenant is not None else {}),
        # surrogatepass: a lone surrogate (legal in JSON's \\uXXXX escapes, not in UTF-8) still gets a hash
        "question_sha256": hashlib.sha256(outcome.question.encode("utf-8", "surrogatepass")).hexdigest(),
    }
    if question == "text":
        record["question"] = outcome.question
    upstream = None if outcome.upstream_s is None else _ms(outcome.upstream_s)
    return record | {
        "decision": outcome.decision,
        "probability": view.get("probability"),
        "stage": view.get("stage"),
        "signals": view.get("signals", {}),
        "signal_errors": view.get("errors", {}),
        "skipped": view.get("skipped", {}),
        "reasons": view.get("reasons", []),
        "calibration": view.get("calibration"),
        "latency_ms": {"total": _ms(outcome.total_s), "upstream": upstream, "gate": _ms(outcome.own_s)},
        "cost": {
            "calls": cost.calls,
            "tokens": cost.prompt_tokens + cost.completion_tokens,
            "gate_calls": gate_cost.calls,
            "gate_tokens": gate_cost.prompt_tokens + gate_cost.completion_tokens,
        },
        "error": None if outcome.error is None else _error(outcome.error),
        **_claims(view),
    }


def _claims(view: Mapping[str, Any]) -> dict[str, Any]:
    """A long answer's claim verdicts, without their text (the log keeps no answers): span, probability, decision."""
    claims = view.get("claims")
    if claims is None:
        return {}
    kept = ("span", "probability", "decision")
    return {"claims": [{key: claim[key] for key in kept} for claim in claims], "claim_route": view.get("claim_route")}


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _error(error: BaseException) -> dict[str, Any]:
    """The exception's class and its own ``status`` (HTTP or upstream) where it has one; never its message."""
    status = getattr(error, "status", None)
    return {"type": type(error).__name__, "status": status if isinstance(status, int) else None}


class AuditLog:
    """Appends audit lines to ``path`` from a worker thread, one write at a time, rotating by size.

    Each line is opened, written and flushed on its own, and the request waits for its line before it is
    answered: a crash loses at most the line being written (a torn last line, which readers skip). Writers
    queue on an ``asyncio.Lock``: when the disk is slow, requests wait (back-pressure), nothing is dropped.
    ``flush`` hands the line to the operating system; it does not ``fsync`` (a power cut may lose more).
    Several processes may share one file (``gate serve --workers``): each line is written under an
    exclusive file lock, and rotation happens under it too (POSIX; elsewhere, one process per file).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        max_bytes: int,
        backups: int,
        question: QuestionMode,
        secrets: Iterable[str] = (),
        stream: AuditStream | None = None,
    ) -> None:
        self.path, self.max_bytes, self.backups, self.question = path, max_bytes, backups, question
        self.secrets = tuple(secret for secret in secrets if secret)
        self.stream = stream  # the same lines on a Redis stream shared by replicas (gate/audit/stream.py)
        self._lock = asyncio.Lock()  # writers wait here without holding a worker thread
        self._file_lock = threading.Lock()  # a cancelled writer's thread may still be writing: never interleave
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        if path is None:
            return
        try:  # a path that cannot be written stops the server at start, not at the first request
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab"):
                pass
        except OSError as exc:
            raise ConfigError(f"audit_path {path} cannot be written: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog | None:
        """The audit log ``settings`` ask for (``None`` without ``audit_path`` or ``audit_stream``); every configured
        key is masked."""
        stream = AuditStream.from_settings(settings)
        if settings.audit_path is None and stream is None:
            return None
        secrets = [key.get_secret_value() for key in (*settings.api_keys, *settings.privileged_api_keys)]
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        secrets += upstream_secrets(api_key, settings.api_base)
        return cls(
            settings.audit_path,
            max_bytes=settings.audit_max_bytes,
            backups=settings.audit_backups,
            question=settings.audit_question,
            secrets=secrets,
            stream=stream,
        )

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every record written from now on (the live monitor of :mod:`gate.server.feedback`)."""
        self._listeners.append(listener)

    async def write(self, outcome: Outcome) -> None:
        """Append the line of ``outcome`` to the file and the stream; returns once both have it (raises ``OSError``
        when the file cannot be written, ``StateUnavailableError`` when the stream fails closed)."""
        record = audit_record(outcome, question=self.question)
        await self.write_line(self.masked(record))
        for listener in self._listeners:
            listener(record)

    async def write_line(self, line: str) -> None:
        """Append one JSON line, already masked, to the file and the stream (the same guarantees as ``write``)."""
        if self.path is not None:
            async with self._lock:
                # A lone surrogate cannot be UTF-8: written as its JSON escape (inside a string, where it stands),
                # so the line stays valid JSON and reads back as the same string.
                await asyncio.to_thread(self.append, line.encode("utf-8", "backslashreplace"))
        if self.stream is not None:
            await self.stream.add(line.encode("utf-8", "backslashreplace").decode("utf-8"))

    async def aclose(self) -> None:
        """Close the stream's connections (the file is opened per line and needs no closing)."""
        if self.stream is not None:
            await self.stream.aclose()

    def line(self, outcome: Outcome) -> str:
        """The JSON line for ``outcome``, every configured secret masked."""
        return self.masked(audit_record(outcome, question=self.question))

    def masked(self, record: Mapping[str, Any]) -> str:
        """``record`` as one JSON line, every configured secret masked."""
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        return mask_known(text, self.secrets) + "\n"

    def append(self, data: bytes) -> None:
        """Append one line (blocking); rotate first when it would take the file past ``max_bytes``.

        Safe across processes (``gate serve --workers N`` share one file): the writer holds an exclusive
        ``flock`` on the file while it checks the size, rotates and writes. A writer that waited on a file
        another process has just rotated away sees that the path now names a new file, and starts over.
        """
        assert self.path is not None, "append needs an audit file"
        with self._file_lock:
            while True:
                with self.path.open("ab") as file:
                    _lock_exclusively(file)  # released when the file closes
                    if not _is_current(file, self.path):
                        continue  # rotated by another worker while this one waited
                    size = os.fstat(file.fileno()).st_size
                    if size and size + len(data) > self.max_bytes:  # a line over the limit gets a file of its own
                        self._rotate()
                        continue
                    file.write(data)
                    file.flush()
                    return

    def _rotate(self) -> None:
        """path -> path.1 -> path.2 ... up to ``backups`` files; the oldest one is overwritten."""
        assert self.path is not None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = backup_path(self.path, index)
            if older.exists():
                os.replace(older, backup_path(self.path, index + 1))
        os.replace(self.path, backup_path(self.path, 1))


def _lock_exclusively(file: BinaryIO) -> None:
    if fcntl is not None:  # POSIX; elsewhere one process per audit file (the threading lock covers it)
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)


def _is_current(file: BinaryIO, path: Path) -> bool:
    """Whether ``path`` still names the open ``file`` (not so once another process rotated it away)."""
    try:
        return os.path.samestat(os.fstat(file.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def backup_path(path: Path, index: int) -> Path:
    """The ``index``-th rotated file of ``path`` (1 is the most recent)."""
    return path.with_name(f"{path.name}.{index}")
