"""Tenants at the proxy: keys map to policies (mode, risk target, signals, budget, quota), hashed keys only.

Over ASGI with the scripted model where a decision must be exact; over real HTTP with a real redis-server for the
quota two replicas share.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from calibration.artifact import artifact_from_dict
from gate.cli.main import app as cli
from gate.config import Settings
from gate.errors import ConfigError
from gate.factory import SHIPPED_ARTIFACT
from gate.server.app import create_app
from gate.state.quota import key_hash
from gate.tenants.keyfile import KeyFile, read_keys, write_keys
from tests.test_prom import parse, value
from tests.test_server import HEDGE_Q, MODEL, SUITE, chat, content, serving
from tests.test_server_rate_limit import post
from tests.test_server_security import error_of
from tests.test_server_security import serving as serving_http

STRICT = {"name": "strict", "thresholds": {"abstain": 0.7, "hedge": 0.95}}
OBSERVER = {"name": "observer", "mode": "observe", "allowed_modes": ["observe"], "max_gate_calls": 2}
ABSTAIN_MESSAGE = "I can't answer this reliably"


def issue(path: Path, *tenants: str) -> dict[str, str]:
    """Write a keys file with one new key per tenant; return the keys by tenant."""
    keys, issued = KeyFile.new(), {}
    for tenant in tenants:
        keys, issued[tenant], _ = keys.added(tenant)
    write_keys(path, keys)
    return issued


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings with the two tenants and a keys file holding one key for each."""
    path = tmp_path / "keys.yaml"
    issued = issue(path, "strict", "observer")
    return {"tenants": [STRICT, OBSERVER], "keys_file": path, "audit_path": tmp_path / "audit.jsonl"}, issued


async def test_two_tenants_get_different_decisions_and_modes_for_the_same_request(keyed):
    settings, keys = keyed
    async with serving(**settings) as client:
        strict = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["strict"]))
        observed = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["observer"]))
        metrics = (await client.get("/metrics", headers=bearer(keys["strict"]))).text
    # P = 0.61: the server's thresholds (0.3, 0.7) hedge; the strict tenant's (0.7, 0.95) abstain
    assert strict.status_code == observed.status_code == 200
    assert strict.json()["gate"]["decision"] == "abstain" and strict.json()["gate"]["mode"] == "enforce"
    assert content(strict).startswith(ABSTAIN_MESSAGE)
    assert "thresholds(abstain=0.7,hedge=0.95)" in strict.json()["gate"]["calibration"]
    # the observer sees the model's answer unchanged, with the server's own decision
    assert observed.json()["gate"]["decision"] == "hedge" and observed.json()["gate"]["mode"] == "observe"
    assert content(observed) == "Unknown poet"
    lines = [json.loads(line) for line in settings["audit_path"].read_text().splitlines()]
    assert [(line["tenant"], line["mode"], line["decision"]) for line in lines] == [
        ("strict", "enforce", "abstain"),
        ("observer", "observe", "hedge"),
    ]
    samples = parse(metrics)
    assert value(samples, "gate_tenant_requests_total", tenant="strict", outcome="abstain") == 1
    assert value(samples, "gate_tenant_requests_total", tenant="observer", outcome="hedge") == 1


async def test_a_tenants_budget_and_modes_bound_its_requests_only(keyed):
    settings, keys = keyed
    over = chat(HEDGE_Q, gate={"budget": {"max_calls": 3}})
    async with serving(**settings) as client:
        refused = await client.post("/v1/chat/completions", json=over, headers=bearer(keys["observer"]))
        allowed = await client.post("/v1/chat/completions", json=over, headers=bearer(keys["strict"]))
        enforce = chat(HEDGE_Q, gate={"mode": "enforce"})
        not_its_mode = await client.post("/v1/chat/completions", json=enforce, headers=bearer(keys["observer"]))
        weaker = chat(HEDGE_Q, gate={"mode": "off"})
        not_weaker = await client.post("/v1/chat/completions", json=weaker, headers=bearer(keys["strict"]))
    assert refused.status_code == 400 and "server's limit of 2" in refused.json()["error"]["message"]
    assert allowed.status_code == 200
    assert not_its_mode.status_code == 403 and not_weaker.status_code == 403


async def test_a_tenant_narrows_the_signals_and_a_privileged_tenant_may_switch_the_gate_off(tmp_path):
    path = tmp_path / "keys.yaml"
    keys = issue(path, "cheap", "ops")
    tenants = [{"name": "cheap", "signals": ["logprob_min"]}, {"name": "ops", "privileged": True}]
    async with serving(tenants=tenants, keys_file=path) as client:
        narrowed = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["cheap"]))
        wider = chat(HEDGE_Q, gate={"estimators": ["logprob_mean"]})
        widened = await client.post("/v1/chat/completions", json=wider, headers=bearer(keys["cheap"]))
        off = await client.post(
            "/v1/chat/completions", json=chat(HEDGE_Q, gate={"mode": "off"}), headers=bearer(keys["ops"])
        )
    assert set(narrowed.json()["gate"]["signals"]) == {"logprob_min"}
    assert widened.status_code == 400 and widened.json()["error"]["param"] == "gate.estimators"
    assert off.status_code == 200 and off.json()["gate"]["mode"] == "off"


