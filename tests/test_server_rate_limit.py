"""Per-key rate limits at the proxy, over real HTTP with a real redis-server: 429 in OpenAI's shape, 503 closed."""

from __future__ import annotations

from typing import Any

import httpx

from estimators.base import Generation, Prompt
from estimators.testing import ScriptedLLM
from gate.config import Settings
from gate.errors import StateUnavailableError
from gate.server.app import create_app
from tests.redis_fixture import RedisServer
from tests.test_server import MODEL, RULES, make_gate
from tests.test_server_client import running
from tests.test_server_security import ADMIN, KEY, chat, error_of, serving


def post(url: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        url + "/chat/completions", json=chat("What is the capital of France?"), headers=headers, timeout=30
    )


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(redis_url):
    limits = {"state": redis_url, "rate_limit_rps": 0.01, "rate_limit_burst": 2, "state_timeout_s": 5}
    with serving(api_keys=[KEY], privileged_api_keys=[ADMIN], **limits) as served:
        assert [post(served.url, KEY).status_code for _ in range(2)] == [200, 200]
        refused = post(served.url, KEY)
        error = error_of(refused, 429)
        assert error["code"] == "rate_limit_exceeded" and KEY not in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert post(served.url, ADMIN).status_code == 200  # its own bucket
        assert error_of(post(served.url, "sk-unknown"), 401)  # refused before taking from any bucket
        assert httpx.get(served.url + "/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_daily_quota_is_shared_by_replicas(redis_url):
    limits = {"state": redis_url, "daily_quota": 3, "state_timeout_s": 5}
    with serving(api_keys=[KEY], **limits) as first, serving(api_keys=[KEY], **limits) as second:
        codes = [post(replica.url, KEY).status_code for replica in (first, second, first, second)]
        assert codes == [200, 200, 200, 429]
        assert error_of(post(first.url, KEY), 429)["code"] == "quota_exceeded"


def test_without_authentication_every_client_shares_one_bucket(redis_url):
    with serving(state=redis_url, rate_limit_rps=0.01, rate_limit_burst=1) as served:
        assert post(served.url, "made-up-1").status_code == 200
        assert post(served.url, "made-up-2").status_code == 429


def test_redis_down_fails_open_or_closed_as_configured(redis_server: RedisServer):
    limits = {"state": redis_server.url, "daily_quota": 100, "state_retry_s": 30}
    with (
        serving(api_keys=[KEY], **limits) as open_,
        serving(api_keys=[KEY], state_failure="closed", **limits) as closed,
    ):
        assert post(open_.url, KEY).status_code == 200
        assert post(closed.url, KEY).status_code == 200
        redis_server.stop()
        assert post(open_.url, KEY).status_code == 200
        refused = post(closed.url, KEY)
        assert error_of(refused, 503)["code"] == "state_unavailable"
        assert refused.headers["retry-after"] == "30"


class StatelessLLM(ScriptedLLM):
    """A model whose familiarity cache (or any shared state the request needs) is down, failing closed."""

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        raise StateUnavailableError("familiarity cache")


def test_shared_state_unavailable_inside_a_request_is_a_503_not_a_500():
    config = Settings(model=MODEL, state_retry_s=7)
    with running(create_app(config, gate=make_gate(StatelessLLM(rules=RULES)))) as (url, _):
        refused = post(url, None)
    error = error_of(refused, 503)
    assert error["code"] == "state_unavailable" and refused.headers["retry-after"] == "7"
