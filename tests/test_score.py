"""`gate score` and `gate evaluate` on the scripted fake LLM: malformed lines, resume, drift verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibration.fitting import Target
from calibration.report import ReportData
from estimators.testing import Rule, ScriptedLLM
from gate.offline.calibrate import FitOptions, fit_artifact, report_data
from gate.offline.evaluate import drift_table, verdict
from gate.offline.score import ScoreInput, score_file, signals_for
from gate.pipeline import Gate
from gate.suite import DEFAULT_SUITE, SignalSpec
from gate.uncalibrated import Uncalibrated
from tests.test_artifact import synthetic_rows

SUITE = (
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
    SignalSpec("consistency", "consistency", "full", {"n_samples": 3, "adaptive": False}),
    SignalSpec("p_true", "p_true", "full", {"method": "sampled", "n_samples": 2}),
    SignalSpec("pace", "pace", "full", {"use_llm_judgements": False}),
)


def scripted_gate() -> tuple[Gate, ScriptedLLM]:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.2)], default="Yes")
    return Gate(llm, Uncalibrated(), suite=SUITE), llm


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps({"id": "a", "question": "Who wrote Hamlet?", "response": "Shakespeare", "team": "blue"})
SAMPLED = json.dumps({"question": "Who wrote Hamlet?", "response": "Marlowe", "samples": ["Shakespeare"] * 3})


async def test_malformed_lines_are_reported_with_their_number_and_the_rest_is_scored(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [GOOD, "{not json", '{"question": "q"}', "[1, 2]", "", SAMPLED])
    gate, _ = scripted_gate()
    summary = await score_file(gate, source, tmp_path / "out.jsonl")
    assert summary.scored == 2
    assert [m.split(":")[0] for m in summary.malformed] == ["line 2", "line 3", "line 4"]
    assert "response: Field required" in summary.malformed[1]
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in out] == ["a", "line-6"]
    assert out[0]["team"] == "blue"  # other fields pass through untouched
    assert out[0]["gate"]["decision"] in {"answer", "hedge", "abstain"}


async def test_a_second_run_resumes_and_scores_only_new_lines(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [GOOD, SAMPLED])
    out = tmp_path / "out.jsonl"
    gate, llm = scripted_gate()
    first = await score_file(gate, source, out)
    calls = len(llm.calls)
    again = await score_file(gate, source, out)
    assert (first.scored, again.scored, again.resumed) == (2, 0, 2)
    assert len(llm.calls) == calls  # nothing was recomputed
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:20])  # an interrupted write of the second line
    third = await score_file(gate, source, out)
    assert third.scored == 1 and third.resumed == 1


def test_only_signals_the_line_can_feed_are_computed() -> None:
    gate, _ = scripted_gate()
    bare = ScoreInput(question="q?", response="r")
    assert signals_for(gate, bare, sample_more=0) == ["p_true"]
    rich = ScoreInput(question="q?", response="r", samples=["r"], references=["p"], logprobs=[-0.1])
    assert signals_for(gate, rich, sample_more=0) == ["logprob_min", "consistency", "p_true", "pace"]
    assert "consistency" in signals_for(gate, bare, sample_more=2)


async def test_the_response_is_never_regenerated_and_samples_are_used_as_given(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [SAMPLED])
    gate, llm = scripted_gate()
    await score_file(gate, source, tmp_path / "out.jsonl")
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["gate"]["signals"]["consistency"] == 0.0  # Marlowe vs three Shakespeares
    assert not any(call.n == 3 for call in llm.calls)  # no sampling: the three samples were supplied


async def test_sample_more_draws_fresh_samples(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [GOOD])
    gate, llm = scripted_gate()
    await score_file(gate, source, tmp_path / "out.jsonl", sample_more=3)
    assert any(call.n == 3 and call.temperature == 1.0 for call in llm.calls)
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["gate"]["signals"]["consistency"] is not None


@pytest.fixture(scope="module")
def artifact():
    options = FitOptions(target=Target(answer_level=0.6, hedge_level=0.4), n_resamples=50)
    return fit_artifact(synthetic_rows(), model="local/gemma-3-270m", suite=DEFAULT_SUITE, options=options)


def test_the_drift_verdict_holds_on_similar_data_and_flips_on_drifted_data(artifact) -> None:
    similar = report_data(artifact, synthetic_rows(n=600, seed=1), held_out_only=False)
    assert verdict(artifact, similar).startswith("thresholds still meet the target: yes")
    drifted_rows = synthetic_rows(n=600, seed=1)
    flipped = [r.__class__(**{**r.__dict__, "correct": not r.correct}) for r in drifted_rows]  # signals now lie
    drifted = report_data(artifact, flipped, held_out_only=False)
    line = verdict(artifact, drifted)
    assert line.startswith("thresholds still meet the target: no") and "over the allowed 0.40" in line
    table = {row["quantity"]: row for row in drift_table(artifact, drifted, n_resamples=50)}
    assert set(table) >= {"fused AUROC", "fused ECE", "error answered rate", "answer rate"}
    assert table["fused AUROC"]["at fitting (held out)"] != "n/a"


def test_verdict_when_nothing_is_answered(artifact) -> None:
    data = report_data(artifact, synthetic_rows(n=100, seed=2), held_out_only=False)
    nothing = ReportData(
        title="t", summary={}, y_correct=data.y_correct, fused=np.zeros_like(data.fused),
        signals={}, thresholds=data.thresholds,
    )
    assert "nothing was answered" in verdict(artifact, nothing)


def test_named_signals_narrow_what_each_line_computes_and_unknown_names_are_listed() -> None:
    gate, _ = scripted_gate()
    rich = ScoreInput(question="q?", response="r", samples=["r"], references=["p"], logprobs=[-0.1])
    assert signals_for(gate, rich, sample_more=0, wanted=["pace", "p_true"]) == ["p_true", "pace"]
    with pytest.raises(ValueError, match="unknown signals \\['nope'\\]; valid"):
        signals_for(gate, rich, sample_more=0, wanted=["nope"])
