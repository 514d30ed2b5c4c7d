"""Tests of calibration.metrics: against scikit-learn, hand-worked examples and hypothesis properties."""

from __future__ import annotations

import itertools
import json
import math
from functools import partial

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from calibration.bootstrap import bootstrap_interval as bootstrap_interval_direct
from calibration.metrics import (
    BrierDecomposition,
    Interval,
    accuracy,
    auprc_correct,
    auprc_error,
    aurc,
    auroc,
    bootstrap_interval,
    brier_decomposition,
    brier_score,
    e_aurc,
    ece,
    log_loss,
    mce,
    prr,
    reliability_curve,
    risk_coverage_curve,
    selective_accuracy,
    selective_risk,
    summarize,
)

SETTINGS = settings(max_examples=50, deadline=None)
# scikit-learn validates every call, so comparisons against it are slower per example.
SKLEARN_SETTINGS = settings(max_examples=30, deadline=None)

# Confidences on a coarse grid so that ties are frequent and monotone transforms stay strictly monotone in floats.
grid_conf = st.integers(0, 20).map(lambda k: k / 20)


@st.composite
def labelled(draw: st.DrawFn, *, min_size: int = 2, max_size: int = 60, both_classes: bool = False):
    """(y, c) of equal length; c on the coarse grid."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    c = np.array(draw(st.lists(grid_conf, min_size=n, max_size=n)))
    if both_classes:
        assume(0 < y.sum() < n)
    return y, c


@st.composite
def labelled_floats(draw: st.DrawFn, *, max_size: int = 60):
    """(y, c) with arbitrary confidences in [0, 1]."""
    n = draw(st.integers(1, max_size))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    c = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    return y, c


def _calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.uniform(size=n)
    return rng.uniform(size=n) < c, c


# ---------------------------------------------------------------- against scikit-learn


@SKLEARN_SETTINGS
@given(labelled(both_classes=True))
def test_auroc_matches_sklearn(data):
    y, c = data
    assert auroc(y, c) == pytest.approx(skm.roc_auc_score(y, c), abs=1e-12)


@SKLEARN_SETTINGS
@given(labelled(both_classes=True))
def test_auprc_matches_sklearn_for_correct_and_error(data):
    y, c = data
    assert auprc_correct(y, c) == pytest.approx(skm.average_precision_score(y, c), abs=1e-12)
    assert auprc_error(y, c) == pytest.approx(skm.average_precision_score(~y, -c), abs=1e-12)


@SKLEARN_SETTINGS
@given(labelled_floats())
def test_brier_matches_sklearn(data):
    y, c = data
    assert brier_score(y, c) == pytest.approx(skm.brier_score_loss(y, c, labels=[0, 1]), abs=1e-12)


@SKLEARN_SETTINGS
@given(labelled_floats())
def test_log_loss_matches_sklearn_away_from_clipping(data):
    y, c = data
    c = np.clip(c, 1e-6, 1 - 1e-6)
    assert log_loss(y, c) == pytest.approx(skm.log_loss(y, c, labels=[0, 1]), rel=1e-9)


def test_log_loss_is_lower_for_better_predictions():
    y = np.array([1, 1, 0, 0])
    good = np.array([0.9, 0.8, 0.2, 0.1])
    bad = np.array([0.6, 0.5, 0.5, 0.4])
    assert 0 < log_loss(y, good) < log_loss(y, bad)
    assert log_loss(y, bad) < log_loss(y, 1 - good)
    assert log_loss([1], [0.5]) == pytest.approx(math.log(2))


def test_log_loss_clips_certain_mistakes_to_a_finite_loss():
    assert log_loss([1, 0], [0.0, 1.0], eps=1e-12) == pytest.approx(-math.log(1e-12))


def test_reliability_curve_matches_sklearn_calibration_curve():
    y, c = _calibrated_sample(500, seed=3)
    for strategy in ("uniform", "quantile"):
        curve = reliability_curve(y, c, n_bins=7, strategy=strategy)
        prob_true, prob_pred = calibration_curve(y, c, n_bins=7, strategy=strategy)
        np.testing.assert_allclose(curve.accuracy, prob_true)
        np.testing.assert_allclose(curve.mean_confidence, prob_pred)
        assert curve.count.sum() == 500
        assert len(curve.edges) == 8


# ---------------------------------------------------------------- ranking metrics


def test_auroc_is_nan_for_one_class_and_known_values():
    assert math.isnan(auroc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(auroc([0, 0], [0.1, 0.5]))
    assert auroc([0, 1], [0.1, 0.9]) == 1.0
    assert auroc([0, 1], [0.9, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5


@SETTINGS
@given(
    labelled(both_classes=True),
    st.sampled_from([np.exp, np.log1p, lambda x: x**3, lambda x: 7 * x - 3, lambda x: -1 / (x + 1)]),
)
def test_auroc_invariant_under_strictly_increasing_transform(data, transform):
    y, c = data
    assert auroc(y, transform(c)) == pytest.approx(auroc(y, c), abs=1e-12)
    assert auroc(y, -c) == pytest.approx(1 - auroc(y, c), abs=1e-12)


def test_ranking_metrics_accept_any_real_scores():
    y = [1, 0, 1, 0]
    logprobs = [-0.1, -5.0, -np.inf, -2.0]
    assert auroc(y, logprobs) == 0.5
    assert 0 <= aurc(y, logprobs) <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece(y, logprobs)


def test_auprc_undefined_without_positives():
    assert math.isnan(auprc_correct([0, 0], [0.2, 0.3]))
    assert math.isnan(auprc_error([1, 1], [0.2, 0.3]))
    assert auprc_correct([1, 1], [0.2, 0.3]) == 1.0


def test_accuracy():
    assert accuracy([True, False, True, True]) == 0.75
    assert accuracy(np.array([0.0, 1.0])) == 0.5


# ---------------------------------------------------------------- calibration metrics


def test_ece_and_mce_worked_by_hand():
    y = [1, 0, 1, 0]
    c = [0.1, 0.3, 0.8, 0.9]
    # Two bins: [0, .5) holds 0.1, 0.3 (mean .2, accuracy .5, gap .3); [.5, 1] holds 0.8, 0.9 (mean .85, acc .5,
    # gap .35). ECE = .5 * .3 + .5 * .35 = .325, MCE = .35.
    assert ece(y, c, n_bins=2) == pytest.approx(0.325)
    assert mce(y, c, n_bins=2) == pytest.approx(0.35)
    # Ten bins: each row alone, gaps .9, .3, .2, .9.
    assert ece(y, c, n_bins=10) == pytest.approx(2.3 / 4)
    assert mce(y, c, n_bins=10) == pytest.approx(0.9)


def test_reliability_curve_drops_empty_bins_and_keeps_all_edges():
    curve = reliability_curve([1, 0, 1, 0], [0.15, 0.35, 0.85, 0.95], n_bins=10)
    np.testing.assert_array_equal(curve.count, [1, 1, 1, 1])
    np.testing.assert_allclose(curve.mean_confidence, [0.15, 0.35, 0.85, 0.95])
    np.testing.assert_array_equal(curve.accuracy, [1, 0, 1, 0])
    np.testing.assert_allclose(curve.edges, np.linspace(0, 1, 11))
    # The documented recipe recovers each kept row's bin.
    bins = np.searchsorted(curve.edges[1:-1], curve.mean_confidence, side="right")
    np.testing.assert_array_equal(bins, [1, 3, 8, 9])
    with pytest.raises(AttributeError):
        curve.count = np.array([0])  # frozen


def test_ece_small_for_perfectly_calibrated_sample():
    y, c = _calibrated_sample(20_000, seed=0)
    assert ece(y, c) < 0.03
    assert ece(y, c, strategy="quantile") < 0.03
    # The same sample made overconfident is clearly miscalibrated.
    assert ece(y, np.sqrt(c)) > 0.1


def test_ece_constant_confidence_is_gap_to_accuracy():
    assert ece([1, 1, 0, 0], [0.9] * 4, strategy="quantile") == pytest.approx(0.4)
    assert mce([1, 1, 0, 0], [0.9] * 4) == pytest.approx(0.4)


@SETTINGS
@given(labelled_floats(), st.integers(1, 20), st.sampled_from(["uniform", "quantile"]))
def test_ece_and_mce_lie_in_unit_interval(data, n_bins, strategy):
    y, c = data
    e = ece(y, c, n_bins=n_bins, strategy=strategy)
    m = mce(y, c, n_bins=n_bins, strategy=strategy)
    assert 0.0 <= e <= m + 1e-12 <= 1.0 + 1e-12


@SETTINGS
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.integers(0, 9), min_size=n, max_size=n),
        )
    )
)
def test_brier_decomposition_identity_when_confidence_constant_in_bins(data):
    y, bins = data
    c = (np.array(bins) + 0.5) / 10  # one value per equal-width bin, so confidence is constant within bins
    d = brier_decomposition(y, c, n_bins=10)
    assert isinstance(d, BrierDecomposition)
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(brier_score(y, c), abs=1e-12)
    assert d.reliability >= 0 and d.resolution >= 0 and 0 <= d.uncertainty <= 0.25


def test_brier_decomposition_values():
    d = brier_decomposition([1, 0, 1, 1], [0.75, 0.75, 0.25, 0.25], n_bins=2)
    # Bin [0, .5): conf .25, acc 1; bin [.5, 1]: conf .75, acc .5; base rate .75.
    assert d.reliability == pytest.approx((2 * 0.75**2 + 2 * 0.25**2) / 4)
    assert d.resolution == pytest.approx((2 * 0.25**2 + 2 * 0.25**2) / 4)
    assert d.uncertainty == pytest.approx(0.75 * 0.25)


# ---------------------------------------------------------------- selective prediction


def test_risk_coverage_worked_by_hand():
    y = [1, 0, 1, 0]
    c = [0.9, 0.8, 0.7, 0.6]
    curve = risk_coverage_curve(y, c)
    np.testing.assert_allclose(curve.coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.risk, [0, 1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.8, 0.7, 0.6])
    assert aurc(y, c) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    oracle = (0 + 0 + 1 / 3 + 1 / 2) / 4
    assert e_aurc(y, c) == pytest.approx(aurc(y, c) - oracle)
    assert prr(y, c) == pytest.approx((0.5 - aurc(y, c)) / (0.5 - oracle))


def test_risk_coverage_spreads_tied_errors_evenly():
    # Rows 2 and 3 tie at 0.5, one of them wrong: coverage 2/4 expects half an error.
    curve = risk_coverage_curve([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(curve.risk, [0, 0.25, 1 / 3, 0.5])
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.5, 0.5, 0.1])
    # The result does not depend on input order.
    again = risk_coverage_curve([0, 0, 1, 1], [0.5, 0.1, 0.5, 0.9])
    np.testing.assert_allclose(again.risk, curve.risk)


@settings(max_examples=30, deadline=None)
@given(labelled(min_size=1, max_size=6))
def test_risk_coverage_equals_average_over_tie_breaking_orders(data):
    y, c = data
    orders = [p for p in itertools.permutations(range(len(y))) if np.all(np.diff(c[list(p)]) <= 0)]
    risks = [np.cumsum(~y[list(p)]) / np.arange(1, len(y) + 1) for p in orders]
    np.testing.assert_allclose(risk_coverage_curve(y, c).risk, np.mean(risks, axis=0), atol=1e-12)


@SETTINGS
@given(labelled(min_size=1))
def test_aurc_at_least_oracle(data):
    y, c = data
    assert e_aurc(y, c) >= -1e-12
    assert 0.0 <= aurc(y, c) <= 1.0
    # Ranking by the truth itself is the oracle.
    assert e_aurc(y, y.astype(float)) == pytest.approx(0.0, abs=1e-12)


def test_prr_oracle_random_and_undefined():
    rng = np.random.default_rng(1)
    y = rng.uniform(size=200) < 0.6
    assert prr(y, y.astype(float) + rng.uniform(0, 0.5, size=200)) == pytest.approx(1.0)
    assert prr(y, np.full(200, 0.3)) == pytest.approx(0.0, abs=1e-12)
    assert prr(y, -y.astype(float)) < -0.9
    random_prrs = [prr(y, rng.uniform(size=200)) for _ in range(300)]
    assert abs(np.mean(random_prrs)) < 0.03
    assert math.isnan(prr([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(prr([0, 0], [0.1, 0.2]))


def test_selective_accuracy_and_risk():
    y = [1, 1, 0, 1, 0, 0, 1, 0, 0, 0]
    c = np.linspace(1, 0.1, 10)
    assert selective_accuracy(y, c, coverage=0.2) == 1.0
    # ceil(0.3 * 10) is 3 despite 0.3 * 10 == 3.0000000000000004 in floats.
    assert selective_accuracy(y, c, coverage=0.3) == pytest.approx(2 / 3)
    assert selective_accuracy(y, c, coverage=0.35) == pytest.approx(3 / 4)
    assert selective_risk(y, c, coverage=1.0) == pytest.approx(0.6)
    assert selective_risk(y, c, coverage=0.01) == 0.0  # at least one answer is given
    for cov in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="coverage"):
            selective_risk(y, c, coverage=cov)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_value_and_is_reproducible():
    y, c = _calibrated_sample(300, seed=5)
    iv = bootstrap_interval(auroc, y, c, n_resamples=300, seed=7)
    assert isinstance(iv, Interval)
    assert iv.value == auroc(y, c)
    assert iv.low < iv.value < iv.high
    assert iv.high - iv.low < 0.3
    assert bootstrap_interval(auroc, y, c, n_resamples=300, seed=7) == iv
    assert bootstrap_interval(auroc, y, c, n_resamples=300, seed=8) != iv
    assert bootstrap_interval_direct is bootstrap_interval


def test_bootstrap_interval_narrows_with_confidence_level_and_takes_partial():
    y, c = _calibrated_sample(300, seed=6)
    metric = partial(ece, n_bins=5, strategy="quantile")
    wide = bootstrap_interval(metric, y, c, n_resamples=200, confidence_level=0.95)
    narrow = bootstrap_interval(metric, y, c, n_resamples=200, confidence_level=0.5)
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    assert wide.value == ece(y, c, n_bins=5, strategy="quantile")


def test_bootstrap_drops_nan_resamples_and_gives_up_below_half():
    # One wrong answer in 20: about 36 % of resamples miss it and AUROC is NaN there; the rest suffice.
    y = np.r_[np.zeros(1), np.ones(19)]
    c = np.linspace(0, 1, 20)
    iv = bootstrap_interval(auroc, y, c, n_resamples=200)
    assert iv.value == 1.0 and iv.low == 1.0 and iv.high == 1.0

    calls = []

    def defined_only_on_first_call(yy, cc):
        calls.append(len(yy))
        return float(yy.mean()) if len(calls) == 1 else float("nan")

    iv = bootstrap_interval(defined_only_on_first_call, y, c, n_resamples=200)
    assert len(calls) == 201
    assert iv.value == 0.95 and math.isnan(iv.low) and math.isnan(iv.high)


def test_bootstrap_validates_options():
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval(auroc, [0, 1], [0.1, 0.2], n_resamples=0)
    with pytest.raises(ValueError, match="confidence_level"):
        bootstrap_interval(auroc, [0, 1], [0.1, 0.2], confidence_level=95)
    with pytest.raises(ValueError, match=r"one label per confidence score \(3\); got shape \(2,\)"):
        bootstrap_interval(auroc, [0, 1], [0.1, 0.2, 0.3])


# ---------------------------------------------------------------- summary


def test_summarize_reports_every_metric_as_json_floats():
    y, c = _calibrated_sample(200, seed=2)
    summary = summarize(y, c, n_resamples=50, coverages=(0.25, 0.5, 0.75, 0.333))
    expected = {
        "n",
        "accuracy",
        "auroc",
        "auprc_correct",
        "auprc_error",
        "ece",
        "ece_quantile",
        "mce",
        "brier",
        "log_loss",
        "aurc",
        "e_aurc",
        "prr",
        "selective_accuracy@25",
        "selective_accuracy@50",
        "selective_accuracy@75",
        "selective_accuracy@33.3",
    }
    assert set(summary) == expected
    for entry in summary.values():
        assert set(entry) == {"value", "low", "high"}
        assert all(type(v) is float for v in entry.values())
    assert summary["n"] == {"value": 200.0, "low": 200.0, "high": 200.0}
    assert summary["auroc"]["value"] == auroc(y, c)
    assert summary["ece_quantile"]["value"] == ece(y, c, strategy="quantile")
    assert summary["selective_accuracy@50"]["value"] == selective_accuracy(y, c, coverage=0.5)
    assert summary["auroc"]["low"] <= summary["auroc"]["value"] <= summary["auroc"]["high"]
    assert json.loads(json.dumps(summary)) == summary


def test_summarize_keeps_undefined_metrics_as_nan():
    summary = summarize([1, 1, 1, 1], [0.9, 0.8, 0.7, 0.95], n_resamples=20)
    assert math.isnan(summary["auroc"]["value"]) and math.isnan(summary["prr"]["low"])
    assert summary["accuracy"]["value"] == 1.0
    assert "NaN" in json.dumps(summary)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("y", "c", "match"),
    [
        ([1, 0, 1], [0.1, 0.2], r"one label per confidence score \(2\); got shape \(3,\)"),
        ([1, 0], [0.1, np.nan], r"1 NaN"),
        ([], [], r"empty"),
        ([1, 0, 2], [0.1, 0.2, 0.3], r"0/1 or False/True .*; got values .*2"),
        (["a", "b"], [0.1, 0.2], r"0/1 or False/True"),
        ([[1, 0]], [[0.1, 0.2]], r"1-D.*\(1, 2\)"),
        ([1, 0], ["x", "y"], r"real numbers"),
        ([1, 0], [0.5, 1.2], r"\[0, 1\].*\[0.5, 1.2\]"),
        ([1, 0], [-0.1, 0.5], r"\[0, 1\]"),
    ],
)
def test_calibration_metrics_reject_bad_input(y, c, match):
    with pytest.raises(ValueError, match=match):
        ece(y, c)


def test_ranking_metrics_reject_nan_and_length_mismatch_but_not_range():
    with pytest.raises(ValueError, match="NaN"):
        auroc([1, 0], [np.nan, 0.1])
    with pytest.raises(ValueError, match=r"one label per confidence score \(1\)"):
        aurc([1, 0], [0.1])
    with pytest.raises(ValueError, match="empty"):
        accuracy([])
    assert prr([1, 0], [5.0, -3.0]) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_bins": 0}, "n_bins"), ({"n_bins": 2.5}, "n_bins"), ({"strategy": "equal"}, r"uniform.*quantile")],
)
def test_binning_options_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        reliability_curve([1, 0], [0.2, 0.7], **kwargs)


def test_log_loss_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        log_loss([1, 0], [0.2, 0.7], eps=0.0)
