"""Weighted-mean fusion: no training, the weighted mean of the signals present in each row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from calibration._fusion_base import BaseFusion, check_signals
from calibration._validation import check_number, check_probabilities, json_float_list

__all__ = ["NO_EVIDENCE_SCORE", "WeightedMeanFusion"]

# The score a row gets when no signal is present: no evidence either way (see WeightedMeanFusion).
NO_EVIDENCE_SCORE = 0.5


class WeightedMeanFusion(BaseFusion):
    """The weighted mean of the signals present in each row; nothing to learn.

    Weights are renormalised over the signals present: with weights ``w`` and present set ``S``, the score
    is ``sum(w_i * x_i for i in S) / sum(w_i for i in S)``. A row with no present signal of positive weight
    scores 0.5 (``NO_EVIDENCE_SCORE``): with no evidence either way, the gate should be maximally unsure
    rather than confident. Signals must lie in [0, 1] so the score is a probability-like number. A
    baseline and a fallback when no labelled data exist; it is not calibrated.

    Parameters
    ----------
    weights : mapping of str to float, optional
        Weight per signal name (>= 0, at least one > 0); signals not named get weight 0. Needs
        ``feature_names`` in ``fit``. None (default) weighs every signal equally.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Present only when ``fit`` was given ``feature_names``.
    weights_ : ndarray of shape (n_features_in_,)
        The weight of each column.

    Examples
    --------
    >>> fusion = WeightedMeanFusion(weights={"a": 1.0, "b": 3.0}).fit([[0.0, 0.0]], feature_names=["a", "b"])
    >>> fusion.predict_score([[0.25, 0.75], [float("nan"), 0.75], [float("nan"), float("nan")]]).tolist()
    [0.625, 0.75, 0.5]
    """

    kind = "weighted_mean"

    def __init__(self, *, weights: Mapping[str, float] | None = None) -> None:
        self.weights = weights

    def fit(self, X: Any, y: Any = None, *, feature_names: Sequence[str] | None = None) -> Self:  # noqa: N803 - scikit-learn's name for the data
        """Record the number (and names) of signals and resolve the weights; ``y`` is ignored.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Only its column count (and value range) is used; one row is enough.
        y : ignored
            Accepted so that every fusion has the same ``fit(X, y)`` interface.
        feature_names : sequence of str, optional
            Required when ``weights`` is given.

        Returns
        -------
        self
        """
        self._check_params()
        x = _check_unit_interval(check_signals(X))
        self._set_signals(x, feature_names)
        if self.weights is None:
            self.weights_ = np.ones(self.n_features_in_)
            return self
        if not hasattr(self, "feature_names_in_"):
            raise ValueError(
                f"weights are keyed by signal name ({sorted(self.weights)}), so fit needs feature_names=[...]"
            )
        names = self._signal_names()
        unknown = sorted(set(self.weights) - set(names))
        if unknown:
            raise ValueError(f"weights name signals {unknown} that are not among the feature names {names}")
        self.weights_ = np.array([float(self.weights.get(name, 0.0)) for name in names])
        _check_weight_vector(self.weights_)
        return self

    def _predict_positive(self, x: np.ndarray) -> np.ndarray:
        x = _check_unit_interval(x)
        present = ~np.isnan(x)
        weight = np.where(present, self.weights_, 0.0)
        total = weight.sum(axis=1)
        weighted = np.where(present, x, 0.0) @ self.weights_
        return np.divide(weighted, total, out=np.full(x.shape[0], NO_EVIDENCE_SCORE), where=total > 0)

    def _check_params(self) -> None:
        if self.weights is None:
            return
        if not isinstance(self.weights, Mapping) or not all(isinstance(k, str) for k in self.weights):
            raise ValueError(f"weights must be a mapping from signal name to weight, or None; got {self.weights!r}")
        _check_weight_vector(np.array([check_number(v, f"weights[{k!r}]") for k, v in self.weights.items()]))

    def _params_to_json(self) -> dict[str, Any]:
        return {"weights": None if self.weights is None else {k: float(v) for k, v in self.weights.items()}}

    def _learned_to_json(self) -> dict[str, Any]:
        return {"signal_weights": self.weights_.tolist()}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        self.weights_ = json_float_list(data, "signal_weights", length=self.n_features_in_)
        _check_weight_vector(self.weights_)


def _check_unit_interval(x: np.ndarray) -> np.ndarray:
    return check_probabilities(x, "signals", hint=" (NaN marks a missing signal)")


def _check_weight_vector(weights: np.ndarray) -> None:
    if not np.isfinite(weights).all() or (weights < 0).any() or not (weights > 0).any():
        raise ValueError(f"weights must be finite, >= 0 and not all 0; got {weights.tolist()}")
