"""Claim-level calibration: the shipped claim artifacts load and apply to the claim estimators' per-claim values,
the split keeps an answer's claims together, and the fit certifies its kept-claims target on fresh draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.claim_calibration import write_before
from benchmarks.claim_calibration_fit import (
    ALPHAS,
    answer_split,
    build_artifact,
    choose_alpha,
    fit_route,
    group_interval,
)
from benchmarks.claim_rows import ClaimRows, claim_supports
from calibration.artifact import load_artifact
from estimators import make_estimator
from estimators.testing import ScriptedLLM
from gate.suite import SignalSpec

DATA = Path(__file__).resolve().parents[1] / "gate" / "data"
GROUNDED = DATA / "gemma-3-270m.claims-grounded.calibration.json"
CLAIM_ARTIFACTS = sorted(DATA.glob("*claims*.calibration.json"))

REFERENCE = "The Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair."
SUPPORTED = "The Eiffel Tower is in Paris."
INVENTED = "It was designed by Gaudi in 1925 for Barcelona."


def test_the_grounded_claim_artifact_is_shipped() -> None:
    artifact = load_artifact(GROUNDED)
    assert artifact.model == "local/gemma-3-270m"
    assert artifact.full.signals == ("claim_support",)
    assert artifact.target["unit"] == artifact.data["unit"] == "claim"
    assert 0.0 < artifact.full.abstain <= artifact.full.hedge <= 1.0  # both tiers reachable
    assert artifact.target["answer_level"] == pytest.approx(1 - artifact.target["alpha"])


@pytest.mark.parametrize("path", CLAIM_ARTIFACTS, ids=lambda p: p.name)
async def test_each_claim_artifact_applies_to_its_estimators_per_claim_values(path: Path) -> None:
    artifact = load_artifact(path)
    (spec,) = [SignalSpec.from_dict(s) for s in artifact.suite]  # the suite names a registered estimator
    estimator = make_estimator(spec.estimator, **spec.params)
    answer = f"{SUPPORTED} {INVENTED}"
    evidence = (
        {"references": [REFERENCE]}
        if spec.estimator == "claim_support"
        else {"samples": [REFERENCE, f"{SUPPORTED} It opened in 1889.", "The Eiffel Tower stands in Paris, France."]}
    )
    signal = await estimator.score("Tell me about the Eiffel Tower.", answer, llm=ScriptedLLM([]), **evidence)
    values = claim_supports(signal.details)
    assert len(values) == 2
    p = artifact.full.probabilities(np.array(values)[:, None])
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] > p[1]  # the copied claim is more likely supported than the invented one
    assert artifact.full.probability({spec.key: values[0]}) == pytest.approx(p[0])


def test_the_split_keeps_every_claim_of_an_answer_together_and_is_seeded() -> None:
    groups = np.repeat([f"a{i}" for i in range(200)], 3)
    split = answer_split(groups, seed=0)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    assert set(split) == {"fit", "calibrate", "threshold", "test"}
    assert np.array_equal(split, answer_split(groups, seed=0))
    assert not np.array_equal(split, answer_split(groups, seed=1))


def test_the_interval_resamples_whole_answers() -> None:
    # Each answer's claims are all supported or all not: a resample of whole answers keeps the per-answer mix,
    # so every resampled share is a multiple of 1/answers (never a row-level mixture).
    groups = np.repeat(np.arange(10), 4)
    y = np.repeat(np.arange(10) % 2 == 0, 4)
    low, high = group_interval(lambda rows: float(y[rows].mean()), groups)
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert np.isclose(low * 10, round(low * 10)) and np.isclose(high * 10, round(high * 10))


def _synthetic(n_answers: int, rng: np.random.Generator) -> ClaimRows:
    """Answers of 1-3 claims; value ~ U(0, 1) and a claim is supported with probability value."""
    sizes = rng.integers(1, 4, n_answers)
    groups = np.repeat([f"answer{i}" for i in range(n_answers)], sizes)
    value = rng.uniform(size=len(groups))
    return ClaimRows(groups, rng.uniform(size=len(groups)) < value, value, "synthetic")


def test_alpha_is_the_strictest_target_the_learning_rows_support() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=3000)
    assert choose_alpha(p, rng.uniform(size=3000) < p, n_threshold=1000, delta=0.1, seed=0) in ALPHAS[:3]
    assert choose_alpha(p, rng.uniform(size=3000) < 0.3, n_threshold=1000, delta=0.1, seed=0) is None


def test_a_fitted_claim_route_keeps_its_target_on_fresh_claims_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = _synthetic(1000, rng)
    fit = fit_route(rows, "claim_support", seed=0, delta=0.1, resamples=200)
    assert fit.stage is not None and fit.alpha is not None
    fresh = _synthetic(20_000, rng)
    p = fit.stage.probabilities(fresh.value[:, None])
    kept = p >= fit.stage.thresholds.hedge
    assert 0.05 < kept.mean() < 0.9
    assert 1 - fresh.supported[kept].mean() <= fit.alpha
    spec = SignalSpec("claim_support", "claim_support", "free", {"missing_penalty": 0.25})
    path = build_artifact(fit, rows, spec, seed=0, datasets={"synthetic": len(rows)}, metrics={}, notes=[]).save(
        tmp_path / "claims.json"
    )
    loaded = load_artifact(path)
    assert loaded.full.hedge == fit.stage.thresholds.hedge
    assert np.allclose(loaded.full.probabilities(fresh.value[:50, None]), p[:50])


def test_an_uninformative_signal_gives_no_stage() -> None:
    rng = np.random.default_rng(1)
    rows = _synthetic(600, rng)
    noise = ClaimRows(rows.group, rows.supported, rng.uniform(size=len(rows)), "noise")
    fit = fit_route(noise, "claim_consistency", seed=0, delta=0.1, resamples=200)
    assert fit.stage is None and not fit.info["informative"]


def test_the_results_section_goes_before_streaming_and_is_replaced_in_place(tmp_path: Path) -> None:
    results = tmp_path / "longform.md"
    results.write_text("# Long\n\n## Grounding\n\nold grounding\n\n## Streaming\n\nstream\n", encoding="utf-8")
    write_before("Calibrated claims", "first", before="Streaming", path=results)
    write_before("Calibrated claims", "second", before="Streaming", path=results)
    text = results.read_text(encoding="utf-8")
    assert text.index("## Grounding") < text.index("## Calibrated claims") < text.index("## Streaming")
    assert "second" in text and "first" not in text and text.count("## Calibrated claims") == 1
