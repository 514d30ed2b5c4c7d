"""The labels log: one JSON line per label POSTed to ``/v1/gate/feedback``, appended beside the audit log.

Each line holds::

    {"time": "2026-05-09T07:40:02.511Z",   # UTC, when the label arrived
     "request_id": "...",                  # the audit record's request_id (the completion id without its prefix)
     "correct": true | false,              # whether the answer was right
     "tenant": "default",                  # who sent the label (the request's tenant where the server knows one)
     "note": "..." | null}                 # free text from the reviewer, secrets masked

The file is append-only and written exactly like the audit log (:class:`gate.audit.log.AuditLog`: one flushed line
per label, an exclusive lock shared by ``gate serve --workers``, rotation by ``audit_max_bytes`` and
``audit_backups``): a request labelled twice has two lines and the latest one wins in ``gate monitor``. With
``audit_stream`` the same lines also go to the Redis stream ``gate:feedback``, on the audit stream's connections.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate.audit.log import AuditLog
from gate.audit.stream import AuditStream
from gate.config import Settings

FEEDBACK_STREAM_KEY = "gate:feedback"


def feedback_path_of(settings: Settings) -> Path | None:
    """Where labels are written: ``feedback_path``, else beside ``audit_path`` (``audit.jsonl`` ->
    ``audit.feedback.jsonl``), else nowhere on disk."""
    if settings.feedback_path is not None:
        return settings.feedback_path
    audit = settings.audit_path
    if audit is None:
        return None
    return audit.with_name(f"{audit.stem}.feedback{audit.suffix or '.jsonl'}")


def feedback_record(request_id: str, *, correct: bool, tenant: str, note: str | None) -> dict[str, Any]:
    """The line of one label (the module docstring lists the fields)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"time": now, "request_id": request_id, "correct": correct, "tenant": tenant, "note": note}


def feedback_log(settings: Settings, audit: AuditLog) -> AuditLog:
    """The labels' sink, beside ``audit``: its file (:func:`feedback_path_of`) and, when ``audit`` has a stream,
    ``gate:feedback`` on the same Redis connections (closed with the audit log's, so this one needs no closing)."""
    stream = None
    if audit.stream is not None:
        stream = AuditStream(
            audit.stream.client,
            outage=audit.stream.outage,
            maxlen=settings.audit_stream_maxlen,
            key=FEEDBACK_STREAM_KEY,
        )
    return AuditLog(
        feedback_path_of(settings),
        max_bytes=settings.audit_max_bytes,
        backups=settings.audit_backups,
        question=settings.audit_question,
        secrets=audit.secrets,
        stream=stream,
    )
