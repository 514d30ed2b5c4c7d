"""Choosing the fusion and its signals by cross-validation, and the logit transform it may choose."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibration.fusion import make_fusion
from calibration.fusion_logistic import LogisticFusion
from calibration.fusion_selection import Candidate, candidates, choose_fusion, nested_auroc

NAMES = ["strong", "costly", "noise"]


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    strong = 1 / (1 + np.exp(-(2.0 * y + rng.normal(size=n))))
    costly = 1 / (1 + np.exp(-(0.05 * y + rng.normal(size=n))))  # all but useless, and it costs a call
    noise = rng.random(n)
    return np.column_stack([strong, costly, noise]), y


def test_every_subset_and_kind_is_a_candidate() -> None:
    pool = candidates(NAMES)
    assert len(pool) == 7 * 2
    assert Candidate("logistic", ("strong",), {}) in pool
    assert Candidate("logistic", ("strong", "costly", "noise"), {"transform": "logit"}) in pool
    assert len(candidates(NAMES, max_size=1)) == 3 * 2


def test_the_cheapest_near_best_candidate_wins() -> None:
    x, y = _data()
    # noise costs nothing and adds nothing; costly costs a call and adds ~nothing: strong must be chosen alone
    selection = choose_fusion(x, y, NAMES, costs={"costly": 1.0}, tolerance=0.01)
    assert selection.chosen.signals == ("strong",)
    best = max(row["cv_auroc"] for row in selection.table)
    chosen = next(row for row in selection.table if row["candidate"] == selection.chosen)
    assert chosen["cv_auroc"] >= best - 0.01
    scores = [row["cv_auroc"] for row in selection.table]
    assert scores == sorted(scores, reverse=True)


def test_a_candidate_with_a_negative_weight_is_not_chosen() -> None:
    x, y = _data()
    flipped = np.column_stack([x[:, 0], 1 - x[:, 0] * 0.5 + 0.01 * x[:, 2]])  # the second is anti-correlated
    selection = choose_fusion(flipped, y, ["a", "b"], tolerance=0.0)
    assert selection.chosen.signals == ("a",)
    assert any(not row["monotone"] for row in selection.table)


def test_nested_scores_are_out_of_fold_and_honest() -> None:
    x, y = _data()
    scores, chosen = nested_auroc(x, y, NAMES, costs={"costly": 1.0}, pool=candidates(NAMES, max_size=2), repeats=1)
    assert len(chosen) == 5 and scores.shape == y.shape
    auroc = roc_auc_score(y, scores)
    assert 0.7 < auroc <= roc_auc_score(y, x[:, 0]) + 0.03  # no better than the strong signal by luck


def test_logit_transform_keeps_missing_values_missing_and_round_trips() -> None:
    x, y = _data()
    x[::7, 1] = np.nan
    fitted = LogisticFusion(transform="logit").fit(x, y)
    loaded = LogisticFusion.from_dict(fitted.to_dict())
    assert np.allclose(fitted.predict_score(x), loaded.predict_score(x))
    assert fitted.to_dict()["params"]["transform"] == "logit"
    assert "transform" not in make_fusion("logistic").fit(x, y).to_dict()["params"]  # old artifacts keep their id


def test_an_unknown_transform_is_refused() -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="transform must be one of"):
        LogisticFusion(transform="sqrt").fit(x, y)
