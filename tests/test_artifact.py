"""Fitting a gate from cached signals, the artifact's JSON round trip and its refusal paths."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from calibration.artifact import ArtifactError, artifact_from_dict, load_artifact
from calibration.fitting import SPLITS, Target, cross_fitted_scores, fit_stage, precheck_threshold, split_rows
from calibration.fusion import make_fusion
from calibration.thresholds import decisions
from estimators.base import Cost, Signal
from estimators.testing import Rule, ScriptedLLM
from gate.config import Settings
from gate.factory import SHIPPED_ARTIFACT, SHIPPED_NO_PRECHECK_ARTIFACT, load_calibration, suite_from
from gate.offline.calibrate import (
    EVALUATED_ON,
    FITTED_ON,
    FitOptions,
    cascade_outcomes,
    fit_artifact,
    matrix,
    report_data,
    retarget,
)
from gate.offline.signal_cache import CachedRow, append_row, open_cache, read_cache
from gate.pipeline import Gate
from gate.suite import DEFAULT_SUITE, SignalSpec

MODEL = "local/gemma-3-270m"
OPTIONS = FitOptions(target=Target(answer_level=0.6, hedge_level=0.4), n_resamples=50)


def synthetic_rows(n: int = 400, seed: int = 0) -> list[CachedRow]:
    """Rows where token probability and consistency carry signal and the rest is noise; PACE on half."""
    rng = np.random.default_rng(seed)
    strength = {"logprob_min": 0.35, "consistency": 0.3}
    rows = []
    for i in range(n):
        correct = bool(rng.random() < 0.3)
        signals = {}
        for spec in DEFAULT_SUITE:
            if spec.key == "pace" and i % 2:
                continue
            value = float(np.clip(rng.normal(0.4 + strength.get(spec.key, 0.0) * correct, 0.2), 0, 1))
            calls = 0 if spec.stage == "free" else 2
            cost = Cost(calls=calls, prompt_tokens=10 * calls, seconds=0.5 * calls)
            signals[spec.key] = Signal(name=spec.estimator, confidence=value, cost=cost)
        answer_cost = Cost(calls=1, prompt_tokens=20, seconds=0.3)
        rows.append(CachedRow(f"q{i}", "synthetic", f"question {i}?", ("a",), "a", correct, signals, answer_cost))
    return rows


@pytest.fixture(scope="module")
def artifact_and_rows():
    rows = synthetic_rows()
    return fit_artifact(rows, model=MODEL, suite=DEFAULT_SUITE, options=OPTIONS), rows


def test_splits_are_stable_when_rows_are_added() -> None:
    ids = [f"id{i}" for i in range(500)]
    first = split_rows(ids[:300], seed=3)
    assert list(split_rows(ids, seed=3)[:300]) == list(first)
    counts = {name: int((split_rows(ids, seed=3) == name).sum()) for name in SPLITS}
    assert 150 < counts["fit"] < 250 and all(60 < counts[name] < 140 for name in SPLITS[1:])
    assert list(split_rows(ids, seed=4)) != list(split_rows(ids, seed=3))


def test_fitted_artifact_separates_and_round_trips(artifact_and_rows, tmp_path: Path) -> None:
    artifact, rows = artifact_and_rows
    fused = artifact.metrics["fused"]["auroc"]["value"]
    best_single = max(artifact.metrics["signals"][key]["auroc"]["value"] for key in ("logprob_min", "consistency"))
    assert fused > best_single  # two informative signals fused beat either alone
    loaded = load_artifact(artifact.save(tmp_path / "a.json"))
    assert loaded.id == artifact.id
    values = {"familiarity": 0.2, "logprob_mean": 0.5, "logprob_min": 0.7, "consistency": 0.8, "p_true": None}
    assert loaded.full.probability(values) == artifact.full.probability(values)
    assert set(artifact.stages) == {"free", "full"}
    # fusion "auto" keeps the free signals that earn their place, in the suite's order
    assert set(artifact.free.signals) <= {"familiarity", "logprob_mean", "logprob_min"}
    assert artifact.data["fit"]["free"]["fusion"].endswith(f"[{'+'.join(artifact.free.signals)}]")
    assert artifact.data["splits"]["test"] == len(report_data(artifact, rows).y_correct)


def test_the_summary_names_the_fitting_data_and_the_rows_evaluated_apart(artifact_and_rows) -> None:
    artifact, rows = artifact_and_rows
    held_out = report_data(artifact, rows)
    fitted, n_test = held_out.summary[FITTED_ON], artifact.data["splits"]["test"]
    assert fitted.startswith(f"synthetic {len(rows)} ({len(rows)} rows); split fit ") and "(seed 0)" in fitted
    assert held_out.summary[EVALUATED_ON] == f"the artifact's held-out test split: synthetic {n_test} ({n_test} rows)"
    new = [dataclasses.replace(row, dataset="trivia" if i % 3 == 0 else "popqa") for i, row in enumerate(rows[:30])]
    evaluated = report_data(artifact, new, held_out_only=False)  # gate evaluate: new data, every row
    assert evaluated.summary[FITTED_ON] == fitted  # still the artifact's own data, not the data evaluated
    assert (
        evaluated.summary[EVALUATED_ON]
        == "all rows given, the artifact applied as fitted: trivia 10, popqa 20 (30 rows)"
    )
    assert "datasets" not in evaluated.summary


def test_the_cascade_costs_less_than_the_full_pipeline(artifact_and_rows) -> None:
    artifact, _ = artifact_and_rows
    costs = artifact.metrics["request_costs"]
    assert costs["with cascade"]["calls"] < costs["full pipeline"]["calls"]


def test_loaded_artifact_drives_the_pipeline(artifact_and_rows) -> None:
    artifact, _ = artifact_and_rows
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.05)])
    result = _run(Gate(llm, artifact).assess("Who wrote Hamlet?", cascade=False, precheck=False))
    assert result.calibration == artifact.id
    assert 0.0 <= result.probability <= 1.0
    assert result.thresholds == {"abstain": artifact.full.abstain, "hedge": artifact.full.hedge}


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def test_edited_artifact_is_refused(artifact_and_rows, tmp_path: Path) -> None:
    artifact, _ = artifact_and_rows
    path = artifact.save(tmp_path / "a.json")
    data = json.loads(path.read_text())
    data["data"]["rows"] = 1  # a plausible edit that validation alone would not catch
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="does not match the content"):
        load_artifact(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=99), "version 99 is not supported"),
        (lambda d: d.update(format="other"), "not an llm-gate calibration artifact"),
        (lambda d: d.pop("stages"), "missing \\['stages'\\]"),
        (lambda d: d["stages"].pop("full"), "stages must hold 'full'"),
        (lambda d: d["stages"]["full"]["fusion"].update(kind="pickle"), "stages.full"),
        (lambda d: d["precheck"].update(threshold=3), "precheck.threshold"),
    ],
)
def test_malformed_artifacts_say_what_is_wrong(artifact_and_rows, change, message) -> None:
    artifact, _ = artifact_and_rows
    data = artifact.to_dict()
    change(data)
    with pytest.raises(ArtifactError, match=message):
        artifact_from_dict(data)


def test_not_json_and_missing_files_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArtifactError, match="is not JSON"):
        load_artifact(bad)
    with pytest.raises(ArtifactError, match="cannot read"):
        load_artifact(tmp_path / "absent.json")


def test_artifact_refuses_another_model_or_suite(artifact_and_rows) -> None:
    artifact, _ = artifact_and_rows
    suite = [spec.to_dict() for spec in DEFAULT_SUITE]
    artifact.check_applies_to(MODEL, suite)
    with pytest.raises(ArtifactError, match="fitted for model 'local/gemma-3-270m', not 'openai/gpt-4o'"):
        artifact.check_applies_to("openai/gpt-4o", suite)
    other = [*suite[:-1], SignalSpec("pace", "pace", "full", {"n_samples": 3}).to_dict()]
    with pytest.raises(ArtifactError, match="other settings"):
        artifact.check_applies_to(MODEL, other)


def test_an_artifact_that_calls_the_full_stage_expensive_still_loads_and_applies(artifact_and_rows) -> None:
    artifact, rows = artifact_and_rows
    data = artifact.to_dict()
    data["suite"] = [{**spec, "stage": "expensive"} if spec["stage"] == "full" else spec for spec in data["suite"]]
    old = artifact_from_dict({"id": artifact_from_dict(data).id, **data})
    assert old.suite == data["suite"] and old.id != artifact.id  # kept as written: the id names the file
    assert old.current_suite == artifact.suite
    old.check_applies_to(MODEL, [spec.to_dict() for spec in DEFAULT_SUITE])
    assert report_data(old, rows).request_costs == report_data(artifact, rows).request_costs


def test_too_few_rows_per_class_is_a_clear_error() -> None:
    rows = synthetic_rows(n=12)
    with pytest.raises(ValueError, match="each split needs at least 2 of both"):
        fit_artifact(rows, model=MODEL, suite=DEFAULT_SUITE, options=OPTIONS)


def test_cross_fitted_scores_come_from_fusions_that_never_saw_the_row() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = x[:, 0] + 0.3 * rng.normal(size=60) > 0
    x[7] = [5.0, 5.0]  # an outlier labelled against the trend: fitted on, it would pull its own score up
    y[7] = False
    out_of_fold = cross_fitted_scores("logistic", x, y, signals=["a", "b"])
    in_sample = make_fusion("logistic").fit(x, y, feature_names=["a", "b"]).predict_score(x)
    assert out_of_fold.shape == (60,) and out_of_fold[7] > in_sample[7]
    assert np.array_equal(out_of_fold, cross_fitted_scores("logistic", x, y, signals=["a", "b"]))  # seeded


def test_a_stage_ignores_the_threshold_and_test_labels_when_fusing_and_calibrating() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(400, 1))
    y = rng.uniform(size=400) < x[:, 0]
    split = split_rows([f"r{i}" for i in range(400)], seed=0)
    flipped = np.where(np.isin(split, ["threshold", "test"]), ~y, y)
    first, _ = fit_stage(x, y, split, signals=["s"], calibrator="platt")
    second, _ = fit_stage(x, flipped, split, signals=["s"], calibrator="platt")
    grid = np.linspace(0, 1, 11)[:, None]
    assert np.allclose(first.probabilities(grid), second.probabilities(grid))


def test_auto_calibration_keeps_every_score_distinct_even_when_a_step_calibrator_fits_better() -> None:
    # The truth is a step: 5% right below 0.5, 60% above. Binning fits that better than a sigmoid, but it
    # would merge the scores within each bin and lose their ranking, so auto must not choose it.
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(1000, 1))
    y = rng.uniform(size=1000) < np.where(x[:, 0] < 0.5, 0.05, 0.6)
    split = split_rows([f"r{i}" for i in range(1000)], seed=0)
    stage, info = fit_stage(x, y, split, signals=["s"])
    losses = info["calibrator_cv_log_loss"]
    assert info["calibrator"] in ("platt", "temperature")
    assert min(losses["histogram"], losses["isotonic"]) < losses[info["calibrator"]]  # the step did fit better
    grid = np.linspace(0.01, 0.99, 50)[:, None]
    assert np.all(np.diff(stage.probabilities(grid)) > 0)
    binned, binned_info = fit_stage(x, y, split, signals=["s"], calibrator="histogram")  # still there when named
    assert binned_info["calibrator"] == "histogram" and len(np.unique(binned.probabilities(grid))) < 20


def test_precheck_threshold_only_cuts_where_few_correct_answers_are_lost() -> None:
    familiarity = np.array([0.01, 0.02, 0.03, 0.5, 0.6, 0.7, 0.8, 0.9] * 10)
    correct = np.array([False, False, False, True, False, True, False, True] * 10)
    assert precheck_threshold(familiarity, correct) == 0.5
    assert precheck_threshold(np.linspace(0, 1, 80), np.arange(80) % 2 == 0) is None


def test_signal_cache_resumes_and_refuses_another_suite(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    rows = synthetic_rows(n=3)
    assert open_cache(path, MODEL, DEFAULT_SUITE) == []
    for row in rows[:2]:
        append_row(path, row)
    with path.open("a") as handle:
        handle.write('{"id": "torn')  # an interrupted write
    again = open_cache(path, MODEL, DEFAULT_SUITE)
    assert [row.id for row in again] == ["q0", "q1"]
    append_row(path, rows[2])
    assert [row.id for row in read_cache(path)[1]] == ["q0", "q1", "q2"]
    with pytest.raises(ValueError, match="different signal suite"):
        open_cache(path, MODEL, DEFAULT_SUITE[:2])
    # the same signals in other cascade stages (precheck: false) read the same cache
    assert len(open_cache(path, MODEL, suite_from(Settings(precheck=False)))) == 3


def test_without_a_precheck_familiarity_is_in_the_full_stage_and_never_abstains_before_answering() -> None:
    suite = suite_from(Settings(precheck=False))
    assert {spec.key: spec.stage for spec in suite}["familiarity"] == "full"
    assert suite_from(Settings())[0].stage == "precheck"
    every_signal = dataclasses.replace(OPTIONS, fusion="logistic")  # no selection: where familiarity goes is the point
    artifact = fit_artifact(synthetic_rows(), model=MODEL, suite=suite, options=every_signal)
    assert artifact.precheck_threshold is None and "familiarity" not in artifact.free.signals
    assert "familiarity" in artifact.full.signals


def test_the_shipped_artifacts_fit_their_precheck_setting() -> None:
    for precheck, path in ((True, SHIPPED_ARTIFACT), (False, SHIPPED_NO_PRECHECK_ARTIFACT)):
        settings = Settings(precheck=precheck)
        calibration = load_calibration(settings, suite_from(settings))  # refuses a suite it was not fitted on
        stages = {spec["key"]: spec["stage"] for spec in calibration.suite}
        assert (stages["familiarity"] == "precheck") == precheck
        # on the embedded model no precheck cut saves the call it costs, so neither artifact has one
        assert calibration.precheck_threshold is None
        assert calibration.id == json.loads(path.read_text())["id"]  # the id the reports and the README quote


def test_dataset_entries_take_their_own_count_and_extend_the_same_draw(tmp_path: Path) -> None:
    from gate.offline.collect import sample_items

    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}?", "answers": ["a"]}) + "\n" for i in range(20)))
    small = sample_items([f"{path}:3"], limit=10, seed=0)
    large = sample_items([str(path)], limit=10, seed=0)
    assert len(small) == 3 and len(large) == 10
    assert [item.id for _, item in small] == [item.id for _, item in large[:3]]
    assert {name for name, _ in small} == {"qa"}


def test_early_exits_keep_what_the_full_stage_delivers(artifact_and_rows) -> None:
    artifact, rows = artifact_and_rows
    free, full = artifact.free, artifact.full
    split = split_rows([row.id for row in rows], seed=0)
    held = [row for row, part in zip(rows, split, strict=True) if part == "threshold"]
    p_free = free.probabilities(matrix(held, free.signals))
    delivered = decisions(full.probabilities(matrix(held, full.signals)), full.thresholds) != "abstain"
    early_abstain = p_free < free.abstain
    # the early abstentions withhold at most 5% of what the full stage would answer or hedge
    assert (early_abstain & delivered).sum() <= 0.05 * delivered.sum()
    assert free.thresholds.hedge_result.method == "early_exit"
    assert "early exit" in free.thresholds.hedge_result.message
    # the early answer threshold is the free stage's own Learn-then-Test threshold, which certifies it
    assert free.thresholds.answer_result.method.startswith("ltt")


def test_early_exit_cut_on_hand_made_rows(artifact_and_rows) -> None:
    from calibration.fitting import early_exit_thresholds

    stage = artifact_and_rows[0].free
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] * 2)
    full = np.array(["abstain"] * 4 + ["hedge"] * 6 + ["abstain"] * 2 + ["answer"] * 8)
    y = p > 0.45
    exits = early_exit_thresholds(stage, p, p, y, full_decisions=full, max_lost=0.0)
    # 14 delivered rows; none may be lost: the lowest delivered p is 0.2 (row 12), so the cut is 0.2
    assert exits.abstain == pytest.approx(min(0.2, stage.thresholds.hedge))
    assert exits.hedge == stage.thresholds.hedge
    # the same decisions, but the full stage ranks the low rows differently: exiting early would lose AUROC
    reranked = np.where(p < 0.35, 1 - p, p) * 0.4
    y_low = (p < 0.35) & (np.arange(20) % 2 == 0)
    strict = early_exit_thresholds(stage, p, reranked, y_low, full_decisions=full, max_lost=1.0, keep_auroc=0.99)
    assert strict.abstain <= 0.05  # only below every row: the full stage's ranking is kept


def test_retarget_rechooses_thresholds_and_keeps_the_fit(artifact_and_rows) -> None:
    artifact, rows = artifact_and_rows
    strict = retarget(artifact, rows, Target(answer_level=0.9, hedge_level=0.4))
    loose = retarget(artifact, rows, Target(answer_level=0.5, hedge_level=0.4))
    assert strict.full.fusion is artifact.full.fusion and strict.precheck_threshold == artifact.precheck_threshold
    assert strict.full.hedge >= loose.full.hedge  # a stricter target answers from a higher probability
    assert strict.target["answer_level"] == 0.9 and strict.id != artifact.id
    same = retarget(artifact, rows, Target(**artifact.target))
    assert same.full.thresholds == artifact.full.thresholds


def test_gate_retarget_writes_the_same_fit_for_another_target(artifact_and_rows, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gate.cli.main import app

    artifact, rows = artifact_and_rows
    cache = tmp_path / "signals.jsonl"
    open_cache(cache, MODEL, DEFAULT_SUITE)
    for row in rows:
        append_row(cache, row)
    fitted = artifact.save(tmp_path / "fitted.json")
    out = tmp_path / "strict.json"
    args = ["retarget", str(fitted), "--signals", str(cache), "--answer-level", "0.9", "--hedge-level", "0.4"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = load_artifact(out)
    expected = retarget(artifact, rows, Target(answer_level=0.9, hedge_level=0.4))
    assert written.full.thresholds == expected.full.thresholds and written.target["answer_level"] == 0.9
    assert written.full.fusion.to_dict() == artifact.full.fusion.to_dict()  # the fit is kept
    bad = CliRunner().invoke(
        app, ["retarget", str(fitted), "--signals", str(cache), "--answer-level", "1.5", "-o", "x"]
    )
    assert bad.exit_code != 0 and "must lie strictly between 0 and 1" in bad.output and "Traceback" not in bad.output


def test_the_held_out_report_shows_what_each_target_would_answer(artifact_and_rows) -> None:
    artifact, rows = artifact_and_rows
    tables = report_data(artifact, rows).extra_tables
    [title] = [title for title in tables if title.startswith("Trade-off")]
    table = tables[title]
    allowed = [row["allowed error among answered"] for row in table]
    assert allowed == sorted(allowed, reverse=True) and len(allowed) == 9
    answered = [row["answered (test)"] for row in table]
    assert answered == sorted(answered, reverse=True)  # a stricter target never answers more
    own = round(1 - artifact.target["answer_level"], 2)
    shipped = next(row for row in table if row["allowed error among answered"] == own)
    test = [row for row, part in zip(rows, split_rows([r.id for r in rows], seed=0), strict=True) if part == "test"]
    _, decided, _ = cascade_outcomes(artifact, test)
    assert shipped["answered (test)"] == round(float(np.mean(decided == "answer")), 4)  # the artifact's own target
    new_data = report_data(artifact, rows, held_out_only=False).extra_tables  # gate evaluate: no threshold split
    assert not any(title.startswith("Trade-off") for title in new_data)
