"""Redis clients that never hang a request, and the one place that applies ``state_failure``.

Every call has a connect and read timeout (``state_timeout_s``). After a failure the :class:`Outage` keeps
Redis out of the path for ``state_retry_s``: requests meanwhile do not wait on the timeout again, and the
outage is logged once when it starts and once when Redis answers again, not once per request.
What a failure means is the caller's policy: ``open`` (go on without the state) or ``closed``
(:class:`gate.errors.StateUnavailableError`, a 503 at the server).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from gate.config import Settings, StateFailure, without_password
from gate.errors import StateUnavailableError

logger = logging.getLogger(__name__)

FAILURES: tuple[type[Exception], ...] = (redis.RedisError, OSError)
"""What an unreachable, slow or refusing Redis raises (redis-py wraps socket errors, but not all of them)."""


def _connection_options(settings: Settings, retry: Retry | AsyncRetry) -> dict[str, object]:
    # No retries inside redis-py: a retry would multiply the timeout a request can wait, and the Outage
    # already decides when Redis is tried again.
    return {
        "socket_timeout": settings.state_timeout_s,
        "socket_connect_timeout": settings.state_timeout_s,
        "retry": retry,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def sync_client(settings: Settings) -> redis.Redis:
    """A client for the ``state`` URL with bounded timeouts (connections are made on first use).

    A blocking pool: beyond ``state_max_connections`` a call waits for a free connection, at most
    ``state_timeout_s`` (redis-py's default pool raises at once instead, which under a burst looked like an
    outage and, failing open, let requests past the limits).
    """
    pool = redis.BlockingConnectionPool.from_url(
        settings.state,
        max_connections=settings.state_max_connections,
        timeout=settings.state_timeout_s,
        **_connection_options(settings, Retry(NoBackoff(), 0)),
    )
    return redis.Redis(connection_pool=pool)


def async_client(settings: Settings) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`sync_client`, for code on the server's event loop."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.state,
        max_connections=settings.state_max_connections,
        timeout=settings.state_timeout_s,
        **_connection_options(settings, AsyncRetry(NoBackoff(), 0)),
    )
    return redis.asyncio.Redis(connection_pool=pool)


@dataclass
class Outage:
    """Whether Redis is being left alone after a failure, and the failure policy to apply meanwhile.

    Shared by threads (the familiarity cache is called from worker threads too), hence the lock.
    """

    what: str
    url: str
    failure: StateFailure
    retry_s: float
    _down_until: float = 0.0
    _down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, what: str, settings: Settings) -> Outage:
        return cls(what, without_password(settings.state), settings.state_failure, settings.state_retry_s)

    def skip(self) -> bool:
        """True while Redis is left alone; raises instead when the policy is ``closed``."""
        with self._lock:
            skipping = self._down and time.monotonic() < self._down_until
        if skipping and self.failure == "closed":
            raise StateUnavailableError(self.what)
        return skipping

    def failed(self, exc: BaseException) -> None:
        """Note a failed call (log it if it starts an outage); raises when the policy is ``closed``."""
        with self._lock:
            starting = not self._down
            self._down, self._down_until = True, time.monotonic() + self.retry_s
        if starting:
            then = "requests get 503" if self.failure == "closed" else "going on without it"
            logger.warning(
                "%s: Redis at %s unavailable (%s: %s); %s, next try in %.0f s",
                self.what,
                self.url,
                type(exc).__name__,
                exc,
                then,
                self.retry_s,
            )
        if self.failure == "closed":
            raise StateUnavailableError(self.what) from exc

    def succeeded(self) -> None:
        """Note a call that worked (log the end of an outage)."""
        if not self._down:
            return
        with self._lock:
            ended, self._down = self._down, False
        if ended:
            logger.warning("%s: Redis at %s reachable again", self.what, self.url)
