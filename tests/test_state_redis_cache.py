"""The familiarity cache on a real redis-server: shared between replicas, expiring, bounded, never hanging."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from gate.concept_cache import SqliteConceptCache
from gate.config import load_settings
from gate.errors import StateUnavailableError
from gate.factory import concept_cache_from
from gate.state.connection import Outage
from gate.state.redis_cache import RedisConceptCache, model_prefix
from tests.redis_fixture import RedisServer

MODEL = "openai/some-model"


def make_cache(url: str, **overrides: object) -> RedisConceptCache:
    """One replica's cache (its own memory front and connection pool), as the factory builds it."""
    overrides.setdefault("state_timeout_s", 5)  # a busy machine's slow call must not read as an outage here
    settings = load_settings(state=url, model=MODEL, state_retry_s=0.2, **overrides)
    cache = concept_cache_from(settings)
    assert isinstance(cache, RedisConceptCache)
    return cache


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def test_a_score_written_by_one_replica_is_read_by_another(redis_url):
    first, second = make_cache(redis_url), make_cache(redis_url)
    first.put("explain|Marie Curie", 0.75)
    assert second.get("explain|Marie Curie") == 0.75
    assert second.get("explain|Ada Lovelace") is None


def test_redis_holds_json_and_hashes_never_the_concept_text(redis_url):
    make_cache(redis_url).put("explain|Marie Curie", 0.5)
    client = raw_client(redis_url)
    keys = client.keys("*")
    assert all(key.startswith(model_prefix(MODEL)) for key in keys)
    assert not any("Curie" in key for key in keys)
    entries = [key for key in keys if ":e:" in key]
    assert [client.get(key) for key in entries] == ["0.5"]
    assert not any("Curie" in member for member in client.zrange(model_prefix(MODEL) + "idx", 0, -1))


def test_models_do_not_share_scores(redis_url):
    make_cache(redis_url).put("explain|Paris", 0.9)
    other = concept_cache_from(load_settings(state=redis_url, model="openai/other"))
    assert other.get("explain|Paris") is None


def test_entries_expire_after_the_ttl(redis_url):
    cache = make_cache(redis_url, state_cache_ttl_s=1)
    cache.put("explain|Paris", 0.9)
    entry = cache._entry("explain|Paris")
    assert 0 < raw_client(redis_url).pttl(entry) <= 1000
    time.sleep(1.2)
    assert make_cache(redis_url).get("explain|Paris") is None


def test_the_size_bound_keeps_the_most_recently_written(redis_url):
    cache = make_cache(redis_url, state_cache_max_entries=5)
    for i in range(12):
        cache.put(f"explain|concept {i}", i / 100)
    client = raw_client(redis_url)
    assert len(client.keys(model_prefix(MODEL) + "e:*")) == 5
    assert client.zcard(model_prefix(MODEL) + "idx") == 5
    fresh = make_cache(redis_url)
    assert [fresh.get(f"explain|concept {i}") for i in range(12)] == [None] * 7 + [0.07, 0.08, 0.09, 0.1, 0.11]


