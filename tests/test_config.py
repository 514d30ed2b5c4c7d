"""Settings: defaults, YAML, environment precedence, readable errors, masked secrets."""

import pytest

from gate.config import DEFAULT_MODEL, UPSTREAM_ENV_ALIASES, load_settings
from gate.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    names = ("GATE_CONFIG", "GATE_MODEL", "GATE_TIMEOUT_S", "GATE_API_KEY", "GATE_NATIVE_N", "GATE_API_BASE")
    names += ("GATE_API_KEYS", "GATE_PRIVILEGED_API_KEYS", "GATE_ALLOWED_MODES", "GATE_INCLUDE_ORIGINAL", "GATE_MODE")
    for name in names + tuple(UPSTREAM_ENV_ALIASES):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_embedded_model():
    settings = load_settings()
    assert settings.model == DEFAULT_MODEL and settings.api_base is None


def test_yaml_then_env_wins_then_explicit_wins(tmp_path, monkeypatch):
    path = tmp_path / "gate.yaml"
    path.write_text("model: openai/from-yaml\ntimeout_s: 5\nmax_retries: 1\n")
    assert load_settings(config_file=path).model == "openai/from-yaml"
    monkeypatch.setenv("GATE_MODEL", "openai/from-env")
    settings = load_settings(config_file=path)
    assert (settings.model, settings.timeout_s, settings.max_retries) == ("openai/from-env", 5.0, 1)
    assert load_settings(config_file=path, model="openai/explicit").model == "openai/explicit"


def test_upstream_aliases_fill_in_but_gate_names_win(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_UPSTREAM_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("GATE_UPSTREAM_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GATE_UPSTREAM_API_KEY", "sk-alias")
    settings = load_settings()
    assert (settings.model, settings.api_base) == ("openai/gpt-4o-mini", "http://127.0.0.1:9/v1")
    assert settings.api_key.get_secret_value() == "sk-alias"
    path = tmp_path / "gate.yaml"
    path.write_text("model: openai/from-yaml\n")
    assert load_settings(config_file=path).model == "openai/gpt-4o-mini"  # environment beats the file
    monkeypatch.setenv("GATE_MODEL", "openai/direct")
    assert load_settings().model == "openai/direct"


def test_config_file_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "gate.yaml"
    path.write_text("max_tokens: 12\n")
    monkeypatch.setenv("GATE_CONFIG", str(path))
    assert load_settings().max_tokens == 12


def test_invalid_value_names_field_and_allowed_values(monkeypatch):
    monkeypatch.setenv("GATE_NATIVE_N", "sometimes")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "native_n (GATE_NATIVE_N)" in str(info.value) and "'auto'" in str(info.value)


def test_unknown_yaml_field_is_an_error(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("modle: typo\n")
    with pytest.raises(ConfigError, match="modle"):
        load_settings(config_file=path)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.yaml")


def test_secret_is_masked_in_display_and_errors(monkeypatch):
    monkeypatch.setenv("GATE_API_KEY", "sk-very-secret")
    shown = load_settings().display()
    assert shown["api_key"] == "***" and "sk-very-secret" not in str(shown)
    monkeypatch.setenv("GATE_TIMEOUT_S", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "sk-very-secret" not in str(info.value)


def test_malformed_yaml_is_one_config_error_not_a_traceback(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("model: [unclosed\n  bad: : yaml\n")
    with pytest.raises(ConfigError, match="could not read the configuration") as info:
        load_settings(config_file=path)
    assert "\n" not in str(info.value) and "line 1" in str(info.value)


def test_a_password_in_api_base_is_masked_in_display(monkeypatch):
    monkeypatch.setenv("GATE_API_BASE", "https://user:hunter2@llm.internal:8443/v1")
    shown = load_settings().display()
    assert shown["api_base"] == "https://user:***@llm.internal:8443/v1" and "hunter2" not in str(shown)
    monkeypatch.setenv("GATE_API_BASE", "http://llm.internal/v1")
    assert load_settings().display()["api_base"] == "http://llm.internal/v1"


def test_the_proxy_defaults_are_the_safe_ones():
    """Issue 17, item 7: a client cannot switch enforcement off or read a withheld answer unless configured."""
    settings = load_settings()
    assert settings.allowed_modes == ["enforce"] and settings.mode == "enforce"
    assert settings.include_original is False and settings.privileged_api_keys == []
    assert settings.public_paths == ["/healthz", "/readyz"]
    assert settings.max_upstream_bytes == 10_000_000 and settings.max_header_bytes == 16_384


def test_client_keys_are_masked_in_display_and_errors(monkeypatch):
    monkeypatch.setenv("GATE_API_KEYS", '["sk-client-secret"]')
    monkeypatch.setenv("GATE_PRIVILEGED_API_KEYS", '["sk-operator-secret"]')
    shown = str(load_settings().display())
    assert "sk-client-secret" not in shown and "sk-operator-secret" not in shown
    monkeypatch.setenv("GATE_PRIVILEGED_API_KEYS", '[["sk-nested-secret"]]')  # not a list of strings
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "privileged_api_keys.0" in str(info.value) and "sk-nested-secret" not in str(info.value)
