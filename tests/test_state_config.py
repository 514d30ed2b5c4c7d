"""The shared-state settings: defaults that need no server, URLs checked, the password never shown."""

from __future__ import annotations

import pytest

from gate.config import load_settings
from gate.errors import ConfigError


def test_the_default_state_is_in_process_and_fails_open():
    settings = load_settings()
    assert settings.state == "memory" and settings.state_failure == "open"
    assert settings.rate_limit_rps is None and settings.daily_quota is None


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://:pw@redis.internal:6380/2", "unix:///r.sock"])
def test_redis_urls_are_accepted(url):
    assert load_settings(state=url).state == url


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://", "localhost:6379", "file"])
def test_anything_else_is_a_config_error_naming_the_valid_forms(url):
    with pytest.raises(ConfigError, match="'memory' or a Redis URL"):
        load_settings(state=url)


def test_the_state_password_is_masked_in_display_and_errors():
    assert load_settings(state="redis://:s3cret@h:6379/0").display()["state"] == "redis://:***@h:6379/0"
    with pytest.raises(ConfigError) as error:
        load_settings(state="http://:s3cret@h:6379/0")
    assert "s3cret" not in str(error.value)


def test_limits_need_redis_and_the_error_shows_no_secret():
    with pytest.raises(ConfigError, match="enforced on Redis") as error:
        load_settings(daily_quota=10, api_keys=["sk-s3cret"])
    assert "s3cret" not in str(error.value)
    with pytest.raises(ConfigError, match="rate_limit_burst needs rate_limit_rps"):
        load_settings(state="redis://h:6379/0", rate_limit_burst=5)


def test_the_failure_policy_is_open_or_closed():
    assert load_settings(state_failure="closed").state_failure == "closed"
    with pytest.raises(ConfigError, match="state_failure"):
        load_settings(state_failure="maybe")
