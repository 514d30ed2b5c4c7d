"""Boosted fusion: gradient-boosted trees, which route a missing signal down a learned branch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from calibration._fusion_base import BaseFusion, sigmoid
from calibration._tree_export import ExportedTree, export_trees, predict_raw, tree_from_json, tree_to_json
from calibration._validation import check_int, check_number, json_float

__all__ = ["BoostedFusion"]


class BoostedFusion(BaseFusion):
    """Gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``) on the raw signals.

    Trees handle NaN natively: each split learns which side missing values take (and sends them to the
    larger side when the training data had none there). The fitted trees are exported to plain arrays
    (``calibration._tree_export``) so prediction and persistence need no scikit-learn object. Early
    stopping is off, so ``max_iter`` is exactly the number of trees and the fit uses all the data; tune it
    on a held-out split.

    Parameters
    ----------
    max_iter : int, default=100
        Number of boosting iterations (trees).
    learning_rate : float, default=0.1
    max_depth : int or None, default=3
        Shallow trees: a handful of signals needs few interactions, and small trees overfit less.
    min_samples_leaf : int, default=10
    l2_regularization : float, default=0.0
    random_state : int or None, default=0
        An int or None only, so that the parameters stay JSON-able.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Present only when ``fit`` was given ``feature_names``.
    baseline_ : float
        Raw (log-odds) prediction before the trees.
    trees_ : list of ExportedTree
        One tree per iteration.
    n_iter_ : int
        Number of trees.
    """

    kind = "boosted"

    def __init__(
        self,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_depth: int | None = 3,
        min_samples_leaf: int = 10,
        l2_regularization: float = 0.0,
        random_state: int | None = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: Any, y: Any, *, feature_names: Sequence[str] | None = None) -> Self:  # noqa: N803 - scikit-learn's name for the data
        """Fit the boosted trees and export them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Signal confidences, NaN where missing.
        y : array-like of shape (n_samples,)
            1 (or True) where the answer was correct, 0 (or False) where not; both must occur.
        feature_names : sequence of str, optional
            One unique name per column, kept in ``feature_names_in_``.

        Returns
        -------
        self
        """
        x, labels = self._fit_data(X, y, feature_names)
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            random_state=self.random_state,
            early_stopping=False,
            categorical_features=None,
        )
        # scikit-learn 1.9.1 fails to bin an all-NaN column; a constant column is equivalent (no split can
        # use it, so the trees ignore that signal whatever it holds at predict time) and bins fine.
        unobserved = np.isnan(x).all(axis=0)
        # One OpenMP thread: fusion data are small (thousands of rows, a few signals), where threads only
        # add overhead, and on a busy 2-core machine spinning OpenMP threads made a 0.15 s fit take 2-6 s.
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(np.where(unobserved, 0.0, x), labels)
        self.baseline_, self.trees_ = export_trees(model)
        self.n_iter_ = len(self.trees_)
        return self

    def _predict_positive(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(predict_raw(x, self.trees_, self.baseline_))

    def _check_params(self) -> None:
        check_int(self.max_iter, "max_iter")
        check_number(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        check_int(self.max_depth, "max_depth", allow_none=True)
        check_int(self.min_samples_leaf, "min_samples_leaf")
        check_number(self.l2_regularization, "l2_regularization", low=0.0)
        check_int(self.random_state, "random_state", minimum=0, allow_none=True)

    def _params_to_json(self) -> dict[str, Any]:
        return {
            "max_iter": int(self.max_iter),
            "learning_rate": float(self.learning_rate),
            "max_depth": None if self.max_depth is None else int(self.max_depth),
            "min_samples_leaf": int(self.min_samples_leaf),
            "l2_regularization": float(self.l2_regularization),
            "random_state": None if self.random_state is None else int(self.random_state),
        }

    def _learned_to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline_, "trees": [tree_to_json(tree) for tree in self.trees_]}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        self.baseline_ = json_float(data, "baseline")
        trees = data.get("trees")
        if not isinstance(trees, list) or not trees:
            raise ValueError(f"trees must be a non-empty list of trees; got {type(trees).__name__}")
        self.trees_: list[ExportedTree] = [
            tree_from_json(tree, self.n_features_in_, where=f"trees[{i}]") for i, tree in enumerate(trees)
        ]
        self.n_iter_ = len(self.trees_)