async def test_unknown_keys_get_401_without_detail_and_no_key_or_hash_reaches_a_response_or_log(keyed, caplog):
    settings, keys = keyed
    stored = read_keys(settings["keys_file"])
    hashes = [entry.hmac_sha256 for entry in stored.keys]
    forged = keys["strict"][:-4] + "AAAA"  # the right id, the wrong secret
    caplog.set_level(logging.DEBUG)
    async with serving(**settings) as client:
        responses = [
            await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(key))
            for key in (forged, "sk-made-up", hashes[0], stored.salt)
        ]
        served = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["strict"]))
        metrics = (await client.get("/metrics", headers=bearer(keys["strict"]))).text
    for response in responses:
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid API key"
    exits = [r.text + str(r.headers) for r in (*responses, served)]
    exits += [caplog.text, metrics, settings["audit_path"].read_text()]
    for secret in (*keys.values(), *hashes, stored.salt, forged):
        assert all(secret not in text for text in exits)


async def test_tenants_without_keys_yet_close_the_server():
    async with serving(tenants=[STRICT]) as client:
        refused = await client.post("/v1/chat/completions", json=chat(HEDGE_Q))
        health = await client.get("/healthz")
    assert refused.status_code == 401 and health.status_code == 200


async def test_old_settings_keep_working_as_implicit_tenants(tmp_path):
    audit = tmp_path / "audit.jsonl"
    async with serving(api_keys=["sk-plain"], privileged_api_keys=["sk-admin"], audit_path=audit) as client:
        plain = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer("sk-plain"))
        off = chat(HEDGE_Q, gate={"mode": "off"})
        admin = await client.post("/v1/chat/completions", json=off, headers=bearer("sk-admin"))
        refused = await client.post("/v1/chat/completions", json=off, headers=bearer("sk-plain"))
    assert plain.status_code == admin.status_code == 200 and refused.status_code == 403
    tenants = [json.loads(line)["tenant"] for line in audit.read_text().splitlines()]
    assert tenants == ["default", "default"]  # what gate monitor calls a request that names no tenant


def test_a_tenant_quota_holds_across_two_replicas_on_one_redis(tmp_path, redis_url):
    path = tmp_path / "keys.yaml"
    keys = KeyFile.new()
    keys, first, _ = keys.added("metered")
    keys, second, _ = keys.added("metered")  # two keys of one tenant share its quota
    keys, other, _ = keys.added("other")
    write_keys(path, keys)
    tenants = [{"name": "metered", "daily_quota": 3}, {"name": "other"}]
    limits = {"state": redis_url, "state_timeout_s": 5, "tenants": tenants, "keys_file": path}
    with serving_http(**limits) as one, serving_http(**limits) as two:
        codes = [post(replica.url, key).status_code for replica, key in ((one, first), (two, second), (one, second))]
        over = post(two.url, first)
        unlimited = [post(replica.url, other).status_code for replica in (one, two, one, two)]
    assert codes == [200, 200, 200]
    assert error_of(over, 429)["code"] == "quota_exceeded" and "this tenant is over its daily quota" in over.text
    assert unlimited == [200] * 4


def test_bad_tenant_configurations_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match=r"tenant 'a': .*missing\.json"):
        create_app(Settings(model=MODEL, tenants=[{"name": "a", "artifact": tmp_path / "missing.json"}]))
    with pytest.raises(ValueError, match="reserved"):
        Settings(model=MODEL, tenants=[{"name": "default"}])
    with pytest.raises(ValueError, match="artifact or thresholds, not both"):
        Settings(model=MODEL, tenants=[{"name": "a", "artifact": "x.json", "thresholds": {"abstain": 0, "hedge": 1}}])
    with pytest.raises(ValueError, match="must be at most hedge"):
        Settings(model=MODEL, tenants=[{"name": "a", "thresholds": {"abstain": 0.9, "hedge": 0.5}}])
    with pytest.raises(ValueError, match="enforced on Redis"):
        Settings(model=MODEL, tenants=[{"name": "a", "daily_quota": 5}])
    with pytest.raises(ValueError, match="unique"):
        Settings(model=MODEL, tenants=[{"name": "a"}, {"name": "a"}])
    (tmp_path / "keys.yaml").write_text("salt: nothex\nkeys: []\n")
    with pytest.raises(ConfigError, match=r"keys file .* is malformed"):
        create_app(Settings(model=MODEL, tenants=[{"name": "a"}], keys_file=tmp_path / "keys.yaml"))


