"""Per-API-key rate limits and daily quotas, enforced atomically across replicas by a Lua script on Redis.

The API is one call::

    quota = Quota.from_settings(settings)          # None when no limit is configured
    allowed = await quota.check_and_take(api_key, cost=1)
    if not allowed.ok:                              # answer 429 with retry-after: allowed.retry_after seconds
        ...

Two limits, checked and taken together (all or nothing) in one script, so replicas racing on one key can
never admit more than the limits between them (no read-modify-write from Python):

- a token bucket of ``rate_limit_burst`` requests refilled at ``rate_limit_rps``; every call takes one request;
- a daily quota of ``daily_quota`` units per UTC day; a call takes ``cost`` units (the server passes 1 per
  request, the upstream answer's call; a caller that counts tokens passes those). Usage known only after
  answering can be added with ``await quota.charge(api_key, cost)`` (no check: it refuses the next request).

Keys are never stored or logged: Redis sees ``sha256(api_key)`` inside a hash tag (one Cluster slot per key),
``gate:rl:{<hash>}`` for the bucket (a hash of tokens and time, expiring once full again) and
``gate:quota:{<hash>}:<YYYYMMDD>`` for the day's count (expiring after the day). The script reads the time
from Redis, so replicas' clocks do not matter, except the day's name, taken from this host's UTC date.

When Redis fails, :class:`gate.state.connection.Outage` applies ``state_failure``: open admits the request
(limits are not enforced during the outage, logged once), closed raises :class:`gate.errors.StateUnavailableError`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import redis.asyncio

from gate.config import Settings
from gate.state.connection import FAILURES, Outage, async_client

Limit = Literal["rate", "daily"]

# KEYS[1] the bucket, KEYS[2] the day's count; ARGV: rate/s (0: none), burst, cost, daily (0: none).
# Returns {admitted 0/1, retry_after seconds as a string (Lua numbers become integers in replies), which limit}.
_CHECK_AND_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, daily = tonumber(ARGV[3]), tonumber(ARGV[4])
if daily > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + cost > daily then
    return {0, tostring(86400 - (tonumber(now[1]) % 86400)), 'daily'}
  end
end
if rate > 0 then
  local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'time')
  local tokens = tonumber(bucket[1]) or burst
  local last = tonumber(bucket[2]) or t
  tokens = math.min(burst, tokens + math.max(0, t - last) * rate)
  if tokens < 1 then
    return {0, tostring((1 - tokens) / rate), 'rate'}
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'time', tostring(t))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
if daily > 0 then
  redis.call('INCRBY', KEYS[2], cost)
  redis.call('EXPIRE', KEYS[2], 2 * 86400)
end
return {1, '0', ''}
"""


@dataclass(frozen=True)
class Allowed:
    """Whether a request may go on; if not, after how many seconds it may, and which limit refused it."""

    ok: bool
    retry_after: float = 0.0
    limit: Limit | None = None


def key_hash(api_key: str) -> str:
    """What Redis and the log know of a key (log at most a prefix of it)."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


class Quota:
    """Per-key limits on one Redis, shared by every replica; ``None`` limits are not enforced."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        outage: Outage,
        rate_per_s: float | None = None,
        burst: int | None = None,
        daily: int | None = None,
    ) -> None:
        if rate_per_s is not None and rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive or None, got {rate_per_s}")
        if daily is not None and daily < 1:
            raise ValueError(f"daily must be at least 1 or None, got {daily}")
        self.client, self.outage = client, outage
        self.rate_per_s, self.daily = rate_per_s, daily
        self.burst = burst if burst is not None else (math.ceil(rate_per_s) if rate_per_s else None)
        self._script = client.register_script(_CHECK_AND_TAKE)

    @classmethod
    def from_settings(cls, settings: Settings) -> Quota | None:
        """The limits ``settings`` configure on ``settings.state``, or ``None`` when there are none."""
        if settings.rate_limit_rps is None and settings.daily_quota is None:
            return None
        return cls(
            async_client(settings),
            outage=Outage.from_settings("rate limits", settings),
            rate_per_s=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            daily=settings.daily_quota,
        )

    async def check_and_take(self, api_key: str, cost: int = 1) -> Allowed:
        """Take one request and ``cost`` daily units for ``api_key`` if both limits allow it, atomically.

        Raises :class:`gate.errors.StateUnavailableError` when Redis fails and ``state_failure`` is closed.
        """
        if cost < 0:
            raise ValueError(f"cost must be at least 0, got {cost}")
        if self.outage.skip():
            return Allowed(True)
        keys = self._keys(api_key)
        args = [self.rate_per_s or 0, self.burst or 0, cost, self.daily or 0]
        try:
            admitted, retry_after, limit = await self._script(keys=keys, args=args)
        except FAILURES as exc:
            self.outage.failed(exc)
            return Allowed(True)
        self.outage.succeeded()
        if int(admitted):
            return Allowed(True)
        return Allowed(False, float(retry_after), "daily" if limit == "daily" else "rate")

    @staticmethod
    def _keys(api_key: str) -> list[str]:
        """The bucket's key and today's count's key (the day from this host's UTC date)."""
        digest = key_hash(api_key)
        day = datetime.now(UTC).strftime("%Y%m%d")
        return [f"gate:rl:{{{digest}}}", f"gate:quota:{{{digest}}}:{day}"]

    async def charge(self, api_key: str, cost: int) -> None:
        """Add ``cost`` units to today's count of ``api_key`` without a check: usage known only after answering
        (tokens, the gate's own calls), so that the key's next request is refused once its day is spent.

        Same failure policy as :meth:`check_and_take` (open: the charge is lost, logged once per outage).
        """
        if cost < 0:
            raise ValueError(f"cost must be at least 0, got {cost}")
        if self.daily is None or cost == 0 or self.outage.skip():
            return
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                day_key = self._keys(api_key)[1]
                await pipe.incrby(day_key, cost).expire(day_key, 2 * 86_400).execute()
        except FAILURES as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose(close_connection_pool=True)
