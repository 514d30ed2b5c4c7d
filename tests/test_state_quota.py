"""Per-key rate limits and daily quotas on a real redis-server: atomic across clients and processes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from gate.config import load_settings
from gate.errors import StateUnavailableError
from gate.state.quota import Allowed, Quota, key_hash
from tests.redis_fixture import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def make_quota(url: str, **limits: object) -> Quota:
    # a generous timeout unless a test is about timeouts: on a busy 2-core machine a 0.25 s wait for a pooled
    # connection reads as an outage and fails open, which would break the counts these tests are about
    limits.setdefault("state_timeout_s", 5)
    quota = Quota.from_settings(load_settings(state=url, state_retry_s=0.2, **limits))
    assert quota is not None
    return quota


async def admitted(quota: Quota, key: str, n: int, cost: int = 1) -> int:
    """How many of ``n`` concurrent calls on one key get through."""
    results = await asyncio.gather(*(quota.check_and_take(key, cost) for _ in range(n)))
    return sum(result.ok for result in results)


def test_no_limits_configured_means_no_quota(redis_url):
    assert Quota.from_settings(load_settings(state=redis_url)) is None


async def test_the_burst_is_admitted_then_refused_with_a_retry_after(redis_url):
    quota = make_quota(redis_url, rate_limit_rps=1, rate_limit_burst=3)
    assert [(await quota.check_and_take("k1")).ok for _ in range(4)] == [True, True, True, False]
    refused = await quota.check_and_take("k1")
    assert refused.limit == "rate" and 0 < refused.retry_after <= 1.0
    assert (await quota.check_and_take("k2")).ok  # another key has its own bucket
    await quota.aclose()


async def test_the_bucket_refills_at_the_rate(redis_url):
    quota = make_quota(redis_url, rate_limit_rps=20, rate_limit_burst=1)
    assert (await quota.check_and_take("k")).ok
    refused = await quota.check_and_take("k")
    assert not refused.ok and refused.retry_after <= 0.05
    await asyncio.sleep(refused.retry_after + 0.02)
    assert (await quota.check_and_take("k")).ok
    await quota.aclose()


async def test_many_concurrent_tasks_never_exceed_the_burst(redis_url):
    # clients of two replicas, 400 calls at once on one key (more than a pool's 64 connections: waiting for one
    # must not look like an outage and fail open); the refill over the run is far below one request
    replicas = [make_quota(redis_url, rate_limit_rps=0.01, rate_limit_burst=50) for _ in range(2)]
    counts = await asyncio.gather(*(admitted(quota, "hot-key", 200) for quota in replicas))
    assert sum(counts) == 50
    for quota in replicas:
        await quota.aclose()


async def test_the_daily_quota_counts_cost_and_says_when_it_resets(redis_url):
    quota = make_quota(redis_url, daily_quota=10)
    assert (await quota.check_and_take("k", cost=6)).ok
    refused = await quota.check_and_take("k", cost=5)  # 11 > 10: refused, nothing taken
    assert refused == Allowed(False, refused.retry_after, "daily")
    now = time.time()
    assert abs(refused.retry_after - (86400 - now % 86400)) < 5  # until the next UTC midnight
    assert (await quota.check_and_take("k", cost=4)).ok
    assert not (await quota.check_and_take("k", cost=1)).ok
    await quota.aclose()


async def test_a_request_refused_by_the_rate_takes_nothing_from_the_day(redis_url):
    quota = make_quota(redis_url, rate_limit_rps=0.01, rate_limit_burst=2, daily_quota=100)
    assert await admitted(quota, "k", 10) == 2
    digest = key_hash("k")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    (day_key,) = client.keys(f"gate:quota:{{{digest}}}:*")
    assert client.get(day_key) == "2"
    await quota.aclose()


async def test_keys_are_stored_hashed(redis_url):
    quota = make_quota(redis_url, rate_limit_rps=5, daily_quota=100)
    await quota.check_and_take("sk-very-secret-key")
    keys = redis.Redis.from_url(redis_url, decode_responses=True).keys("*")
    assert len(keys) == 2 and not any("secret" in key for key in keys)
    assert all(key_hash("sk-very-secret-key") in key for key in keys)
    await quota.aclose()


HAMMER = """
import asyncio, sys
from gate.config import load_settings
from gate.state.quota import Quota

async def main():
    quota = Quota.from_settings(load_settings(state=sys.argv[1], daily_quota=75, state_timeout_s=5))
    results = await asyncio.gather(*(quota.check_and_take("shared-key") for _ in range(150)))
    print(sum(result.ok for result in results))
    await quota.aclose()

asyncio.run(main())
"""


def test_two_processes_hammering_one_key_never_admit_more_than_the_quota(redis_url):
    processes = [
        subprocess.Popen([sys.executable, "-c", HAMMER, redis_url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [int(process.communicate(timeout=60)[0]) for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert sum(counts) == 75


async def test_redis_stopped_fails_open_admitting_and_logging_once(redis_server: RedisServer, caplog):
    quota = make_quota(redis_server.url, rate_limit_rps=0.01, rate_limit_burst=1)
    assert (await quota.check_and_take("k")).ok
    assert not (await quota.check_and_take("k")).ok
    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="gate.state.connection")
    started = time.monotonic()
    assert all([(await quota.check_and_take("k")).ok for _ in range(10)])
    assert time.monotonic() - started < 1.0
    outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outages) == 1
    assert not any(key_hash("k") in r.getMessage() or "'k'" in r.getMessage() for r in caplog.records)
    redis_server.start()
    await asyncio.sleep(0.25)
    assert (await quota.check_and_take("k")).ok  # a fresh server: a full bucket
    assert not (await quota.check_and_take("k")).ok  # enforced again
    await quota.aclose()


async def test_redis_stopped_fails_closed(redis_server: RedisServer):
    quota = make_quota(redis_server.url, daily_quota=5, state_failure="closed")
    assert (await quota.check_and_take("k")).ok
    redis_server.stop()
    for _ in range(3):
        with pytest.raises(StateUnavailableError):
            await quota.check_and_take("k")
    await quota.aclose()


async def test_a_hung_redis_costs_at_most_the_timeout(redis_server: RedisServer):
    quota = make_quota(redis_server.url, daily_quota=5, state_timeout_s=0.2)
    assert (await quota.check_and_take("k")).ok
    redis_server.freeze()
    try:
        started = time.monotonic()
        assert (await quota.check_and_take("k")).ok
        assert time.monotonic() - started < 0.2 + 0.5
    finally:
        redis_server.thaw()
    await quota.aclose()


async def test_a_charge_after_answering_counts_against_the_day(redis_url):
    quota = make_quota(redis_url, daily_quota=100)
    assert (await quota.check_and_take("k", cost=1)).ok
    await quota.charge("k", 98)  # e.g. the gate's own calls, known once the request was answered
    assert (await quota.check_and_take("k", cost=1)).ok  # 100: the day is spent now
    refused = await quota.check_and_take("k", cost=1)
    assert refused.limit == "daily"
    await quota.charge("other", 0)
    assert redis.Redis.from_url(redis_url).keys(f"gate:quota:{{{key_hash('other')}}}:*") == []
    await quota.aclose()
