"""The audit log: one line per request through the proxy, hashing, secrets, rotation, reading it back, load."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from estimators.base import Generation, Prompt
from estimators.testing import Rule, ScriptedLLM
from gate.audit.log import AuditLog, Outcome
from gate.audit.report import audit_files, percentile, read_records, summarize, tail_records
from gate.cli.main import app as cli_app
from gate.config import Settings
from gate.errors import ConfigError, UpstreamError
from gate.server.app import create_app
from tests.audit_writer import append_lines
from tests.test_prom import parse, value
from tests.test_server import (
    ABSTAIN_Q,
    ANSWER_Q,
    HEDGE_Q,
    MODEL,
    RULES,
    FakeCalibration,
    ask,
    failing,
    make_gate,
    serving,
)
from tests.test_server import (
    chat as chat_body,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GATE_CONFIG", "GATE_MODE", "GATE_API_KEYS", "GATE_AUDIT_PATH", "GATE_AUDIT_QUESTION"):
        monkeypatch.delenv(name, raising=False)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- one line per request through the proxy -------------------------------------------------------------------


async def test_every_gated_request_gets_one_line_with_its_decision_signals_latency_and_cost(tmp_path):
    log = tmp_path / "logs" / "audit.jsonl"  # the directory is created at start
    async with serving(audit_path=log) as client:
        answered = await ask(client, ANSWER_Q)
        hedged = await ask(client, HEDGE_Q, stream=True)
        abstained = await client.post("/v1/completions", json={"model": MODEL, "prompt": ABSTAIN_Q})
    first, second, third = lines_of(log)
    assert [r["request_id"] for r in (first, second, third)] == [
        r.headers["x-request-id"] for r in (answered, hedged, abstained)
    ]
    assert [r["decision"] for r in (first, second, third)] == ["answer", "hedge", "abstain"]
    assert [r["route"] for r in (first, second, third)] == ["chat", "chat", "completions"]
    assert first["probability"] == pytest.approx(0.990, abs=1e-3)
    assert first["stage"] == answered.json()["gate"]["stage"] and first["signals"] == answered.json()["gate"]["signals"]
    assert first["mode"] == "enforce" and first["model"] == MODEL and first["calibration"] == "test-artifact"
    assert set(first["signals"]) == {"familiarity", "logprob_min", "logprob_mean"}
    assert first["question_sha256"] == sha(ANSWER_Q) and "question" not in first
    assert "below the abstain threshold" in " ".join(third["reasons"]) and third["error"] is None
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    latency, cost = first["latency_ms"], first["cost"]
    assert latency["total"] >= latency["gate"] >= 0 and latency["upstream"] >= 0
    assert latency["total"] == pytest.approx(latency["gate"] + latency["upstream"], abs=0.01)
    assert cost["gate_calls"] >= 1 and cost["calls"] == cost["gate_calls"] + 1
    assert cost["tokens"] >= cost["gate_tokens"] > 0
    assert "original" not in first and "William Shakespeare" not in log.read_text()  # answers are not logged


async def test_pass_through_requests_get_a_line_without_a_decision_and_refused_ones_get_none(tmp_path):
    log = tmp_path / "audit.jsonl"
    async with serving(audit_path=log, api_keys=["k-1"], allowed_modes=["off", "enforce"]) as client:
        headers = {"authorization": "Bearer k-1"}
        passed = await client.post(
            "/v1/chat/completions", json={**_chat(ANSWER_Q), "gate": {"mode": "off"}}, headers=headers
        )
        bad = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": []}, headers=headers)
        unauthorized = await ask(client, ANSWER_Q)
    assert passed.status_code == 200 and bad.status_code == 400 and unauthorized.status_code == 401
    [line] = lines_of(log)
    assert line["mode"] == "off" and line["decision"] is None and line["signals"] == {}
    assert line["cost"] == {"calls": 1, "tokens": 6, "gate_calls": 0, "gate_tokens": 0}
    assert line["latency_ms"]["upstream"] is not None


def _chat(question: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}]}


async def test_a_precheck_abstention_has_no_upstream_latency(tmp_path):
    llm = ScriptedLLM(rules=[Rule("Hamlet", "no idea")], default="something else")
    async with serving(make_gate(llm, FakeCalibration(precheck_threshold=0.5)), audit_path=tmp_path / "a") as client:
        await ask(client, ANSWER_Q)
    [line] = lines_of(tmp_path / "a")
    assert line["stage"] == "precheck" and line["decision"] == "abstain"
    assert line["latency_ms"]["upstream"] is None and line["latency_ms"]["gate"] == line["latency_ms"]["total"]


async def test_the_question_text_is_logged_only_when_configured(tmp_path):
    async with serving(audit_path=tmp_path / "a", audit_question="text") as client:
        await ask(client, ANSWER_Q)
    [line] = lines_of(tmp_path / "a")
    assert line["question"] == ANSWER_Q and line["question_sha256"] == sha(ANSWER_Q)


async def test_a_request_that_fails_upstream_gets_a_line_with_its_error_type(tmp_path):
    error = UpstreamError("openai/x timed out; key sk-up-123", status=504)
    async with serving(failing(error), audit_path=tmp_path / "a", api_key="sk-up-123") as client:
        response = await ask(client, ANSWER_Q)
    assert response.status_code == 504
    [line] = lines_of(tmp_path / "a")
    assert line["error"] == {"type": "UpstreamError", "status": 504} and line["decision"] is None
    assert "sk-up-123" not in (tmp_path / "a").read_text()


@pytest.mark.parametrize("mode", ["hash", "text"])
async def test_a_lone_surrogate_in_the_question_is_audited_not_a_500(tmp_path, mode):
    question = "Who wrote \ud800 Hamlet?"  # legal as a JSON escape, not encodable as UTF-8
    body = json.dumps(chat_body(question)).encode()  # ensure_ascii: the surrogate travels as \\ud800
    async with serving(audit_path=tmp_path / "a", audit_question=mode) as client:
        response = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    [line] = lines_of(tmp_path / "a")
    assert line["question_sha256"] == hashlib.sha256(question.encode("utf-8", "surrogatepass")).hexdigest()
    assert line.get("question") == (question if mode == "text" else None)
    assert value(parse(metrics), "gate_audit_write_failures_total") == 0


async def test_no_api_key_reaches_the_audit_file_even_when_auth_is_on(tmp_path):
    log = tmp_path / "audit.jsonl"
    client_key, upstream_key, operator_key = "sk-client-secret-1", "sk-upstream-secret-2", "sk-operator-secret-3"
    keys = {"api_keys": [client_key], "privileged_api_keys": [operator_key], "api_key": upstream_key}
    async with serving(audit_path=log, audit_question="text", **keys) as client:
        headers = {"authorization": f"Bearer {client_key}"}
        leaky = f"My keys are {client_key} and {upstream_key}, {operator_key}. Who wrote Hamlet?"
        ok = await client.post("/v1/chat/completions", json=_chat(leaky), headers=headers)
        wrong = await client.post("/v1/chat/completions", json=_chat(ANSWER_Q), headers={"authorization": "Bearer x"})
    assert ok.status_code == 200 and wrong.status_code == 401
    text = log.read_text()
    assert client_key not in text and upstream_key not in text and operator_key not in text and "Bearer" not in text
    [line] = lines_of(log)
    assert line["question"] == "My keys are *** and ***, ***. Who wrote Hamlet?"


def test_an_audit_path_that_cannot_be_written_stops_the_server_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be written"):
        create_app(Settings(model=MODEL, audit_path=blocker / "audit.jsonl"), gate=make_gate())


async def test_a_failing_audit_write_keeps_answering_and_is_counted(tmp_path):
    log = tmp_path / "audit.jsonl"
    async with serving(audit_path=log) as client:
        log.unlink()
        log.mkdir()  # appending to a directory fails with an OSError
        response = await ask(client, ANSWER_Q)
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    assert value(parse(metrics), "gate_audit_write_failures_total") == 1


# --- the writer: rotation and concurrency ---------------------------------------------------------------------


def outcome(index: int, **extra: Any) -> Outcome:
    values = {"route": "chat", "model": MODEL, "mode": "enforce", "question": f"q{index}", "total_s": 0.01}
    return Outcome(request_id=f"r{index}", **(values | extra))


async def write_all(log: AuditLog, count: int) -> None:
    await asyncio.gather(*(log.write(outcome(i)) for i in range(count)))


@pytest.mark.parametrize("backups", [50, 3])
async def test_rotation_by_size_keeps_n_backups_and_loses_nothing_within_them(tmp_path, backups):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=2048, backups=backups, question="hash")
    size = len(log.line(outcome(0)).encode())
    for index in range(60):  # in order, one at a time, so the expected order is known
        await log.write(outcome(index))
    files = audit_files(path)
    kept = [record["request_id"] for record in read_records(files)]
    assert all(f.stat().st_size <= 2048 for f in files)
    if backups == 50:
        assert kept == [f"r{i}" for i in range(60)]
    else:
        assert [f.name for f in files] == ["audit.jsonl.3", "audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
        assert not (tmp_path / "audit.jsonl.4").exists()
        assert kept == [f"r{i}" for i in range(60 - len(kept), 60)]
        assert all(f.stat().st_size + size + 8 > 2048 for f in files[:-1])  # each backup was full when rotated


async def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    await write_all(AuditLog(path, max_bytes=10_000, backups=100, question="text"), 300)
    ids = sorted(record["request_id"] for record in read_records(audit_files(path)))
    assert ids == sorted(f"r{i}" for i in range(300))


def test_processes_sharing_one_file_rotate_it_without_losing_or_tearing_a_line(tmp_path):
    """``gate serve --workers N``: every worker appends to and rotates the same file, under a file lock."""
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("spawn")  # a clean interpreter, as uvicorn starts its workers
    writers = [context.Process(target=append_lines, args=(path, k * 200, 200, 4096)) for k in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    files = audit_files(path)
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert len(files) > 10 and all(f.stat().st_size <= 4096 for f in files)  # it did rotate, many times
    assert sorted(json.loads(line)["request_id"] for line in lines) == sorted(f"r{i}" for i in range(800))


async def test_without_backups_rotation_starts_the_file_afresh(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1024, backups=0, question="hash")
    for index in range(20):
        await log.write(outcome(index))
    assert audit_files(path) == [path] and lines_of(path)[-1]["request_id"] == "r19"


# --- reading it back -----------------------------------------------------------------------------------------


def record(decision: str | None, total: float, gate: float, probability: float | None, **extra: Any) -> str:
    values = {
        "time": extra.pop("time", "2026-01-01T00:00:00.000Z"),
        "request_id": extra.pop("request_id", "r"),
        "model": extra.pop("model", "m1"),
        "mode": extra.pop("mode", "enforce"),
        "decision": decision,
        "probability": probability,
        "latency_ms": {"total": total, "upstream": total - gate, "gate": gate},
        "signal_errors": extra.pop("signal_errors", {}),
        "error": extra.pop("error", None),
    }
    return json.dumps(values) + "\n"


@pytest.fixture
def hand_log(tmp_path) -> Path:
    """Seven records over two files, and a torn last line as a crash leaves it."""
    path = tmp_path / "audit.jsonl"
    backup = tmp_path / "audit.jsonl.1"
    backup.write_text(
        record("answer", 10, 1, 0.9, time="2026-01-01T00:00:01.000Z", request_id="a")
        + record("answer", 20, 2, 0.8, request_id="b", signal_errors={"consistency": "boom"})
        + "not json at all\n"
    )
    path.write_text(
        record("hedge", 30, 3, 0.5, model="m2", request_id="c")
        + record("abstain", 40, 4, 0.1, request_id="d")
        + record(None, 1000, 5, None, mode="off", request_id="e")
        + record(None, 50, 50, None, error={"type": "UpstreamError", "status": 504}, request_id="f")
        + record("answer", 5, 5, 0.7, time="2026-01-02T00:00:00.000Z", request_id="g")
        + '{"time": "2026-01-02T00:00:01.000Z", "request_id": "torn", "deci'
    )
    return path


def test_summary_counts_a_hand_written_log_and_skips_malformed_lines(hand_log):
    numbers = summarize(read_records(audit_files(hand_log))).numbers()
    assert numbers["lines"] == 9 and numbers["malformed"] == 2 and numbers["records"] == 7
    assert numbers["decisions"] == {"answer": 3, "hedge": 1, "abstain": 1, "pass-through": 1, "error": 1}
    assert numbers["errors"] == {"UpstreamError (504)": 1}
    assert numbers["signal_errors"] == {"signal consistency": 1}
    assert numbers["models"] == {"m1": 6, "m2": 1}
    totals = [10, 20, 30, 40, 1000, 50, 5]  # sorted: 5 10 20 30 40 50 1000
    assert numbers["latency_ms"]["total"] == {"p50": 30, "p99": pytest.approx(50 + 0.94 * 950)}
    assert numbers["latency_ms"]["total"]["p99"] == pytest.approx(np.percentile(totals, 99))
    assert numbers["latency_ms"]["gate"]["p50"] == 4
    assert numbers["mean_probability"] == pytest.approx((0.9 + 0.8 + 0.5 + 0.1 + 0.7) / 5)
    assert numbers["first"] == "2026-01-01T00:00:00.000Z" and numbers["last"] == "2026-01-02T00:00:00.000Z"


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_agrees_with_numpy(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-6)


def test_tail_reads_back_across_rotated_files(hand_log):
    records, malformed = tail_records(hand_log, 6)
    assert [r["request_id"] for r in records] == ["b", "c", "d", "e", "f", "g"] and malformed == 2
    assert tail_records(hand_log, 0) == ([], 0)


def test_the_audit_commands_print_the_tail_and_the_summary(hand_log):
    tail = runner.invoke(cli_app, ["audit", "tail", str(hand_log), "-n", "2"])
    as_json = runner.invoke(cli_app, ["audit", "tail", str(hand_log), "-n", "3", "--json"])
    summary = runner.invoke(cli_app, ["audit", "summary", str(hand_log)])
    summary_json = runner.invoke(cli_app, ["audit", "summary", str(hand_log), "--json"])
    assert tail.exit_code == 0, tail.output
    shown = tail.stdout.splitlines()
    assert len(shown) == 2 and "error:UpstreamError" in shown[0] and shown[1].startswith("2026-01-02T00:00:00.000Z  g")
    assert "p=0.70" in shown[1] and "5 ms" in shown[1]
    assert "skipped 1 malformed line(s)" in tail.stderr
    assert [json.loads(line)["request_id"] for line in as_json.stdout.splitlines()] == ["e", "f", "g"]
    assert summary.exit_code == 0, summary.output
    text = summary.stdout
    assert "2 file(s), 9 line(s), 2 malformed (skipped)" in text
    assert "answer 3 (42.9%)" in text and "UpstreamError (504) 1" in text and "signal consistency 1" in text
    assert "total      p50 30.0 ms, p99 943.0 ms" in text and "mean 0.600" in text and "m2 1 (14.3%)" in text
    assert json.loads(summary_json.stdout)["records"] == 7


def test_the_audit_commands_say_when_there_is_no_log(tmp_path):
    missing = runner.invoke(cli_app, ["audit", "summary", str(tmp_path / "nothing.jsonl")])
    unconfigured = runner.invoke(cli_app, ["audit", "tail"])
    assert missing.exit_code == 2 and "no audit log at" in missing.stderr
    assert unconfigured.exit_code == 2 and "configure audit_path" in unconfigured.stderr


def test_the_audit_commands_default_to_the_configured_path(hand_log, monkeypatch):
    monkeypatch.setenv("GATE_AUDIT_PATH", str(hand_log))
    result = runner.invoke(cli_app, ["audit", "tail", "-n", "1"])
    assert result.exit_code == 0 and "  g  " in result.stdout


# --- load: nothing lost ---------------------------------------------------------------------------------------


class SlowishLLM(ScriptedLLM):
    """Takes a millisecond per call, so that requests overlap and the concurrency limit is reached."""

    async def generate(self, prompt: Prompt, **kwargs: Any) -> list[Generation]:
        await asyncio.sleep(0.001)
        return await super().generate(prompt, **kwargs)


REQUESTS = 2000


async def test_load_every_request_is_answered_or_429_and_each_answer_has_one_audit_line(tmp_path):
    log = tmp_path / "audit.jsonl"
    questions = [ANSWER_Q, HEDGE_Q, ABSTAIN_Q]
    limit = asyncio.Semaphore(50)
    started = time.perf_counter()
    async with serving(make_gate(SlowishLLM(rules=RULES)), audit_path=log, max_concurrency=20) as client:

        async def one(index: int) -> tuple[int, str | None]:
            async with limit:
                response = await ask(client, questions[index % 3])
                if response.status_code == 429:  # a client backing off briefly, as retry-after asks (shortened)
                    await asyncio.sleep(0.05)
            return response.status_code, response.headers.get("x-request-id")

        results = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
        metrics = (await client.get("/metrics")).text
    elapsed = time.perf_counter() - started
    statuses = [status for status, _ in results]
    print(f"load: {statuses.count(200)} answered, {statuses.count(429)} got 429, {elapsed:.2f} s")
    assert set(statuses) == {200, 429}, set(statuses)  # nothing lost, no 5xx, and the limit was reached
    answered = sorted(request_id for status, request_id in results if status == 200)
    assert sorted(line["request_id"] for line in lines_of(log)) == answered
    requests, chat = parse(metrics), "/v1/chat/completions"
    assert value(requests, "gate_requests_total", route=chat, mode="none", status="429") == REQUESTS - len(answered)
    assert value(requests, "gate_requests_total", route=chat, mode="enforce", status="200") == len(answered)
