"""``POST /v1/gate/feedback`` through the real app (uvicorn on loopback, the scripted model): labels are stored
beside the audit log, joined by this replica's monitor and by ``gate monitor``, refused without a privileged key,
and kept across restarts; with Redis, every replica's labels meet on the stream ``gate:feedback``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from estimators.testing import ScriptedLLM
from gate.audit.feedback import FEEDBACK_STREAM_KEY, feedback_path_of
from gate.cli.main import app as cli_app
from gate.config import Settings
from gate.server.app import create_app, uvicorn_options
from tests.test_server import ABSTAIN_Q, HEDGE_Q, MODEL, RULES, FakeCalibration, make_gate
from tests.test_server_client import running
from tests.test_server_security import ADMIN, KEY, chat, error_of

runner = CliRunner()


@dataclass(frozen=True)
class TargetedCalibration(FakeCalibration):
    """The test calibration with the target block an artifact carries: at most 0.30 errors among delivered answers."""

    target: dict[str, Any] = field(default_factory=lambda: {"hedge_level": 0.7, "confidence_level": 0.9})


@contextmanager
def serving(*, keys: bool = True, **settings: Any) -> Iterator[str]:
    """The proxy over the scripted model, with keys configured unless ``keys`` is false; yields its root URL."""
    if keys:
        settings |= {"api_keys": [KEY], "privileged_api_keys": [ADMIN]}
    config = Settings(model=MODEL, **settings)
    app = create_app(config, gate=make_gate(ScriptedLLM(rules=RULES), TargetedCalibration()))
    with running(app, **uvicorn_options(config)) as (url, _):
        yield url.removesuffix("/v1")


def ask(root: str, question: str = HEDGE_Q) -> str:
    """A completion (hedged by default); the completion's id, which is what a client has in hand."""
    response = httpx.post(f"{root}/v1/chat/completions", json=chat(question), headers=auth(KEY), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def label(root: str, body: Any, *, key: str | None = ADMIN) -> httpx.Response:
    headers = auth(key) if key else {}
    return httpx.post(f"{root}/v1/gate/feedback", json=body, headers=headers, timeout=30)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def gauge(root: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{root}/metrics", headers=auth(ADMIN), timeout=30).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, _, value = line.rpartition(" ")
            shown = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if shown == wanted:
                return float(value)
    raise AssertionError(f"no {name}{{{wanted}}} in /metrics")


def test_a_label_is_stored_beside_the_audit_log_joined_and_counted(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with serving(audit_path=audit) as root:
        completion_id = ask(root)
        response = label(root, {"request_id": completion_id, "correct": False, "note": f"wrong poet {KEY}"})
        assert response.status_code == 202, response.text
        request_id = completion_id.removeprefix("chatcmpl-")
        assert response.json() == {
            "object": "gate.feedback",
            "request_id": request_id,
            "correct": False,
            "joined": True,
        }
        where = {"tenant": "default", "calibration": "test-artifact", "tier": "delivered"}
        assert gauge(root, "gate_monitor_labelled", **where) == 1
        assert gauge(root, "gate_monitor_error_rate", **where) == 1.0
        assert gauge(root, "gate_monitor_error_target", **where) == pytest.approx(0.3)
        assert gauge(root, "gate_feedback_total", joined="true") == 1
    feedback = audit.with_name("audit.feedback.jsonl")
    assert feedback_path_of(Settings(audit_path=audit)) == feedback
    (stored,) = lines(feedback)
    assert stored["request_id"] == request_id and stored["correct"] is False and stored["tenant"] == "default"
    assert KEY not in feedback.read_text() and stored["note"] == "wrong poet ***"  # secrets masked
    result = runner.invoke(cli_app, ["monitor", str(audit), "--hedge-level", "0.7", "--json"])
    (group,) = json.loads(result.stdout)["groups"]
    assert (group["labelled"], group["errors"], group["tier"], group["calibration"]) == (
        1,
        1,
        "delivered",
        "test-artifact",
    )


def test_only_a_privileged_key_may_label_and_nothing_is_stored_otherwise(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with serving(audit_path=audit) as root:
        request_id = ask(root)
        assert error_of(label(root, {"request_id": request_id, "correct": True}, key=None), 401)["code"]
        assert error_of(label(root, {"request_id": request_id, "correct": True}, key="sk-made-up"), 401)
        refused = error_of(label(root, {"request_id": request_id, "correct": True}, key=KEY), 403)
        assert refused["type"] == "permission_error" and "privileged_api_keys" in refused["message"]
    assert not audit.with_name("audit.feedback.jsonl").exists() or not lines(audit.with_name("audit.feedback.jsonl"))


def test_without_keys_the_route_is_open_like_every_other(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with serving(keys=False, audit_path=audit) as root:
        response = httpx.post(f"{root}/v1/chat/completions", json=chat(HEDGE_Q), timeout=30)
        labelled = label(root, {"request_id": response.headers["x-request-id"], "correct": True}, key=None)
    assert labelled.status_code == 202 and labelled.json()["joined"] is True
    assert [line["correct"] for line in lines(audit.with_name("audit.feedback.jsonl"))] == [True]


@pytest.fixture(scope="module")
def checking(tmp_path_factory) -> Iterator[str]:
    """One server for the checks of the body."""
    with serving(audit_path=tmp_path_factory.mktemp("feedback") / "audit.jsonl") as root:
        yield root


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"request_id": "abc", "correct": "yes"}, "correct", "boolean"),  # strict: no coercion
        ({"request_id": "abc", "correct": 1}, "correct", "boolean"),
        ({"correct": True}, "request_id", "required"),
        ({"request_id": "abc", "correct": True, "score": 3}, "score", "unknown field 'score'"),
        ({"request_id": "", "correct": True}, "request_id", "at least 1"),
        ({"request_id": "a b/c", "correct": True}, "request_id", "pattern"),
        ({"request_id": "x" * 129, "correct": True}, "request_id", "at most 128"),
        ({"request_id": "abc", "correct": True, "note": "n" * 2001}, "note", "at most 2000"),
        (["abc", True], None, "must be a json object"),
        (None, None, "empty body"),
    ],
)
def test_a_bad_body_gets_a_clear_400(checking, body, param, says):
    error = error_of(label(checking, body), 400)
    assert error["type"] == "invalid_request_error" and says in error["message"].lower(), error
    if param:
        assert param in (error["param"] or "") + error["message"]


def test_an_unknown_id_is_kept_for_gate_monitor_and_abstained_requests_are_not_monitored(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with serving(audit_path=audit) as root:
        unknown = label(root, {"request_id": "0123abcd", "correct": True})
        abstained = label(root, {"request_id": ask(root, ABSTAIN_Q), "correct": True})
        assert unknown.status_code == abstained.status_code == 202
        assert unknown.json()["joined"] is False and abstained.json()["joined"] is False
        assert gauge(root, "gate_feedback_total", joined="false") == 2
    result = runner.invoke(cli_app, ["monitor", str(audit)])
    assert (
        result.exit_code == 0
        and "1 on requests not answered" in result.stdout
        and "1 not in the audit log" in (result.stdout)
    )


def test_without_an_audit_log_the_route_says_how_to_enable_it():
    with serving() as root:
        error = error_of(label(root, {"request_id": "abc", "correct": True}), 404)
    assert error["code"] == "feedback_not_configured" and "audit_path" in error["message"]


def test_labels_survive_two_restarts_and_the_latest_label_wins(tmp_path):
    audit = tmp_path / "audit.jsonl"
    ids = []
    for correct in (True, False, True):  # three server lifetimes on the same files
        with serving(audit_path=audit) as root:
            ids.append(ask(root))
            assert label(root, {"request_id": ids[-1], "correct": correct}).status_code == 202
    with serving(audit_path=audit) as root:  # relabel the first request after the last restart
        assert label(root, {"request_id": ids[0], "correct": False}).json()["joined"] is False  # served before
    assert [line["correct"] for line in lines(audit.with_name("audit.feedback.jsonl"))] == [True, False, True, False]
    result = runner.invoke(cli_app, ["monitor", str(audit), "--hedge-level", "0.7", "--json"])
    (group,) = json.loads(result.stdout)["groups"]
    assert (group["labelled"], group["errors"]) == (3, 2)  # the first request counts once, with its latest label


def test_the_alarm_sets_its_gauge_and_logs_the_recalibration_command(tmp_path, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="gate.server.feedback"),
        serving(audit_path=tmp_path / "a.jsonl") as root,
    ):
        for _ in range(8):
            assert label(root, {"request_id": ask(root), "correct": False}).json()["joined"] is True
        where = {"tenant": "default", "calibration": "test-artifact", "tier": "delivered"}
        assert gauge(root, "gate_monitor_alarm", **where) == 1.0
        assert gauge(root, "gate_monitor_error_lower_bound", **where) > 0.3
    alarms = [record.getMessage() for record in caplog.records if "ALARM" in record.getMessage()]
    assert len(alarms) == 1  # logged when the alarm starts, not on every label after
    assert "recalibrate: gate calibrate -d" in alarms[0] and "--hedge-level 0.7" in alarms[0]


def test_with_redis_two_replicas_share_the_labels_stream(redis_url, tmp_path):
    common = {"state": redis_url, "audit_stream": True}
    with serving(**common) as first, serving(**common) as second:
        served = [ask(first) for _ in range(3)]
        answers = [label(second, {"request_id": request_id, "correct": True}) for request_id in served[:2]]
        answers.append(label(first, {"request_id": served[2], "correct": False}))
    assert [answer.json()["joined"] for answer in answers] == [False, False, True]  # each replica knows its own
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = [json.loads(fields["line"]) for _, fields in client.xrange(FEEDBACK_STREAM_KEY)]
    assert [entry["request_id"] for entry in stream] == [request_id.removeprefix("chatcmpl-") for request_id in served]
    result = runner.invoke(cli_app, ["monitor", "--redis", redis_url, "--hedge-level", "0.7", "--json"])
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert (group["labelled"], group["errors"]) == (3, 1)  # gate monitor joins every replica's labels