def test_a_key_is_matched_only_by_its_own_file_and_secret():
    keys, key, entry = KeyFile.new().added("acme")
    assert keys.match(key) == entry
    assert keys.match(key + "x") is None and keys.match(key.replace(".", "-")) is None
    assert KeyFile.new().model_copy(update={"keys": keys.keys}).match(key) is None  # another file's salt
    assert key not in keys.model_dump_json() and entry.id in key


@pytest.mark.parametrize("unit", ["calls", "tokens"])
def test_a_daily_quota_in_calls_or_tokens_counts_what_each_answer_used(tmp_path, redis_url, unit):
    path = tmp_path / "keys.yaml"
    key = issue(path, "metered")["metered"]
    tenants = [{"name": "metered", "daily_quota": 10_000, "daily_quota_unit": unit}]
    with serving_http(state=redis_url, state_timeout_s=5, tenants=tenants, keys_file=path) as served:
        answers = [post(served.url, key) for _ in range(2)]
    costs = [answer.json()["gate"]["cost"] for answer in answers]
    used = [c["calls"] if unit == "calls" else c["prompt_tokens"] + c["completion_tokens"] for c in costs]
    assert all(answer.status_code == 200 for answer in answers) and min(used) > 1
    client = redis.Redis.from_url(redis_url)
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert int(client.get(f"gate:quota:{{{key_hash('tenant:metered')}}}:{day}")) == sum(used)
    client.close()


def test_a_tenant_over_its_daily_calls_is_refused_with_429(tmp_path, redis_url):
    path = tmp_path / "keys.yaml"
    key = issue(path, "metered")["metered"]
    tenants = [{"name": "metered", "daily_quota": 2, "daily_quota_unit": "calls"}]
    with serving_http(state=redis_url, state_timeout_s=5, tenants=tenants, keys_file=path) as served:
        first, second = post(served.url, key), post(served.url, key)
    assert first.json()["gate"]["cost"]["calls"] >= 2  # the first answer spent the day
    assert error_of(second, 429)["code"] == "quota_exceeded"


async def test_only_a_privileged_tenant_may_send_labels_and_they_name_it(tmp_path):
    path, audit = tmp_path / "keys.yaml", tmp_path / "audit.jsonl"
    keys = issue(path, "acme", "ops")
    tenants = [{"name": "acme"}, {"name": "ops", "privileged": True}]
    async with serving(tenants=tenants, keys_file=path, audit_path=audit) as client:
        asked = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["acme"]))
        label = {"request_id": asked.headers["x-request-id"], "correct": True}
        refused = await client.post("/v1/gate/feedback", json=label, headers=bearer(keys["acme"]))
        taken = await client.post("/v1/gate/feedback", json=label, headers=bearer(keys["ops"]))
    assert refused.status_code == 403 and taken.status_code == 202
    labels = [json.loads(line) for line in audit.with_name("audit.feedback.jsonl").read_text().splitlines()]
    assert [entry["tenant"] for entry in labels] == ["ops"]


def test_gate_serve_refuses_a_tenant_artifact_fitted_for_another_model_before_it_starts(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith("GATE_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "gate.yaml"
    config.write_text(
        "api_base: http://127.0.0.1:9/v1\nsignals: [logprob_min]\n"
        f"tenants:\n  - name: a\n    artifact: {SHIPPED_ARTIFACT}\n"
    )
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "-m", "openai/stub", "--port", "9"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tenant 'a': the calibration artifact was fitted for model 'local/gemma-3-270m'" in result.stderr


async def test_a_tenant_with_its_own_artifact_is_decided_by_it(tmp_path):
    """The shipped artifact's fitted stages, recorded for the test model and signals: a real artifact file."""
    data = json.loads(SHIPPED_ARTIFACT.read_text())
    data.pop("id")
    artifact = artifact_from_dict({**data, "model": MODEL, "suite": [spec.to_dict() for spec in SUITE]})
    artifact.save(tmp_path / "own.calibration.json")
    path = tmp_path / "keys.yaml"
    keys = issue(path, "own", "plain")
    tenants = [{"name": "own", "artifact": tmp_path / "own.calibration.json"}, {"name": "plain"}]
    async with serving(tenants=tenants, keys_file=path) as client:
        own = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["own"]))
        plain = await client.post("/v1/chat/completions", json=chat(HEDGE_Q), headers=bearer(keys["plain"]))
    assert own.json()["gate"]["calibration"] == artifact.id and plain.json()["gate"]["calibration"] == "test-artifact"
    assert own.json()["gate"]["probability"] != plain.json()["gate"]["probability"]
