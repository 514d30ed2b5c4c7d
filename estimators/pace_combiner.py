"""The "optimization step" of PACE: a fitted map from PACE's feature vector to P(answer is correct).

Two forms, following the project's method notes (``reference/methods.md``, section 1.3, step 4):

- ``"logistic"`` (default): logistic regression on the standardised features, with the RCE x COE
  interaction of the notes' form (a) and a missing-value indicator for every column that had gaps
  in training. It uses every column it is given.
- ``"gated"``: the notes' form (b), ``c = g * r + (1 - g) * pi`` with ``r = RCE / 10``,
  ``g = sigmoid(alpha * (COE - beta))`` and a learned base rate ``pi``, fitted by minimising the
  Brier score. Low grounded-ness (COE) falls back to the prior. It reads only the RCE and COE
  columns. This form is the project's design, not the paper's (whose objective is not available).

Missing values (``NaN``) are imputed with the training column mean in both forms. Learned state is
plain numbers, so ``to_dict`` / ``from_dict`` round-trip through JSON with no pickle.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Self

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

__all__ = ["PaceCombiner"]

METHODS = ("logistic", "gated")
FORMAT_VERSION = 1
_GATE_STARTS = (2.5, 5.0, 7.5)  # initial COE thresholds for the non-convex gated fit
_LEARNED = {
    "logistic": ("feature_means_", "missing_columns_", "design_mean_", "design_scale_", "coef_", "intercept_"),
    "gated": ("feature_means_", "missing_columns_", "alpha_", "beta_", "base_rate_"),
}


class PaceCombiner(BaseEstimator):
    """Combine PACE features (RCE, COE and grounding features) into a probability of correctness.

    Parameters
    ----------
    method : {"logistic", "gated"}, default="logistic"
        The functional form (see the module docstring).
    C : float, default=1.0
        Inverse regularisation strength: of the logistic weights, or of the gate's slope ``alpha``.
    interaction : bool, default=True
        For ``"logistic"``: add the product of the RCE and COE columns as a feature.
    rce_column, coe_column : int, default=0, 1
        Which columns of ``X`` hold RCE and COE on the 0-10 scale; the defaults match
        ``estimators.pace.PACE_FEATURES``.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen in ``fit``.
    classes_ : ndarray of shape (2,)
        ``[0, 1]``; column 1 of ``predict_proba`` is P(correct).
    feature_means_ : ndarray of shape (n_features_in_,)
        Training column means (ignoring NaN) used to impute missing values; 0 for a column with no values.
    missing_columns_ : ndarray of int
        Columns that had NaN in training; ``"logistic"`` adds an indicator feature for each.
    design_mean_, design_scale_ : ndarray
        ``"logistic"`` only: standardisation of the design matrix (features, interaction, indicators).
    coef_ : ndarray of shape (1, n_design)
        ``"logistic"`` only: weights on the standardised design columns.
    intercept_ : ndarray of shape (1,)
        ``"logistic"`` only.
    alpha_, beta_, base_rate_ : float
        ``"gated"`` only: gate slope, gate threshold on the COE scale, and fallback probability.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[9, 8], [8, 9], [2, 7], [1, 8], [7, np.nan], [3, 2]], dtype=float)
    >>> y = np.array([1, 1, 0, 0, 1, 0])
    >>> combiner = PaceCombiner().fit(X, y)
    >>> proba = combiner.predict_proba([[9.0, 9.0], [1.0, 9.0]])[:, 1]
    >>> bool(proba[0] > proba[1])
    True
    """

    def __init__(
        self,
        *,
        method: str = "logistic",
        C: float = 1.0,  # noqa: N803 - scikit-learn's name for the inverse regularisation strength
        interaction: bool = True,
        rce_column: int = 0,
        coe_column: int = 1,
    ) -> None:
        self.method = method
        self.C = C
        self.interaction = interaction
        self.rce_column = rce_column
        self.coe_column = coe_column

    def fit(self, X: Any, y: Any) -> Self:  # noqa: N803 - scikit-learn's name for the data
        """Learn the combination from features ``X`` (NaN allowed) and binary labels ``y`` (1 = correct).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite values or NaN for missing ones.
        y : array-like of shape (n_samples,)
            0/1 (or bool) labels containing both classes.

        Returns
        -------
        self : PaceCombiner
            The fitted combiner.

        Raises
        ------
        ValueError
            For an unknown method, a bad ``C`` or column index, a non-2-D or non-finite ``X``,
            labels that are not binary, lack a class, or do not match ``X`` in length.
        """
        self._check_params()
        x = _check_features(X)
        self._check_columns(x.shape[1])
        labels = _check_labels(y, x.shape[0])
        self.n_features_in_ = x.shape[1]
        self.classes_ = np.array([0, 1])
        self.feature_means_ = _column_means(x)
        self.missing_columns_ = np.flatnonzero(np.isnan(x).any(axis=0))
        if self.method == "logistic":
            self._fit_logistic(x, labels)
        else:
            self._fit_gated(x, labels)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name for the data
        """Return an array of shape ``(n_samples, 2)``: P(incorrect), P(correct).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            (a ``ValueError``) if ``fit`` or ``from_dict`` has not set the learned state.
        ValueError
            If ``X`` is not 2-D with ``n_features_in_`` columns, or holds infinities.
        """
        check_is_fitted(
            self, "feature_means_", msg="This PaceCombiner is not fitted yet; call fit(X, y) or from_dict() first."
        )
        x = _check_features(X, allow_single_row=True)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[1]} features; this combiner was fitted on {self.n_features_in_}")
        if self.method == "logistic":
            design = (self._design(x) - self.design_mean_) / self.design_scale_
            positive = expit(design @ self.coef_[0] + self.intercept_[0])
        else:
            positive = self._gated(self._impute(x), self.alpha_, self.beta_, self.base_rate_)
        return np.column_stack([1.0 - positive, positive])

    def to_dict(self) -> dict[str, Any]:
        """Parameters and learned state as plain JSON-able values (``"state"`` is ``None`` before fit)."""
        state = None
        if hasattr(self, "feature_means_"):
            state = {"n_features_in": int(self.n_features_in_)}
            state.update({name: _to_json(getattr(self, name)) for name in _LEARNED[self.method]})
        return {
            "kind": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "state": state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaceCombiner:
        """Rebuild a combiner written by ``to_dict``; predictions match the original exactly.

        Raises
        ------
        ValueError
            If ``data`` is not a ``PaceCombiner`` dictionary of a known format version, or lacks state.
        """
        if not isinstance(data, dict) or data.get("kind") != cls.__name__:
            raise ValueError(f"expected a dict with kind={cls.__name__!r}, got {type(data).__name__} {data!r:.80}")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unknown format_version {data.get('format_version')!r}; this code reads {FORMAT_VERSION}")
        combiner = cls(**data["params"])
        combiner._check_params()
        state = data.get("state")
        if state is None:
            return combiner
        missing = [name for name in ("n_features_in", *_LEARNED[combiner.method]) if name not in state]
        if missing:
            raise ValueError(f"state lacks {missing} for method={combiner.method!r}")
        combiner.n_features_in_ = int(state["n_features_in"])
        combiner.classes_ = np.array([0, 1])
        for name in _LEARNED[combiner.method]:
            value = state[name]
            setattr(combiner, name, float(value) if isinstance(value, float) else np.asarray(value))
        combiner.missing_columns_ = combiner.missing_columns_.astype(int)
        return combiner

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        numeric = isinstance(self.C, int | float) and not isinstance(self.C, bool)
        if not (numeric and math.isfinite(self.C) and self.C > 0):
            raise ValueError(f"C must be a positive finite number, got {self.C!r}")

    def _check_columns(self, n_features: int) -> None:
        needs_columns = self.method == "gated" or self.interaction
        if not needs_columns:
            return
        for name in ("rce_column", "coe_column"):
            index = getattr(self, name)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_features:
                raise ValueError(f"{name} must be a column index in [0, {n_features}), got {index!r}")
        if self.rce_column == self.coe_column:
            raise ValueError(f"rce_column and coe_column must differ, both are {self.rce_column}")

    def _impute(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), self.feature_means_, x)

    def _gated(self, filled: np.ndarray, alpha: float, beta: float, base: float) -> np.ndarray:
        """``g * RCE/10 + (1 - g) * base`` with the gate ``g = sigmoid(alpha * (COE - beta))``."""
        support = np.clip(filled[:, self.rce_column] / 10.0, 0.0, 1.0)
        gate = expit(alpha * (filled[:, self.coe_column] - beta))
        return gate * support + (1.0 - gate) * base

    def _design(self, x: np.ndarray) -> np.ndarray:
        """Imputed features, then the RCE x COE product (if asked), then one indicator per gappy column."""
        filled = self._impute(x)
        parts = [filled]
        if self.interaction:
            parts.append((filled[:, self.rce_column] * filled[:, self.coe_column])[:, None])
        parts.append(np.isnan(x[:, self.missing_columns_]).astype(float))
        return np.hstack(parts)

    def _fit_logistic(self, x: np.ndarray, y: np.ndarray) -> None:
        design = self._design(x)
        self.design_mean_ = design.mean(axis=0)
        scale = design.std(axis=0)
        self.design_scale_ = np.where(scale > 0, scale, 1.0)  # a constant column keeps weight 0
        model = LogisticRegression(C=self.C).fit((design - self.design_mean_) / self.design_scale_, y)
        self.coef_ = model.coef_.copy()
        self.intercept_ = model.intercept_.copy()

    def _fit_gated(self, x: np.ndarray, y: np.ndarray) -> None:
        filled = self._impute(x)
        penalty = 1.0 / (2.0 * self.C * len(y))
        prior = float(np.clip(y.mean(), 0.01, 0.99))

        def loss(theta: np.ndarray) -> float:
            alpha, beta, base = theta
            predicted = self._gated(filled, alpha, beta, float(expit(base)))
            return float(np.mean((predicted - y) ** 2) + penalty * alpha**2)

        fits = [minimize(loss, np.array([1.0, start, logit(prior)]), method="L-BFGS-B") for start in _GATE_STARTS]
        best = min(fits, key=lambda fit: fit.fun)
        if not best.success:
            logger.warning("gated PACE combiner: optimiser stopped early (%s)", best.message)
        self.alpha_, self.beta_ = float(best.x[0]), float(best.x[1])
        self.base_rate_ = float(expit(best.x[2]))


def _check_features(data: Any, *, allow_single_row: bool = False) -> np.ndarray:
    try:
        array = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a 2-D array of numbers, got {type(data).__name__}: {exc}") from exc
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"X must be 2-D with at least one column, got shape {array.shape}")
    if array.shape[0] < (1 if allow_single_row else 2):
        raise ValueError(f"X needs at least 2 rows to fit, got {array.shape[0]}")
    if np.isinf(array).any():
        raise ValueError("X holds infinite values; only finite numbers and NaN (missing) are allowed")
    return array


def _check_labels(y: Any, n_samples: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(f"y must be 1-D with one label per row of X ({n_samples}), got shape {labels.shape}")
    try:
        values = labels.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must hold 0/1 labels, got dtype {labels.dtype}") from exc
    unique = np.unique(values)
    if not np.isin(unique, (0.0, 1.0)).all():
        raise ValueError(f"y must hold only 0 and 1, got values {unique[:10].tolist()}")
    if unique.size < 2:
        raise ValueError(f"y must contain both classes (0 and 1), got only {unique.tolist()}")
    return values.astype(int)


def _column_means(x: np.ndarray) -> np.ndarray:
    empty = np.isnan(x).all(axis=0)
    if empty.any():
        warnings.warn(
            f"columns {np.flatnonzero(empty).tolist()} have no values in X; they are imputed with 0",
            stacklevel=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN columns handled above
        means = np.nanmean(x, axis=0)
    return np.where(empty, 0.0, means)


def _to_json(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else float(value)
