"""The assessment cache of identical greedy requests: keys, the in-process LRU, and Redis shared by replicas."""

from __future__ import annotations

import asyncio

import pytest
import redis

from estimators.base import Cost
from gate.assessment import Assessment
from gate.config import load_settings
from gate.errors import StateUnavailableError
from gate.state.assessment_cache import (
    PREFIX,
    MemoryAssessmentCache,
    RedisAssessmentCache,
    assessment_cache,
    request_key,
    served_from_cache,
)

PROMPT = [{"role": "user", "content": "Who wrote Hamlet?"}]
INPUTS = {"signals": ["logprob_min"], "cascade": True, "max_tokens": 64}
ASSESSMENT = Assessment(
    question="Who wrote Hamlet?",
    answer="William Shakespeare",
    decision="answer",
    probability=0.91,
    reasons=["high token probability"],
    answer_cost=Cost(calls=1, prompt_tokens=12, completion_tokens=3),
    gate_cost=Cost(calls=1, prompt_tokens=40, completion_tokens=20),
    calibration="local/gemma@v1:abc",
)


def key(**changes: object) -> str | None:
    arguments: dict = {"model": "m", "calibration": "c", "prompt": PROMPT, "temperature": 0.0, "inputs": INPUTS}
    return request_key(**{**arguments, **changes})


def test_only_greedy_requests_have_a_key_and_every_input_changes_it() -> None:
    assert key() == key() and len(key() or "") == 64
    assert key(temperature=1.0) is None and key(temperature=None) is None  # sampled (None: the upstream default)
    others = [
        key(model="n"),
        key(calibration="d"),
        key(prompt=[{"role": "user", "content": "Who wrote Macbeth?"}]),
        key(inputs={**INPUTS, "signals": ["consistency"]}),
        key(inputs={**INPUTS, "max_tokens": 65}),
        key(namespace="team-b"),
    ]
    assert len({key(), *others}) == 7


def test_a_repeat_is_served_at_no_cost_with_the_same_decision() -> None:
    served = served_from_cache(ASSESSMENT)
    assert served.cost == Cost() and served.decision == "answer" and served.answer == ASSESSMENT.answer


async def test_the_memory_cache_is_bounded_and_expires() -> None:
    cache = MemoryAssessmentCache(ttl_s=1, max_entries=2)
    for name in ("a", "b", "c"):
        await cache.put(name, ASSESSMENT)
    assert await cache.get("a") is None and await cache.get("c") == ASSESSMENT  # the oldest went
    await asyncio.sleep(1.1)
    assert await cache.get("c") is None


def test_off_by_default_and_built_from_the_settings(redis_url) -> None:
    assert assessment_cache(load_settings()) is None
    assert isinstance(assessment_cache(load_settings(assessment_cache_ttl_s=60)), MemoryAssessmentCache)
    shared = assessment_cache(load_settings(assessment_cache_ttl_s=60, state=redis_url))
    assert isinstance(shared, RedisAssessmentCache)


def replica(url: str, **overrides: object) -> RedisAssessmentCache:
    overrides.setdefault("state_timeout_s", 5)  # a busy machine's slow call must not read as an outage here
    settings = load_settings(state=url, state_retry_s=0.2, assessment_cache_ttl_s=60, **overrides)
    cache = assessment_cache(settings)
    assert isinstance(cache, RedisAssessmentCache)
    return cache


async def test_an_assessment_stored_by_one_replica_serves_another_as_json(redis_url) -> None:
    first, second = replica(redis_url), replica(redis_url)
    await first.put("k1", ASSESSMENT)
    assert await second.get("k1") == ASSESSMENT and await second.get("k2") is None
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.ttl(PREFIX + "e:k1") > 0  # expiring
    assert Assessment.model_validate_json(client.get(PREFIX + "e:k1")) == ASSESSMENT  # JSON, never pickle


async def test_redis_keeps_at_most_the_bound(redis_url) -> None:
    cache = replica(redis_url, assessment_cache_max_entries=3)
    for index in range(6):
        await cache.put(f"k{index}", ASSESSMENT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(client.keys(PREFIX + "e:*")) == [PREFIX + f"e:k{i}" for i in (3, 4, 5)]


async def test_a_foreign_value_is_a_miss(redis_url) -> None:
    redis.Redis.from_url(redis_url).set(PREFIX + "e:k1", b"\x80\x04not an assessment")
    assert await replica(redis_url).get("k1") is None


async def test_redis_down_is_a_miss_when_open_and_a_503_error_when_closed(redis_server) -> None:
    opened, closed = replica(redis_server.url), replica(redis_server.url, state_failure="closed")
    redis_server.stop()
    assert await opened.get("k1") is None
    await opened.put("k1", ASSESSMENT)  # kept in this process, the request goes on
    assert await opened.get("k1") == ASSESSMENT
    with pytest.raises(StateUnavailableError):
        await closed.get("k2")
