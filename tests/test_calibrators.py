"""Calibrators: recovery of known parameters, agreement with scikit-learn, persistence, refusals."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss

from calibration.calibrators import (
    CALIBRATORS,
    ORDER_PRESERVING,
    HistogramCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    best_calibrator_kind,
    best_of,
    calibrator_from_dict,
    compare_calibrators,
    make_calibrator,
)

KINDS = sorted(CALIBRATORS)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that already are calibrated probabilities: y ~ Bernoulli(score)."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.02, 0.98, size=n)
    return scores, (rng.uniform(size=n) < scores).astype(int)


def _only_json_types(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_json_types(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_isotonic_matches_sklearn_and_is_monotone() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=400)
    y = (rng.uniform(size=400) < _sigmoid(1.5 * scores)).astype(int)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, y)
    calibrator = IsotonicCalibrator().fit(scores, y)

    queries = np.concatenate([scores, np.linspace(-6, 6, 501)])  # includes points beyond both ends
    np.testing.assert_allclose(calibrator.predict(queries), reference.predict(queries), rtol=0, atol=1e-12)
    grid_predictions = calibrator.predict(np.linspace(-6, 6, 501))
    assert np.all(np.diff(grid_predictions) >= 0)
    assert calibrator.predict([-100.0])[0] == calibrator.y_knots_[0]  # clipped, not extrapolated


def test_platt_recovers_known_slope_and_intercept() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(0.0, 1.5, size=20_000)
    y = (rng.uniform(size=scores.size) < _sigmoid(2.0 * scores - 0.5)).astype(int)
    calibrator = PlattCalibrator().fit(scores, y)
    assert calibrator.a_ == pytest.approx(2.0, abs=0.1)
    assert calibrator.b_ == pytest.approx(-0.5, abs=0.06)

    # Internal standardisation: the same data on a 100x scale gives the same fit, slope divided by 100.
    rescaled = PlattCalibrator().fit(100.0 * scores, y)
    assert rescaled.a_ == pytest.approx(calibrator.a_ / 100.0, rel=1e-4)
    np.testing.assert_allclose(rescaled.predict(100.0 * scores), calibrator.predict(scores), atol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_recovers_known_temperature(temperature: float) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, size=20_000)
    y = (rng.uniform(size=logits.size) < _sigmoid(logits / temperature)).astype(int)
    calibrator = TemperatureCalibrator().fit(_sigmoid(logits), y)
    assert calibrator.temperature_ == pytest.approx(temperature, rel=0.06)


def test_temperature_clips_extreme_scores_and_refuses_non_probabilities() -> None:
    scores = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    calibrator = TemperatureCalibrator().fit(scores, [0, 0, 1, 0, 1, 1])
    predictions = calibrator.predict([0.0, 1.0])
    assert np.all(np.isfinite(predictions))
    assert 0.0 < predictions[0] < 0.5 < predictions[1] < 1.0
    with pytest.raises(ValueError, match=r"scores must be probabilities in \[0, 1\]; got range \[-0.5, 0.5\]"):
        TemperatureCalibrator().fit([-0.5, 0.5], [0, 1])
    with pytest.raises(ValueError, match="scores must be probabilities in"):
        calibrator.predict([1.2])


def test_histogram_bins_are_equal_mass_and_sparse_bins_are_smoothed() -> None:
    scores, y = _calibrated_sample(1000, seed=4)
    calibrator = HistogramCalibrator(n_bins=10).fit(scores, y)
    counts = np.bincount(np.searchsorted(calibrator.bin_edges_[1:-1], scores, side="right"), minlength=10)
    assert counts.min() >= 99 and counts.max() <= 101  # equal mass
    predictions = calibrator.predict(np.linspace(-1, 2, 301))
    assert np.all((predictions >= 0) & (predictions <= 1))

    # One row per bin: the prior keeps every bin strictly between 0 and 1, pulled towards the base rate.
    tiny = HistogramCalibrator(n_bins=4).fit([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    assert np.all((tiny.bin_values_ > 0) & (tiny.bin_values_ < 1))
    assert tiny.bin_values_[0] == pytest.approx((0 + 2 * 0.5) / (1 + 2))

    # All scores equal: a single bin predicting the smoothed base rate for any score.
    flat = HistogramCalibrator().fit([0.5] * 4, [1, 1, 1, 0])
    assert flat.bin_values_.size == 1
    np.testing.assert_allclose(flat.predict([0.0, 0.5, 1.0]), (3 + 2 * 0.75) / (4 + 2))


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_predicts_identically(kind: str) -> None:
    scores, y = _calibrated_sample(300, seed=5)
    calibrator = make_calibrator(kind).fit(scores, y)
    saved = calibrator.to_dict()
    assert saved["kind"] == kind
    assert _only_json_types(saved)
    loaded = json.loads(json.dumps(saved, allow_nan=False))

    queries = np.concatenate([scores, np.linspace(0, 1, 257)])
    for restored in (calibrator_from_dict(loaded), CALIBRATORS[kind].from_dict(loaded)):
        assert type(restored) is type(calibrator)
        assert np.array_equal(restored.predict(queries), calibrator.predict(queries))
        assert restored.to_dict() == saved


def _saved(kind: str) -> dict[str, Any]:
    scores, y = _calibrated_sample(200, seed=6)
    return json.loads(json.dumps(make_calibrator(kind).fit(scores, y).to_dict()))


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("isotonic", {"kind": "platt"}, "needs kind 'isotonic'; got 'platt'"),
        ("isotonic", {"format_version": 99}, "unsupported format_version 99"),
        ("isotonic", {"x": None}, "'x' must be a non-empty list of finite numbers; got None"),
        ("isotonic", {"x": [0.2, 0.1], "y": [0.1, 0.2]}, "strictly increasing 'x'"),
        ("isotonic", {"x": [0.1, 0.2], "y": [0.9, 0.2]}, "non-decreasing 'y'"),
        ("isotonic", {"x": [0.1, 0.2], "y": [0.2]}, "same length; got 2 and 1"),
        ("isotonic", {"y": [1.5]}, r"'y' must be a non-empty list of numbers in \[0, 1\]; got length 1: \[1.5\]"),
        ("isotonic", {"n_samples": True}, "n_samples must be an integer >= 2"),
        ("platt", {"a": float("nan")}, "'a' must be a finite number"),
        ("platt", {"b": "1.0"}, "'b' must be a finite number"),
        ("platt", {"params": {"C": 1.0}}, r"exactly the keys \[\]; got \['C'\]"),
        ("temperature", {"temperature": 0.0}, r"'temperature' must be a number in \[0.01, 100\]; got 0.0"),
        ("temperature", {"params": {"eps": 0.7}}, r"eps must be a number in \(0, 0.5\)"),
        ("histogram", {"values": [0.5]}, "one entry per bin"),
        ("histogram", {"edges": [0.5, 0.1, 0.9]}, "non-decreasing"),
        ("histogram", {"params": {"n_bins": 0, "prior_strength": 2.0}}, "n_bins must be a positive integer"),
    ],
)
def test_from_dict_refuses_invalid_data(kind: str, change: dict[str, Any], message: str) -> None:
    data = {**_saved(kind), **change}
    with pytest.raises(ValueError, match=message):
        CALIBRATORS[kind].from_dict(data)


def test_from_dict_dispatch_refusals() -> None:
    with pytest.raises(ValueError, match=r"unknown calibrator kind 'beta'; valid: \['histogram', 'isotonic'"):
        calibrator_from_dict({"kind": "beta"})
    with pytest.raises(ValueError, match="must be a mapping; got list"):
        calibrator_from_dict([("kind", "platt")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown calibrator kind None"):
        calibrator_from_dict({})


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_calibrator_refuses_to_predict_or_save(kind: str) -> None:
    calibrator = make_calibrator(kind)
    with pytest.raises(NotFittedError):
        calibrator.predict([0.5])
    with pytest.raises(NotFittedError):
        calibrator.to_dict()


@pytest.mark.parametrize(
    ("scores", "y", "message"),
    [
        ([0.2, 0.8], [1, 1], "one correct .1. and one incorrect .0. row; got 2 correct and 0 incorrect"),
        ([0.5], [1], "at least 2 rows; got 1"),
        ([0.1, 0.2, 0.3], [0, 1], r"one label per score \(3\); got shape \(2,\)"),
        ([0.1, float("nan")], [0, 1], r"scores must be finite; got 1 NaN value\(s\) among 2"),
        ([0.1, 0.2], [0, 2], r"binary: 0/1 or False/True \(1 = correct\); got values \['0', '2'\]"),
        ([[0.1, 0.2]], [0, 1], r"1-D and non-empty; got shape \(1, 2\)"),
    ],
)
def test_fit_refuses_invalid_data(scores: Any, y: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlattCalibrator().fit(scores, y)


def test_registry_and_factory() -> None:
    assert set(CALIBRATORS) == {"isotonic", "platt", "temperature", "histogram"}
    assert make_calibrator("histogram", n_bins=5).n_bins == 5
    with pytest.raises(ValueError, match=r"unknown calibrator kind 'sigmoid'; valid: \["):
        make_calibrator("sigmoid")
    with pytest.raises(ValueError, match=r"n_bins must be a positive integer; got 2\.5"):
        make_calibrator("histogram", n_bins=2.5).fit([0.1, 0.9], [0, 1])


def test_boolean_labels_fit_like_integers() -> None:
    scores, y = _calibrated_sample(200, seed=7)
    by_int = IsotonicCalibrator().fit(scores, y).predict(scores)
    by_bool = IsotonicCalibrator().fit(scores, y.astype(bool)).predict(scores)
    assert np.array_equal(by_int, by_bool)


def test_compare_calibrators_scores_every_kind_on_held_out_folds() -> None:
    rng = np.random.default_rng(8)
    logits = rng.normal(0, 2, size=1500)
    y = (rng.uniform(size=logits.size) < _sigmoid(logits / 3.0)).astype(int)
    scores = _sigmoid(logits)  # over-confident: the true temperature is 3
    losses = compare_calibrators(scores, y)
    assert list(losses) == ["isotonic", "platt", "temperature", "histogram"]
    assert all(math.isfinite(loss) for loss in losses.values())
    # Every calibrator must beat the raw, over-confident scores on held-out data.
    assert max(losses.values()) < log_loss(y, scores)
    best = best_calibrator_kind(scores, y)
    assert losses[best] == min(losses.values())
    assert compare_calibrators(scores, y, seed=1) != losses  # the seed drives the folds


def test_best_of_can_be_limited_to_the_order_preserving_kinds() -> None:
    losses = {"isotonic": 0.20, "platt": 0.25, "temperature": 0.24, "histogram": math.nan}
    assert best_of(losses) == "isotonic"
    assert best_of(losses, among=ORDER_PRESERVING) == "temperature"
    with pytest.raises(ValueError, match=r"no calibrator among \['platt', 'temperature'\] could be cross-validated"):
        best_of({"isotonic": 0.2, "platt": math.nan, "temperature": math.nan}, among=ORDER_PRESERVING)


def test_compare_calibrators_degrades_instead_of_failing() -> None:
    rng = np.random.default_rng(9)
    raw = rng.normal(size=200)  # not probabilities: temperature scaling cannot use them
    y = (rng.uniform(size=200) < _sigmoid(raw)).astype(int)
    losses = compare_calibrators(raw, y, kinds=("platt", "temperature"))
    assert math.isfinite(losses["platt"]) and math.isnan(losses["temperature"])
    assert best_calibrator_kind(raw, y, kinds=("platt", "temperature")) == "platt"

    # Three wrong rows: three folds instead of five; a single wrong row: nothing to hold out.
    three = np.r_[np.ones(47, dtype=int), np.zeros(3, dtype=int)]
    assert math.isfinite(compare_calibrators(np.linspace(0, 1, 50), three, kinds=("platt",))["platt"])
    one = np.r_[np.ones(49, dtype=int), 0]
    assert math.isnan(compare_calibrators(np.linspace(0, 1, 50), one)["isotonic"])
    with pytest.raises(ValueError, match="no calibrator could be cross-validated"):
        best_calibrator_kind(np.linspace(0, 1, 50), one)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2; got 1"):
        compare_calibrators(raw, y, n_splits=1)


@pytest.mark.parametrize("kind", ["temperature", "platt", "histogram"])
def test_already_calibrated_scores_keep_their_log_loss(kind: str) -> None:
    scores, y = _calibrated_sample(5000, seed=10)
    fresh_scores, fresh_y = _calibrated_sample(5000, seed=11)
    calibrator = make_calibrator(kind).fit(scores, y)
    raw_loss = log_loss(fresh_y, fresh_scores)
    assert log_loss(fresh_y, calibrator.predict(fresh_scores)) == pytest.approx(raw_loss, abs=0.01)
    if kind == "temperature":
        assert calibrator.temperature_ == pytest.approx(1.0, abs=0.1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e3, 1e3), st.booleans()), min_size=2, max_size=60).filter(
        lambda rows: len({label for _, label in rows}) == 2
    ),
    st.sampled_from(["isotonic", "platt", "histogram"]),
)
def test_predictions_are_probabilities_and_isotonic_is_monotone(rows: list[tuple[float, bool]], kind: str) -> None:
    scores = np.array([s for s, _ in rows])
    y = np.array([label for _, label in rows])
    calibrator = make_calibrator(kind).fit(scores, y)
    queries = np.sort(np.concatenate([scores, np.linspace(-2e3, 2e3, 41)]))
    predictions = calibrator.predict(queries)
    assert predictions.shape == queries.shape
    assert np.all((predictions >= 0) & (predictions <= 1))
    if kind in ("isotonic", "platt"):
        direction = 1 if kind == "isotonic" or calibrator.a_ >= 0 else -1
        assert np.all(direction * np.diff(predictions) >= -1e-12)
