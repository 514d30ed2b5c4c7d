"""Tests for calibration.fusion: the three fusions, their JSON persistence, and the exported trees."""

from __future__ import annotations

import copy
import doctest
import functools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from calibration import _tree_export, fusion, fusion_boosted, fusion_logistic, fusion_weighted
from calibration._tree_export import export_trees, predict_raw
from calibration.fusion import (
    FUSIONS,
    BoostedFusion,
    LogisticFusion,
    WeightedMeanFusion,
    coefficients_table,
    fusion_from_dict,
    make_fusion,
)

NAMES = ["informative", "noise"]
KINDS = ["logistic", "boosted", "weighted_mean"]
NAN = np.nan


def _signals(seed: int = 0, n: int = 600, missing: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Column 0 drives P(correct) through a steep logistic curve, column 1 is noise; some entries NaN."""
    rng = np.random.default_rng(seed)
    informative, noise = rng.random(n), rng.random(n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-8.0 * (informative - 0.5)))).astype(int)
    x = np.column_stack([informative, noise])
    x[rng.random(x.shape) < missing] = NAN
    return x, y


def _probe_rows() -> np.ndarray:
    """Every missingness pattern of two signals, plus fresh random rows with NaN."""
    patterns = np.array([[0.9, 0.1], [0.1, 0.9], [NAN, 0.5], [0.5, NAN], [NAN, NAN], [0.0, 1.0], [1.0, 0.0]])
    fresh, _ = _signals(seed=7, n=200, missing=0.3)
    return np.vstack([patterns, fresh])


@functools.cache
def _fitted(kind: str) -> Any:
    # Cached rather than a fixture so hypothesis tests can use it; tests must not mutate the result.
    x, y = _signals()
    return make_fusion(kind).fit(x, y, feature_names=NAMES)


def _fit_sklearn_hgb(x: np.ndarray, y: np.ndarray, **params: Any) -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=0, **params)
    with threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(x, y)


# --- the common contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fit_returns_self_and_records_the_signals(kind: str) -> None:
    x, y = _signals(n=100)
    model = make_fusion(kind)
    assert model.fit(x, y, feature_names=NAMES) is model
    assert model.n_features_in_ == 2
    assert list(model.feature_names_in_) == NAMES


@pytest.mark.parametrize("kind", KINDS)
def test_refit_without_names_forgets_the_old_names(kind: str) -> None:
    x, y = _signals(n=100)
    model = make_fusion(kind).fit(x, y, feature_names=NAMES).fit(x, y)
    assert not hasattr(model, "feature_names_in_")
    assert model.to_dict()["feature_names"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_model_raises_not_fitted(kind: str) -> None:
    model = make_fusion(kind)
    with pytest.raises(NotFittedError):
        model.predict_proba([[0.5, 0.5]])
    with pytest.raises(NotFittedError):
        model.to_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_are_probabilities_for_every_missing_pattern(kind: str) -> None:
    model = _fitted(kind)
    rows = _probe_rows()
    proba = model.predict_proba(rows)
    assert proba.shape == (len(rows), 2)
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_array_equal(model.predict_score(rows), proba[:, 1])


def _partial_dependence(model: Any, column: int, grid: np.ndarray) -> np.ndarray:
    """Mean score over the training rows with one signal set to each grid value (the others as observed)."""
    x, _ = _signals()
    curve = []
    for value in grid:
        rows = x.copy()
        rows[:, column] = value
        curve.append(model.predict_score(rows).mean())
    return np.array(curve)


@pytest.mark.parametrize("kind", ["logistic", "boosted"])
def test_score_rises_with_the_informative_signal_and_ignores_the_noise(kind: str) -> None:
    model = _fitted(kind)
    grid = np.linspace(0.05, 0.95, 10)
    informative = _partial_dependence(model, 0, grid)
    noise = _partial_dependence(model, 1, grid)
    assert informative[-1] - informative[0] > 0.5
    # Boosted trees fit some noise on 600 rows; the informative effect must still be several times larger.
    assert np.ptp(noise) < 0.3 * np.ptp(informative)


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_predicts_identically(kind: str) -> None:
    model = _fitted(kind)
    saved = model.to_dict()
    # allow_nan=False: the dict must be strict JSON (no NaN or Infinity tokens).
    loaded = fusion_from_dict(json.loads(json.dumps(saved, allow_nan=False)))
    assert type(loaded) is type(model)
    assert list(loaded.feature_names_in_) == NAMES
    rows = _probe_rows()
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    assert loaded.to_dict() == saved
    assert type(model).from_dict(saved).get_params() == model.get_params()


@pytest.mark.parametrize("kind", KINDS)
def test_registry_builds_each_kind_with_its_parameters(kind: str) -> None:
    assert FUSIONS[kind].kind == kind
    model = make_fusion(kind)
    assert isinstance(model, FUSIONS[kind])
    assert make_fusion("logistic", C=0.25).C == 0.25
    assert make_fusion("boosted", max_iter=7).max_iter == 7


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'forest'") as info:
        make_fusion("forest")
    assert all(kind in str(info.value) for kind in KINDS)
    with pytest.raises(ValueError, match="boosted"):
        fusion_from_dict({"kind": "forest"})


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="learning_rate") as info:
        make_fusion("boosted", n_estimators=5)
    assert "n_estimators" in str(info.value)


# --- input validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logistic", "boosted"])
@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (
            [[0.1, 0.2], [0.3, 0.4]],
            [1, 1],
            r"at least one correct \(1\) and one incorrect \(0\) row; got 2 correct",
        ),
        ([[0.1, 0.2], [0.3, 0.4]], [1, 0, 1], r"one label per row of X \(2\); got shape \(3,\)"),
        ([0.1, 0.2, 0.3], [1, 0, 1], r"X must be 2-D.*got shape \(3,\)"),
        ([[0.1, 0.2], [0.3, 0.4]], [2, 0], r"y must be binary.*got values \['0', '2'\]"),
        ([[0.1, 0.2], [0.3, 0.4]], ["yes", "no"], "y must be binary"),
        ([[0.1, 0.2], [0.3, 0.4]], [1, NAN], "y must be binary"),
        ([[0.1, np.inf], [0.3, 0.4]], [1, 0], r"X must be finite or NaN \(missing\); got 1 infinite value"),
        ([["a", 0.2], [0.3, 0.4]], [1, 0], "X must be a 2-D array of real numbers; got list"),
    ],
)
def test_fit_refuses_invalid_data(kind: str, x: Any, y: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_fusion(kind).fit(x, y)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_a_different_number_of_signals(kind: str) -> None:
    with pytest.raises(ValueError, match=r"3 signals per row.*fitted with 2 \(informative, noise\)"):
        _fitted(kind).predict_proba([[0.1, 0.2, 0.3]])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("names", "message"),
    [(["a"], "2 non-empty strings"), (["a", "a"], "unique"), ("ab", "sequence of strings"), (["a", ""], "non-empty")],
)
def test_fit_refuses_bad_feature_names(kind: str, names: Any, message: str) -> None:
    x, y = _signals(n=50)
    with pytest.raises(ValueError, match=message):
        make_fusion(kind).fit(x, y, feature_names=names)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0.0}, "C must be a finite number > 0"),
        ({"C": "1"}, "C must be a finite number > 0; got '1'"),
        ({"missing_indicators": "yes"}, "missing_indicators must be True or False"),
        ({"class_weight": {0: 1.0, 2: 1.0}}, "class_weight must be None, 'balanced'"),
        ({"class_weight": {0: -1.0}}, r"class_weight\[0\] must be a finite number > 0; got -1.0"),
    ],
)
def test_logistic_refuses_bad_parameters(params: dict[str, Any], message: str) -> None:
    x, y = _signals(n=50)
    with pytest.raises(ValueError, match=message):
        LogisticFusion(**params).fit(x, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_iter": 0}, "max_iter must be a positive integer; got 0"),
        ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0"),
        ({"max_depth": 2.5}, "max_depth must be a positive integer or None; got 2.5"),
        ({"random_state": np.random.RandomState(0)}, "random_state must be an integer"),
    ],
)
def test_boosted_refuses_bad_parameters(params: dict[str, Any], message: str) -> None:
    x, y = _signals(n=50)
    with pytest.raises(ValueError, match=message):
        BoostedFusion(**params).fit(x, y)


def test_bool_labels_fit_the_same_model_as_int_labels() -> None:
    x, y = _signals(n=200)
    as_int = LogisticFusion().fit(x, y)
    as_bool = LogisticFusion().fit(x, y.astype(bool))
    np.testing.assert_array_equal(as_bool.coef_, as_int.coef_)


# --- LogisticFusion ------------------------------------------------------------------------------------


def test_logistic_informative_signal_gets_the_larger_positive_coefficient() -> None:
    table = dict(coefficients_table(_fitted("logistic")))
    assert list(table) == ["informative", "noise", "informative_missing", "noise_missing"]
    assert table["informative"] > 0
    assert abs(table["informative"]) > 5 * abs(table["noise"])


def test_logistic_fit_lowers_log_loss_below_the_constant_predictor() -> None:
    # Guards the objective's sign: a flipped log-loss would fit a model worse than the base rate.
    x, y = _signals()
    model = _fitted("logistic")
    fused = log_loss(y, model.predict_score(x))
    constant = log_loss(y, np.full(len(y), y.mean()))
    assert fused < 0.8 * constant


@pytest.mark.parametrize(
    "params",
    [{}, {"C": 0.05, "class_weight": "balanced"}, {"missing_indicators": False}, {"class_weight": {0: 3.0, 1: 1.0}}],
)
def test_logistic_numpy_predict_equals_sklearn_on_the_same_design(params: dict[str, Any]) -> None:
    x, y = _signals(seed=3)
    model = LogisticFusion(**params).fit(x, y)
    indicators = params.get("missing_indicators", True)

    def design(rows: np.ndarray) -> np.ndarray:
        # Built independently of fusion.py: training means over observed values, indicators after the signals.
        means = np.nanmean(x, axis=0)
        imputed = np.where(np.isnan(rows), means, rows)
        return np.hstack([imputed, np.isnan(rows).astype(float)]) if indicators else imputed

    scaler = StandardScaler().fit(design(x))
    reference = LogisticRegression(C=params.get("C", 1.0), class_weight=params.get("class_weight"), max_iter=1000)
    reference.fit(scaler.transform(design(x)), y)
    rows = _probe_rows()
    np.testing.assert_allclose(model.coef_, reference.coef_[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        model.predict_proba(rows), reference.predict_proba(scaler.transform(design(rows))), rtol=0, atol=1e-12
    )


def test_logistic_signal_missing_only_at_serving_counts_as_its_training_mean() -> None:
    x, y = _signals(seed=4)
    x[:, 1] = np.random.default_rng(4).random(len(x))  # the noise signal is never missing in training
    model = LogisticFusion().fit(x, y, feature_names=NAMES)
    assert dict(coefficients_table(model))["noise_missing"] == 0.0
    rows = np.array([[0.2, NAN], [0.8, NAN]])
    at_mean = np.array([[0.2, model.impute_values_[1]], [0.8, model.impute_values_[1]]])
    np.testing.assert_allclose(model.predict_score(rows), model.predict_score(at_mean), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["logistic", "boosted"])
def test_signal_never_observed_in_training_is_handled(kind: str) -> None:
    x, y = _signals(seed=5)
    x[:, 1] = NAN
    model = make_fusion(kind).fit(x, y)
    score = model.predict_score([[0.9, 0.3], [0.9, NAN], [0.1, NAN]])
    assert np.isfinite(score).all()
    assert score[1] > score[2]
    if kind == "logistic":
        assert model.impute_values_[1] == 0.5


def test_logistic_without_indicators_has_one_column_per_signal() -> None:
    x, y = _signals(n=200)
    model = LogisticFusion(missing_indicators=False).fit(x, y, feature_names=NAMES)
    assert [name for name, _ in coefficients_table(model)] == NAMES
    assert len(model.to_dict()["coef"]) == 2


def test_class_weight_dict_survives_json() -> None:
    x, y = _signals(n=200)
    model = LogisticFusion(class_weight={0: 3.0, 1: 1.0}).fit(x, y)
    loaded = fusion_from_dict(json.loads(json.dumps(model.to_dict())))
    assert loaded.class_weight == {0: 3.0, 1: 1.0}
    np.testing.assert_array_equal(loaded.predict_score(_probe_rows()), model.predict_score(_probe_rows()))


def test_coefficients_table_needs_a_logistic_fusion() -> None:
    with pytest.raises(TypeError, match="got BoostedFusion"):
        coefficients_table(_fitted("boosted"))
    with pytest.raises(NotFittedError):
        coefficients_table(LogisticFusion())


# --- BoostedFusion and the tree export -----------------------------------------------------------------


def _missingness_data() -> tuple[np.ndarray, np.ndarray]:
    """Signal 1 is 0.7 when present and missing for 30% of rows, which are always wrong.

    With one observed value, the only split on signal 1 is scikit-learn's "split on missing" (threshold
    +inf), so that layout is always exercised; signal 0, missing for 10%, gives ordinary splits.
    """
    x, y = _signals(seed=1, missing=0.1)
    gone = np.random.default_rng(1).random(len(x)) < 0.3
    x[:, 1] = np.where(gone, NAN, 0.7)
    return x, np.where(gone, 0, y)


def test_exported_trees_reproduce_sklearn_to_1e_10_on_rows_with_nan() -> None:
    x, y = _missingness_data()
    model = _fit_sklearn_hgb(x, y, max_iter=60, max_depth=4, min_samples_leaf=5)
    baseline, trees = export_trees(model)
    # The "split on missing" layout (threshold +inf) must be among what is checked.
    splits = [(tree.threshold[~tree.is_leaf], tree.missing_left[~tree.is_leaf]) for tree in trees]
    assert any(np.isinf(threshold).any() for threshold, _ in splits)
    assert any(left.any() for _, left in splits) and not all(left.all() for _, left in splits)
    # Rows exactly at split thresholds check that a value equal to the threshold goes left (<=, not <).
    at_thresholds = np.unique(np.concatenate([t.threshold[~t.is_leaf & (t.feature == 0)] for t in trees]))
    on_split = np.column_stack([at_thresholds, np.full(at_thresholds.size, 0.7)])
    rows = np.vstack([_probe_rows(), on_split, np.where(np.arange(2) == 1, NAN, on_split)])
    assert np.isnan(rows).any(axis=1).sum() > 50
    assert at_thresholds.size > 10
    ours = 1.0 / (1.0 + np.exp(-predict_raw(rows, trees, baseline)))
    np.testing.assert_allclose(ours, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(predict_raw(rows, trees, baseline), model._raw_predict(rows).ravel(), rtol=0, atol=1e-12)


def test_boosted_fusion_predicts_like_the_sklearn_model_it_fits() -> None:
    x, y = _missingness_data()
    model = BoostedFusion(max_iter=40).fit(x, y)
    reference = _fit_sklearn_hgb(x, y, max_iter=40, max_depth=3, min_samples_leaf=10)
    rows = _probe_rows()
    np.testing.assert_allclose(model.predict_proba(rows), reference.predict_proba(rows), rtol=0, atol=1e-10)
    assert model.n_iter_ == 40
    # Missingness was learned: a row lacking signal 1 scores below the same row with it.
    assert model.predict_score([[0.9, NAN]])[0] < model.predict_score([[0.9, 0.5]])[0]


def test_export_refuses_models_it_cannot_represent() -> None:
    with pytest.raises(RuntimeError, match="private tree layout"):
        export_trees(object())
    rng = np.random.default_rng(0)
    categories = rng.integers(0, 4, size=(200, 1)).astype(float)
    y = (categories[:, 0] % 2 == 0).astype(int)
    categorical = _fit_sklearn_hgb(categories, y, max_iter=3, categorical_features=[0])
    with pytest.raises(ValueError, match="categorical splits"):
        export_trees(categorical)
    multiclass = _fit_sklearn_hgb(categories, categories[:, 0].astype(int), max_iter=2)
    with pytest.raises(ValueError, match="only binary models"):
        export_trees(multiclass)


# --- WeightedMeanFusion --------------------------------------------------------------------------------


def test_weighted_mean_renormalises_over_the_signals_present() -> None:
    model = WeightedMeanFusion(weights={"a": 1.0, "b": 3.0, "c": 0.0}).fit([[0.5, 0.5, 0.5]], feature_names=list("abc"))
    rows = [[0.2, 0.6, 0.9], [NAN, 0.6, 0.9], [0.2, NAN, 0.9], [0.0, 1.0, NAN]]
    np.testing.assert_allclose(model.predict_score(rows), [0.5, 0.6, 0.2, 0.75], rtol=1e-15)
    np.testing.assert_array_equal(model.weights_, [1.0, 3.0, 0.0])


def test_weighted_mean_without_evidence_scores_one_half() -> None:
    model = WeightedMeanFusion(weights={"a": 2.0}).fit([[0.1, 0.9]], feature_names=["a", "b"])
    # All missing, or only a zero-weight signal present: no evidence, so exactly 0.5.
    np.testing.assert_array_equal(model.predict_score([[NAN, NAN], [NAN, 0.95]]), [0.5, 0.5])
    assert fusion.NO_EVIDENCE_SCORE == 0.5


def test_weighted_mean_equal_weights_and_ignored_labels() -> None:
    model = WeightedMeanFusion().fit([[0.0, 0.0, 0.0]], y=[1])
    assert model.predict_score([[0.3, NAN, 0.6]])[0] == pytest.approx(0.45, abs=1e-15)
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize(
    ("weights", "names", "x", "message"),
    [
        ({"a": 1.0}, None, [[0.5, 0.5]], "fit needs feature_names"),
        ({"z": 1.0}, ["a", "b"], [[0.5, 0.5]], r"\['z'\] that are not among the feature names \['a', 'b'\]"),
        ({"a": -1.0}, ["a", "b"], [[0.5, 0.5]], "finite, >= 0 and not all 0"),
        ({"a": 0.0, "b": 0.0}, ["a", "b"], [[0.5, 0.5]], "not all 0"),
        ({"a": "1"}, ["a", "b"], [[0.5, 0.5]], r"weights\['a'\] must be a finite number; got '1'"),
        (None, None, [[0.5, 1.5]], r"signals must be probabilities in \[0, 1\]; got range \[0.5, 1.5\]"),
    ],
)
def test_weighted_mean_refuses_bad_weights_and_values(weights: Any, names: Any, x: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedMeanFusion(weights=weights).fit(x, feature_names=names)


def test_weighted_mean_refuses_out_of_range_signals_at_predict() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\].*-0.2"):
        _fitted("weighted_mean").predict_score([[-0.2, 0.5]])


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (5, 2), elements=st.one_of(st.floats(0.0, 1.0), st.just(NAN))))
def test_weighted_mean_lies_between_the_present_signals(rows: np.ndarray) -> None:
    score = _fitted("weighted_mean").predict_score(rows)
    for row, value in zip(rows, score, strict=True):
        present = row[~np.isnan(row)]
        if present.size:
            assert present.min() - 1e-12 <= value <= present.max() + 1e-12
        else:
            assert value == 0.5


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (8, 2), elements=st.one_of(st.floats(-5.0, 5.0), st.just(NAN))))
def test_trained_fusions_score_any_finite_or_missing_input_in_unit_interval(rows: np.ndarray) -> None:
    for kind in ("logistic", "boosted"):
        score = _fitted(kind).predict_score(rows)
        assert np.isfinite(score).all()
        assert ((score >= 0) & (score <= 1)).all()


# --- from_dict refusals --------------------------------------------------------------------------------


def _edit(kind: str, change: Any) -> dict[str, Any]:
    data = copy.deepcopy(_fitted(kind).to_dict())
    change(data)
    return data


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("logistic", _set(("format_version",), 99), "unsupported format_version 99"),
        ("logistic", _set(("coef",), [0.1, 0.2, 0.3]), "'coef' must be a list of 4 finite numbers; got length 3"),
        ("logistic", _set(("mean", 0), float("nan")), r"'mean' must be a list of 4 finite numbers; got .*nan"),
        ("logistic", _set(("scale", 1), 0.0), "'scale' must be a list of 4 finite numbers > 0"),
        ("logistic", _set(("intercept",), float("inf")), "'intercept' must be a finite number; got inf"),
        ("logistic", _set(("impute_values",), "0.5"), "'impute_values' must be a list of 2 finite numbers; got '0.5'"),
        ("logistic", _set(("params", "C"), -1.0), "C must be a finite number > 0"),
        ("logistic", _set(("params", "penalty"), "l1"), "params of a saved LogisticFusion must have exactly the keys"),
        ("logistic", _set(("params", "class_weight"), {"x": 1.0}), "class_weight keys must be '0' and/or '1'"),
        ("logistic", _set(("feature_names",), ["a"]), "feature_names must be 2 non-empty strings"),
        ("logistic", _set(("n_features",), 0), "n_features must be a positive integer"),
        ("boosted", _set(("baseline",), None), "'baseline' must be a finite number; got None"),
        ("boosted", _set(("trees",), []), "trees must be a non-empty list"),
        ("boosted", _set(("trees", 0, "left", 0), 0), r"trees\[0\].left: a split node's child must come after it"),
        ("boosted", _set(("trees", 1, "feature", 0), 2), r"trees\[1\].feature: split features must be in \[0, 2\)"),
        ("boosted", _set(("trees", 0, "threshold", 0), float("inf")), "non-null thresholds must be finite"),
        ("boosted", _set(("trees", 0, "value", 0), float("nan")), r"trees\[0\].value must be finite"),
        ("boosted", _set(("trees", 0, "is_leaf"), [0, 1]), r"trees\[0\]: every field must be a list with one entry"),
        ("boosted", _set(("trees", 0, "feature", 0), True), r"trees\[0\].feature must be a list of integers"),
        ("weighted_mean", _set(("signal_weights",), [0.0, 0.0]), "not all 0"),
        (
            "weighted_mean",
            _set(("signal_weights",), [1.0]),
            r"'signal_weights' must be a list of 2 finite numbers; got length 1: \[1.0\]",
        ),
    ],
)
def test_from_dict_refuses_invalid_data(kind: str, change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fusion_from_dict(_edit(kind, change))


def test_from_dict_refuses_another_kind_and_non_mappings() -> None:
    with pytest.raises(ValueError, match=r"LogisticFusion\.from_dict needs kind 'logistic'; got 'boosted'"):
        LogisticFusion.from_dict(_fitted("boosted").to_dict())
    with pytest.raises(ValueError, match="must be a mapping"):
        fusion_from_dict([("kind", "logistic")])
    with pytest.raises(ValueError, match=r"tree must have exactly the keys \['feature', 'is_leaf'"):
        _tree_export.tree_from_json({"feature": [0]}, n_features=2)


def test_doctests_in_the_module_pass() -> None:
    # calibration.fusion re-exports the kinds; their docstrings (and doctests) live in one module per kind.
    modules = (fusion, fusion_logistic, fusion_boosted, fusion_weighted)
    results = [doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE) for module in modules]
    assert sum(result.attempted for result in results) >= 4
    assert sum(result.failed for result in results) == 0
