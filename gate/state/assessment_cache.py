"""Assessments of identical greedy requests, kept so that a repeat costs no LLM call (opt-in).

``assessment_cache_ttl_s`` > 0 turns it on. Only a request decoded greedily (``temperature`` 0) is cached:
its answer would come out the same again, so serving the stored assessment changes the cost and nothing
else. A sampled request (the OpenAI default, temperature 1) expects a fresh draw and is never cached.

The key is a SHA-256 of everything the assessment depends on: the model, the calibration artifact, the
conversation, the client's own fields (tools, response_format...), the answer length, and the gate's plan
for the request (signals, budget, cascade, precheck); and a namespace (the tenant, where there are tenants)
so that one team's requests never answer another's. Off by default: a cached assessment holds the question
and the answer (the audit log stores the question hashed by default), and a deployment decides whether a
cache may keep them, and for how long.

Where it lives:

- ``state: memory``: this process, an LRU of ``assessment_cache_max_entries`` with the TTL
  (``cachetools.TTLCache``);
- ``state: redis://...``: shared by every replica, ``gate:ans:{ans}:e:<key>`` -> the assessment's JSON (never
  pickle), bounded and expiring by the same script as the familiarity cache
  (:data:`gate.state.redis_cache.BOUNDED_PUT`), with the LRU in front. A failure follows ``state_failure``:
  open is a miss (the request is assessed anew), closed a 503.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import redis.asyncio
from cachetools import TTLCache
from pydantic import ValidationError

from estimators.base import Cost
from gate.assessment import Assessment
from gate.config import Settings
from gate.state.connection import FAILURES, Outage, async_client
from gate.state.redis_cache import BOUNDED_PUT

logger = logging.getLogger(__name__)

PREFIX = "gate:ans:{ans}:"
"""Every key of the cache. One non-empty hash tag (Redis Cluster ignores an empty one): the bounding script
touches the entry and the index together, so they must share a slot."""


class AssessmentCache(Protocol):
    async def get(self, key: str) -> Assessment | None: ...

    async def put(self, key: str, assessment: Assessment) -> None: ...


def request_key(
    *,
    model: str,
    calibration: str,
    prompt: Any,
    temperature: float | None,
    inputs: Mapping[str, Any],
    namespace: str = "",
) -> str | None:
    """The cache key of one request, or ``None`` when it must not be cached (it is sampled).

    ``inputs`` are the other arguments the assessment is made with (JSON-able: the plan's signals, budget,
    cascade, precheck, the answer length and the client's fields).
    """
    if temperature != 0:
        return None
    material = {
        "namespace": namespace,
        "model": model,
        "calibration": calibration,
        "prompt": prompt,
        "inputs": dict(inputs),
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def served_from_cache(assessment: Assessment) -> Assessment:
    """A stored assessment as a repeat gets it: the same decision, at no cost this time."""
    return assessment.model_copy(update={"answer_cost": Cost(), "gate_cost": Cost()})


class MemoryAssessmentCache:
    """This process's assessments: an LRU bounded by entries, each expiring ``ttl_s`` after it was written."""

    def __init__(self, *, ttl_s: int, max_entries: int) -> None:
        if ttl_s < 1 or max_entries < 1:
            raise ValueError(f"ttl_s and max_entries must be at least 1, got {ttl_s} and {max_entries}")
        self._entries: TTLCache[str, Assessment] = TTLCache(maxsize=max_entries, ttl=ttl_s)

    async def get(self, key: str) -> Assessment | None:
        return self._entries.get(key)

    async def put(self, key: str, assessment: Assessment) -> None:
        self._entries[key] = assessment


class RedisAssessmentCache:
    """Assessments shared by every replica on Redis, bounded and expiring, with this process's LRU in front."""

    def __init__(
        self, client: redis.asyncio.Redis, *, outage: Outage, ttl_s: int, max_entries: int, memory_entries: int = 1024
    ) -> None:
        self.client, self.outage, self.ttl_s, self.max_entries = client, outage, ttl_s, max_entries
        self._memory = MemoryAssessmentCache(ttl_s=ttl_s, max_entries=min(memory_entries, max_entries))
        self._put = client.register_script(BOUNDED_PUT)

    async def get(self, key: str) -> Assessment | None:
        """From memory, else from Redis (then kept in memory), else ``None``; a foreign value is a miss."""
        found = await self._memory.get(key)
        if found is not None or self.outage.skip():
            return found
        try:
            raw = await self.client.get(PREFIX + "e:" + key)
        except UnicodeDecodeError:  # not text, so not ours: Redis answered, the entry is a miss
            raw = ""
        except FAILURES as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        if raw is None:
            return None
        try:
            found = Assessment.model_validate_json(raw)
        except ValidationError:  # written by another version, or not by us: assess anew
            logger.warning("assessment cache: an entry that is not an assessment was ignored")
            return None
        await self._memory.put(key, found)
        return found

    async def put(self, key: str, assessment: Assessment) -> None:
        """Keep it in memory and on Redis (trimming Redis to the bound in the same script)."""
        await self._memory.put(key, assessment)
        if self.outage.skip():
            return
        try:
            args = [assessment.model_dump_json(), self.ttl_s, self.max_entries]
            await self._put(keys=[PREFIX + "e:" + key, PREFIX + "idx"], args=args)
        except FAILURES as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()


def assessment_cache(settings: Settings) -> AssessmentCache | None:
    """The cache ``settings`` ask for, or ``None`` when it is off (the default)."""
    ttl, bound = settings.assessment_cache_ttl_s, settings.assessment_cache_max_entries
    if ttl == 0:
        return None
    if settings.state == "memory":
        return MemoryAssessmentCache(ttl_s=ttl, max_entries=bound)
    outage = Outage.from_settings("assessment cache", settings)
    return RedisAssessmentCache(async_client(settings), outage=outage, ttl_s=ttl, max_entries=bound)
