"""The audit log on a Redis stream shared by replicas: one entry per answered request, read back by the CLI."""

from __future__ import annotations

import json

import httpx
import pytest
import redis
from typer.testing import CliRunner

from gate.audit.stream import STREAM_KEY
from gate.cli.main import app as cli_app
from gate.config import load_settings
from gate.errors import ConfigError
from tests.redis_fixture import RedisServer
from tests.test_server_security import KEY, chat, error_of, serving

runner = CliRunner()


def post(url: str, question: str = "What is the capital of France?") -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}"}
    return httpx.post(url + "/chat/completions", json=chat(question), headers=headers, timeout=30)


def stream_records(url: str) -> list[dict]:
    client = redis.Redis.from_url(url, decode_responses=True)
    return [json.loads(fields["line"]) for _, fields in client.xrange(STREAM_KEY)]


def test_every_replica_appends_each_answered_request_once_next_to_the_file(redis_url, tmp_path):
    audit_file = tmp_path / "audit.jsonl"
    common = {"state": redis_url, "audit_stream": True, "api_keys": [KEY]}
    with serving(audit_path=audit_file, **common) as first, serving(**common) as second:
        ids = [post(replica.url).headers["x-request-id"] for replica in (first, second, first, second, second)]
    records = stream_records(redis_url)
    assert [record["request_id"] for record in records] == ids
    file_lines = audit_file.read_text().splitlines()
    first_ids = {ids[0], ids[2]}  # the file is the first replica's own: the same lines as its stream entries
    assert [json.loads(line) for line in file_lines] == [r for r in records if r["request_id"] in first_ids]
    assert not any(KEY in json.dumps(record) for record in records)


def test_the_cli_tails_and_summarizes_the_stream(redis_url, monkeypatch):
    with serving(state=redis_url, audit_stream=True, api_keys=[KEY]) as served:
        ids = [post(served.url).headers["x-request-id"] for _ in range(3)]
    monkeypatch.setenv("GATE_STATE", redis_url)
    tail = runner.invoke(cli_app, ["audit", "tail", "--redis", "-n", "2"])
    assert tail.exit_code == 0, tail.output
    assert [line.split()[1] for line in tail.output.splitlines()] == ids[1:]
    as_json = runner.invoke(cli_app, ["audit", "tail", "--redis", "-n", "5", "--json"])
    assert [json.loads(line)["request_id"] for line in as_json.output.splitlines()] == ids
    summary = runner.invoke(cli_app, ["audit", "summary", "--redis", "--json"])
    assert summary.exit_code == 0, summary.output
    numbers = json.loads(summary.output)
    assert numbers["stream"] == STREAM_KEY and numbers["records"] == 3
    text = runner.invoke(cli_app, ["audit", "summary", "--redis"])
    assert f"Redis stream {STREAM_KEY}, 3 line(s)" in text.output


def test_the_cli_needs_redis_configured_for_the_stream(monkeypatch, tmp_path):
    monkeypatch.delenv("GATE_STATE", raising=False)
    result = runner.invoke(cli_app, ["audit", "tail", "--redis"])
    assert result.exit_code != 0 and "redis://" in result.output
    both = runner.invoke(cli_app, ["audit", "tail", str(tmp_path / "a.jsonl"), "--redis"])
    assert both.exit_code != 0 and "not both" in both.output


def test_with_redis_down_the_stream_fails_open_or_closed(redis_server: RedisServer):
    common = {"state": redis_server.url, "audit_stream": True, "api_keys": [KEY], "state_retry_s": 30}
    with serving(**common) as open_, serving(state_failure="closed", **common) as closed:
        assert post(open_.url).status_code == 200 and post(closed.url).status_code == 200
        redis_server.stop()
        assert post(open_.url).status_code == 200  # answered; its entry is lost with the outage
        assert error_of(post(closed.url), 503)["code"] == "state_unavailable"  # no answer without its entry


def test_the_stream_needs_redis_state():
    with pytest.raises(ConfigError, match="audit_stream"):
        load_settings(audit_stream=True)