def test_the_size_bound_holds_with_replicas_writing_at_once(redis_url):
    bound = 20
    caches = [make_cache(redis_url, state_cache_max_entries=bound) for _ in range(4)]

    def write(cache: RedisConceptCache, start: int) -> None:
        for i in range(start, start + 100):
            cache.put(f"explain|c{i}", 0.5)

    threads = [threading.Thread(target=write, args=(cache, 100 * n)) for n, cache in enumerate(caches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = raw_client(redis_url)
    assert len(client.keys(model_prefix(MODEL) + "e:*")) == bound
    assert client.zcard(model_prefix(MODEL) + "idx") == bound


def test_a_foreign_value_is_a_miss(redis_url):
    cache = make_cache(redis_url)
    for value in ["not json", "true", '"0.5"', "NaN", b"\x80\x04 not text"]:  # the last one: not even UTF-8
        raw_client(redis_url).set(cache._entry("explain|x"), value)
        assert make_cache(redis_url).get("explain|x") is None


def test_redis_stopped_mid_test_fails_open_as_a_miss_logged_once(redis_server: RedisServer, caplog):
    writer = make_cache(redis_server.url)
    writer.put("explain|Paris", 0.9)
    reader = make_cache(redis_server.url)
    assert reader.get("explain|Paris") == 0.9
    redis_server.stop()
    fresh = make_cache(redis_server.url)
    caplog.set_level(logging.WARNING, logger="gate.state.connection")
    started = time.monotonic()
    assert fresh.get("explain|Paris") is None  # a miss, not an error
    fresh.put("explain|Rome", 0.8)  # kept in memory only, no error
    assert [fresh.get("explain|Berlin") for _ in range(20)] == [None] * 20
    assert time.monotonic() - started < 1.0
    assert fresh.get("explain|Rome") == 0.8  # the memory front still serves
    assert reader.get("explain|Paris") == 0.9  # so does the replica that had read it
    outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outages) == 1 and "going on without it" in outages[0].getMessage()

    redis_server.start()
    time.sleep(0.25)  # state_retry_s = 0.2
    assert fresh.get("explain|Paris") is None  # the restarted server has no persistence: a real miss
    fresh.put("explain|Paris", 0.7)
    assert make_cache(redis_server.url).get("explain|Paris") == 0.7
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_redis_stopped_fails_closed_with_state_unavailable(redis_server: RedisServer):
    cache = make_cache(redis_server.url, state_failure="closed")
    cache.put("explain|Paris", 0.9)
    redis_server.stop()
    assert cache.get("explain|Paris") == 0.9  # what this replica holds in memory needs no Redis
    for _ in range(3):  # the first call fails on the socket, the next ones at once (no new try)
        with pytest.raises(StateUnavailableError):
            cache.get("explain|Rome")
    with pytest.raises(StateUnavailableError):
        cache.put("explain|Rome", 0.1)


def test_a_hung_redis_costs_at_most_the_timeout(redis_server: RedisServer):
    cache = make_cache(redis_server.url, state_timeout_s=0.2)
    assert cache.get("explain|warm-up") is None  # the pool holds a live connection to the server
    redis_server.freeze()
    try:
        started = time.monotonic()
        assert cache.get("explain|Paris") is None
        cache.put("explain|Rome", 0.5)
        assert cache.get("explain|Berlin") is None
        assert time.monotonic() - started < 0.2 + 0.5
        fresh = make_cache(redis_server.url, state_timeout_s=0.2)  # a new connection to a hung server
        started = time.monotonic()
        assert fresh.get("explain|Paris") is None
        assert time.monotonic() - started < 0.2 + 0.5
    finally:
        redis_server.thaw()


def test_an_outage_in_closed_mode_raises_while_it_lasts():
    outage = Outage("test", "redis://x", "closed", retry_s=60)
    assert outage.skip() is False
    with pytest.raises(StateUnavailableError):
        outage.failed(ConnectionError("refused"))
    with pytest.raises(StateUnavailableError):
        outage.skip()


def test_without_redis_the_factory_keeps_the_file_cache(tmp_path):
    cache = concept_cache_from(load_settings(cache_dir=tmp_path))
    assert isinstance(cache, SqliteConceptCache)


def test_redis_state_with_memory_or_off_cache_keeps_them(redis_url):
    assert concept_cache_from(load_settings(state=redis_url, familiarity_cache="off")) is None
    assert not isinstance(
        concept_cache_from(load_settings(state=redis_url, familiarity_cache="memory")), RedisConceptCache
    )


def test_a_bound_lowered_by_far_is_enforced_at_the_next_write(redis_url):
    cache = make_cache(redis_url)
    client = raw_client(redis_url)
    with client.pipeline(transaction=False) as pipe:  # 5,000 entries written under a larger bound
        for i in range(5000):
            entry = cache._entry(f"explain|old {i}")
            pipe.set(entry, "0.5", ex=3600)
            pipe.zadd(model_prefix(MODEL) + "idx", {entry: time.time() - 5000 + i})  # written in the last 5000 s
        pipe.execute()
    make_cache(redis_url, state_cache_max_entries=10).put("explain|new", 0.1)
    assert client.zcard(model_prefix(MODEL) + "idx") == 10
    assert len(client.keys(model_prefix(MODEL) + "e:*")) == 10
    assert make_cache(redis_url).get("explain|new") == 0.1
