"""Concept familiarity shared by every replica on Redis (``state: redis://...``).

The same get/put contract as :mod:`gate.concept_cache` (``estimators.familiarity.ConceptCache``), with an
in-process LRU in front, so a concept this process has seen costs no round trip. What Redis holds, per
model (``gate:fam:{<model hash>}:``):

- one string per concept, ``<prefix>e:<sha256 of method|concept>`` -> the score as JSON, expiring
  ``state_cache_ttl_s`` after it was last written. Only hashes of concepts are stored, never their text.
- one sorted set ``<prefix>idx`` of those keys scored by their last write time, the size bound's ledger.

The bound (``state_cache_max_entries`` per model) is enforced in the same Lua script as the write, so it
holds at every moment and across replicas: the script drops index entries whose TTL has passed, then deletes
the least recently written entries beyond the bound. The braces make every key of one model hash to the
same Cluster slot, which a script touching several keys needs.

Redis calls are synchronous (the estimator's cache contract is), each bounded by ``state_timeout_s``; after a
failure Redis is skipped for ``state_retry_s`` (:class:`gate.state.connection.Outage`). Fail open: a failure
is a miss (get) or a score kept in memory only (put). Fail closed: :class:`gate.errors.StateUnavailableError`.
"""

from __future__ import annotations

import hashlib
import json
import math

import redis

from gate.concept_cache import MemoryConceptCache
from gate.config import Settings
from gate.state.connection import FAILURES, Outage, sync_client

# A bounded, expiring write (also used by gate/state/assessment_cache.py).
# KEYS[1] the entry, KEYS[2] the model's index; ARGV[1] the JSON value, ARGV[2] the TTL (s), ARGV[3] the bound.
# Server time, not the caller's, orders the index: replicas' clocks may disagree. Deletions go in chunks of
# 1000: unpack() of a longer list overflows Lua's stack (a bound lowered by far between two deployments).
BOUNDED_PUT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[2], t, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t - ttl)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
local dropped = math.max(over, 0)
while over > 0 do
  local n = math.min(over, 1000)
  local oldest = redis.call('ZRANGE', KEYS[2], 0, n - 1)
  redis.call('DEL', unpack(oldest))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
  over = over - n
end
redis.call('EXPIRE', KEYS[2], ttl)
return dropped
"""


def model_prefix(model: str) -> str:
    """Where one model's familiarity lives; the hash keeps odd model names out of key syntax."""
    return f"gate:fam:{{{hashlib.sha256(model.encode()).hexdigest()[:16]}}}:"


class RedisConceptCache:
    """Concept scores of one model on Redis, bounded and expiring, with an in-process LRU in front."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        model: str,
        outage: Outage,
        ttl_s: int = 7 * 86_400,
        max_entries: int = 200_000,
    ) -> None:
        if ttl_s < 1 or max_entries < 1:
            raise ValueError(f"ttl_s and max_entries must be at least 1, got {ttl_s} and {max_entries}")
        self.client, self.model, self.outage = client, model, outage
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self.prefix = model_prefix(model)
        self._memory = MemoryConceptCache()
        self._put = client.register_script(BOUNDED_PUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisConceptCache:
        """The cache for ``settings.model`` on ``settings.state``."""
        return cls(
            sync_client(settings),
            model=settings.model,
            outage=Outage.from_settings("familiarity cache", settings),
            ttl_s=settings.state_cache_ttl_s,
            max_entries=settings.state_cache_max_entries,
        )

    def get(self, key: str) -> float | None:
        """The score from memory, else from Redis (then kept in memory), else ``None``."""
        score = self._memory.get(key)
        if score is not None or self.outage.skip():
            return score
        try:
            raw = self.client.get(self._entry(key))
        except UnicodeDecodeError:  # not text, so not ours: Redis answered, the entry is a miss
            raw = None
        except FAILURES as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        score = _score(raw)
        if score is not None:
            self._memory.put(key, score)
        return score

    def put(self, key: str, score: float) -> None:
        """Keep ``score`` in memory and on Redis (trimming Redis to the bound in the same script)."""
        self._memory.put(key, score)
        if self.outage.skip():
            return
        try:
            args = [json.dumps(float(score)), self.ttl_s, self.max_entries]
            self._put(keys=[self._entry(key), self.prefix + "idx"], args=args)
        except FAILURES as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()

    def close(self) -> None:
        """Close the connections (the memory front stays usable)."""
        self.client.close()
        self.client.connection_pool.disconnect()

    def _entry(self, key: str) -> str:
        return self.prefix + "e:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _score(raw: str | None) -> float | None:
    """A stored score, or ``None`` for a missing or foreign value (another writer's bug must not fail a request)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
