"""The audit log on a Redis stream, next to the file (``audit_stream: true`` with ``state: redis://...``).

Every replica appends its lines to one stream, ``gate:audit``: one entry per request, a field ``line`` holding
exactly the JSON line the file gets (secrets already masked), so ``gate audit tail --redis`` and
``gate audit summary --redis`` read every replica's requests in the order Redis received them. The request
waits for its entry before it is answered, as it does for the file: a replica that dies after answering has
already handed its line to Redis (kept across a Redis restart only with Redis persistence, e.g. AOF).
The stream is trimmed to about ``audit_stream_maxlen`` entries (``MAXLEN ~``, Redis trims whole nodes).

With Redis down: ``state_failure`` open drops the entries of the outage (logged once; the file, when
configured, still has them); closed raises :class:`gate.errors.StateUnavailableError` (a 503: no answer
without its audit entry).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis.asyncio

from gate.config import Settings
from gate.state.connection import FAILURES, Outage, async_client, sync_client

STREAM_KEY = "gate:audit"
_READ_BATCH = 1000


class AuditStream:
    """Appends audit lines to a Redis stream shared by every replica."""

    def __init__(self, client: redis.asyncio.Redis, *, outage: Outage, maxlen: int, key: str = STREAM_KEY) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self.client, self.outage, self.maxlen, self.key = client, outage, maxlen, key

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditStream | None:
        """The stream ``settings`` ask for, or ``None`` (``audit_stream`` off)."""
        if not settings.audit_stream:
            return None
        outage = Outage.from_settings("audit stream", settings)
        return cls(async_client(settings), outage=outage, maxlen=settings.audit_stream_maxlen)

    async def add(self, line: str) -> None:
        """Append one JSON line (without its newline); see the module docstring for a Redis that is down."""
        if self.outage.skip():
            return
        try:
            await self.client.xadd(self.key, {"line": line.rstrip("\n")}, maxlen=self.maxlen, approximate=True)
        except FAILURES as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose(close_connection_pool=True)


def stream_lines(settings: Settings, *, last: int | None = None, key: str = STREAM_KEY) -> Iterator[bytes]:
    """The stream's lines, oldest first: all of them, or the ``last`` ones (for the CLI; raises when unreachable).

    ``key`` names another stream of the same shape (the labels, ``gate:feedback``)."""
    client = sync_client(settings)
    try:
        if last is not None:
            entries = client.xrevrange(key, count=last) if last > 0 else []
            yield from (_line(fields) for _, fields in reversed(entries))
            return
        start = "-"
        while True:
            entries = client.xrange(key, min=start, count=_READ_BATCH)
            yield from (_line(fields) for _, fields in entries)
            if len(entries) < _READ_BATCH:
                return
            start = "(" + entries[-1][0]  # exclusive: the next batch starts after the last entry read
    finally:
        client.close()
        client.connection_pool.disconnect()


def _line(fields: dict[str, Any]) -> bytes:
    return str(fields.get("line", "")).encode("utf-8", "surrogatepass")
