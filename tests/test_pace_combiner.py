"""PaceCombiner: the scikit-learn contract, NaN handling, validation, and a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from estimators.pace_combiner import PaceCombiner


def _data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RCE tracks correctness when COE is high; a third column is noise; some values missing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    coe = rng.uniform(0, 10, n)
    rce = np.where(coe > 5, np.where(y == 1, 8.0, 2.0), 5.0) + rng.normal(0, 1.5, n)
    x = np.column_stack([np.clip(rce, 0, 10), coe, rng.normal(size=n)])
    x[rng.random(n) < 0.1, 0] = np.nan
    return x, y


@pytest.mark.parametrize("method", ["logistic", "gated"])
def test_fit_returns_self_and_sets_learned_state(method: str) -> None:
    x, y = _data()
    combiner = PaceCombiner(method=method)
    assert combiner.fit(x, y) is combiner
    assert combiner.n_features_in_ == 3
    assert combiner.classes_.tolist() == [0, 1]
    assert combiner.missing_columns_.tolist() == [0]
    proba = combiner.predict_proba(x)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()


def test_init_stores_params_only_and_clones() -> None:
    combiner = PaceCombiner(method="gated", C=0.5)
    assert vars(combiner) == {"method": "gated", "C": 0.5, "interaction": True, "rce_column": 0, "coe_column": 1}
    assert clone(combiner).get_params() == combiner.get_params()


@pytest.mark.parametrize("method", ["logistic", "gated"])
def test_not_fitted_error(method: str) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        PaceCombiner(method=method).predict_proba([[1.0, 2.0]])
    assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("method", ["logistic", "gated"])
def test_learns_the_signal(method: str) -> None:
    x, y = _data(400)
    combiner = PaceCombiner(method=method).fit(x, y)
    x_test, y_test = _data(400, seed=1)
    positive = combiner.predict_proba(x_test)[:, 1]
    assert positive[y_test == 1].mean() > positive[y_test == 0].mean() + 0.1


def test_logistic_matches_sklearn_on_the_same_design() -> None:
    x, y = _data()
    combiner = PaceCombiner(interaction=False).fit(x, y)
    filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    design = np.column_stack([filled, np.isnan(x[:, 0])])
    z = (design - design.mean(axis=0)) / design.std(axis=0)
    reference = LogisticRegression().fit(z, y)
    np.testing.assert_allclose(combiner.predict_proba(x), reference.predict_proba(z), atol=1e-6)


def test_gated_falls_back_to_the_base_rate_when_ungrounded() -> None:
    x, y = _data(400)
    combiner = PaceCombiner(method="gated").fit(x, y)
    assert combiner.alpha_ > 0
    assert 0 < combiner.beta_ < 10
    ungrounded = combiner.predict_proba([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])[:, 1]
    np.testing.assert_allclose(ungrounded, combiner.base_rate_, atol=0.1)
    grounded = combiner.predict_proba([[10.0, 10.0, 0.0], [0.0, 10.0, 0.0]])[:, 1]
    assert grounded[0] > 0.8 > 0.2 > grounded[1]


@pytest.mark.parametrize("method", ["logistic", "gated"])
def test_round_trip_through_json_gives_identical_predictions(method: str) -> None:
    x, y = _data()
    combiner = PaceCombiner(method=method, C=2.0).fit(x, y)
    restored = PaceCombiner.from_dict(json.loads(json.dumps(combiner.to_dict(), allow_nan=False)))
    assert restored.get_params() == combiner.get_params()
    x_new = np.vstack([x[:20], [[np.nan, np.nan, np.nan]]])
    np.testing.assert_array_equal(restored.predict_proba(x_new), combiner.predict_proba(x_new))


def test_unfitted_round_trip_stays_unfitted() -> None:
    data = PaceCombiner(C=3.0).to_dict()
    assert data["state"] is None
    restored = PaceCombiner.from_dict(data)
    assert restored.C == 3.0
    with pytest.raises(NotFittedError):
        restored.predict_proba([[1.0, 2.0]])


def test_from_dict_rejects_foreign_or_incomplete_data() -> None:
    x, y = _data()
    data = PaceCombiner().fit(x, y).to_dict()
    with pytest.raises(ValueError, match="kind='PaceCombiner'"):
        PaceCombiner.from_dict({**data, "kind": "Other"})
    with pytest.raises(ValueError, match="format_version"):
        PaceCombiner.from_dict({**data, "format_version": 99})
    state = {k: v for k, v in data["state"].items() if k != "coef_"}
    with pytest.raises(ValueError, match="coef_"):
        PaceCombiner.from_dict({**data, "state": state})


def test_nan_is_imputed_with_the_training_mean_plus_an_indicator() -> None:
    x, y = _data()
    combiner = PaceCombiner(interaction=False).fit(x, y)
    np.testing.assert_allclose(combiner.feature_means_, np.nanmean(x, axis=0))
    assert combiner.coef_.shape == (1, 4)  # three features and one missing indicator
    missing = combiner.predict_proba([[np.nan, 5.0, 0.0]])
    assert np.isfinite(missing).all()


def test_a_column_never_observed_is_imputed_with_zero_and_warns() -> None:
    x, y = _data()
    x[:, 2] = np.nan
    with pytest.warns(UserWarning, match=r"columns \[2\] have no values"):
        combiner = PaceCombiner().fit(x, y)
    assert combiner.feature_means_[2] == 0.0
    assert np.isfinite(combiner.predict_proba(x)).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "isotonic"}, "method must be one of"),
        ({"C": 0.0}, "C must be a positive finite number"),
        ({"C": float("inf")}, "C must be a positive finite number"),
        ({"rce_column": 5}, r"rce_column must be a column index in \[0, 3\)"),
        ({"coe_column": 0}, "must differ"),
    ],
)
def test_bad_params_are_rejected_at_fit(params: dict, message: str) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        PaceCombiner(**params).fit(x, y)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1.0, 2.0, 3.0], [0, 1, 0], "2-D"),
        ([[1.0], [np.inf], [2.0]], [0, 1, 0], "infinite"),
        ([["a"], ["b"]], [0, 1], "array of numbers"),
        ([[1.0]], [1], "at least 2 rows"),
        ([[1.0], [2.0], [3.0]], [0, 1], "one label per row"),
        ([[1.0], [2.0], [3.0]], [0, 1, 2], "only 0 and 1"),
        ([[1.0], [2.0], [3.0]], [1, 1, 1], "both classes"),
    ],
)
def test_bad_data_is_rejected(x: object, y: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PaceCombiner(interaction=False).fit(x, y)


def test_predict_checks_the_number_of_features() -> None:
    x, y = _data()
    combiner = PaceCombiner().fit(x, y)
    with pytest.raises(ValueError, match="fitted on 3"):
        combiner.predict_proba(x[:, :2])


def test_bool_labels_are_accepted() -> None:
    x, y = _data()
    np.testing.assert_array_equal(
        PaceCombiner().fit(x, y.astype(bool)).predict_proba(x), PaceCombiner().fit(x, y).predict_proba(x)
    )
