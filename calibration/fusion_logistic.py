"""Logistic fusion: mean-imputed, standardised signals plus missing-indicators, L2 logistic regression."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from calibration._fusion_base import BaseFusion, sigmoid
from calibration._validation import check_number, json_float, json_float_list

__all__ = ["LogisticFusion", "coefficients_table"]

TRANSFORMS = ("identity", "logit")
_LOGIT_CLIP = 1e-6

# The imputation value of a signal never observed in training: the midpoint of the confidence scale.
_UNOBSERVED_IMPUTE = 0.5
_LBFGS_MAX_ITER = 1000


class LogisticFusion(BaseFusion):
    """Logistic regression on mean-imputed, standardised signals plus one missing-indicator per signal.

    The design matrix has ``2 * n_features`` columns: each signal with NaN replaced by its training mean,
    then one 0/1 column per signal that is 1 where it was missing. Indicators are added for *every* signal,
    not only those missing in training, so the design never changes shape. A signal never missing in
    training has an all-zero indicator, whose coefficient stays exactly 0 (its gradient is 0); if that
    signal goes missing only at serving time, it is imputed with its mean and so contributes nothing, and
    the score rests on the other signals.

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 regularisation strength of the logistic regression (larger = weaker penalty).
    missing_indicators : bool, default=True
        Add the indicator columns. Without them a missing signal just counts as its training mean,
        which hides that missingness itself is informative (a skipped or failed estimator).
    class_weight : {"balanced"}, dict {0: float, 1: float} or None, default=None
        Passed to :class:`~sklearn.linear_model.LogisticRegression`.
    transform : {"identity", "logit"}, default="identity"
        Applied to each confidence first. ``logit`` (clipped at ``1e-6``) spreads out signals whose
        informative range is near 0 or 1 (exp of a mean log-prob, a token probability of 0.001 vs 0.01),
        which a linear model on raw probabilities all but ignores.

    Attributes
    ----------
    n_features_in_ : int
        Number of signals seen in ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Signal names, present only when ``fit`` was given ``feature_names``.
    impute_values_ : ndarray of shape (n_features_in_,)
        Training mean of each signal over its observed values; 0.5 for a signal never observed.
    mean_, scale_ : ndarray of shape (n_design,)
        Standardisation of the design columns (``scale_`` is 1 for a constant column).
        ``n_design`` is ``2 * n_features_in_`` with indicators, else ``n_features_in_``.
    coef_ : ndarray of shape (n_design,)
        Coefficients on the standardised design columns, comparable across signals.
    intercept_ : float
    n_iter_ : int
        L-BFGS iterations (0 for a model loaded with ``from_dict``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.9, np.nan], [0.8, 0.7], [0.2, 0.4], [0.1, np.nan]])
    >>> fusion = LogisticFusion().fit(X, [1, 1, 0, 0], feature_names=["logprob", "agreement"])
    >>> bool(fusion.predict_score([[0.95, np.nan]])[0] > fusion.predict_score([[0.05, np.nan]])[0])
    True
    """

    kind = "logistic"
    added_params: ClassVar[Mapping[str, Any]] = MappingProxyType({"transform": "identity"})

    def __init__(
        self,
        *,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name for the inverse regularisation strength
        missing_indicators: bool = True,
        class_weight: Any = None,
        transform: str = "identity",
    ) -> None:
        self.C = C
        self.missing_indicators = missing_indicators
        self.class_weight = class_weight
        self.transform = transform

    def fit(self, X: Any, y: Any, *, feature_names: Sequence[str] | None = None) -> Self:  # noqa: N803 - scikit-learn's name for the data
        """Fit imputation, standardisation and the logistic regression.

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
        x = _transformed(x, self.transform)
        self.impute_values_ = _observed_means(x)
        design = _logistic_design(x, self.impute_values_, indicators=self.missing_indicators)
        # StandardScaler rather than design.std(): it recognises a constant column whose float variance
        # comes out as 1e-34 instead of 0, and gives it scale 1 instead of blowing it up.
        scaler = StandardScaler().fit(design)
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=_LBFGS_MAX_ITER)
        model.fit(scaler.transform(design), labels)
        self.mean_ = scaler.mean_.astype(np.float64)
        self.scale_ = scaler.scale_.astype(np.float64)
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        self.n_iter_ = int(model.n_iter_[0])
        return self

    def design_names(self) -> list[str]:
        """Names of the design columns: the signal names, then ``"<name>_missing"`` for each indicator."""
        check_is_fitted(self)
        names = self._signal_names()
        return (names + [f"{name}_missing" for name in names]) if self.missing_indicators else names

    def _predict_positive(self, x: np.ndarray) -> np.ndarray:
        x = _transformed(x, self.transform)
        design = _logistic_design(x, self.impute_values_, indicators=self.missing_indicators)
        return sigmoid((design - self.mean_) / self.scale_ @ self.coef_ + self.intercept_)

    def _check_params(self) -> None:
        check_number(self.C, "C", low=0.0, low_open=True)
        if not isinstance(self.missing_indicators, bool | np.bool_):
            raise ValueError(f"missing_indicators must be True or False; got {self.missing_indicators!r}")
        _check_class_weight(self.class_weight)
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {list(TRANSFORMS)}; got {self.transform!r}")

    def _params_to_json(self) -> dict[str, Any]:
        class_weight = self.class_weight
        if isinstance(class_weight, Mapping):
            # JSON object keys are strings; from_dict turns "0"/"1" back into the class labels.
            class_weight = {str(int(label)): float(weight) for label, weight in class_weight.items()}
        params = {"C": float(self.C), "missing_indicators": bool(self.missing_indicators), "class_weight": class_weight}
        # written only when it is not the default, so a model saved before the parameter existed keeps its id
        return params if self.transform == "identity" else {**params, "transform": self.transform}

    def _learned_to_json(self) -> dict[str, Any]:
        return {
            "impute_values": self.impute_values_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        n_design = self.n_features_in_ * (2 if self.missing_indicators else 1)
        self.impute_values_ = json_float_list(data, "impute_values", length=self.n_features_in_)
        self.mean_ = json_float_list(data, "mean", length=n_design)
        self.scale_ = json_float_list(data, "scale", length=n_design, low=0.0, low_open=True)
        self.coef_ = json_float_list(data, "coef", length=n_design)
        self.intercept_ = json_float(data, "intercept")
        self.n_iter_ = 0

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        class_weight = params.get("class_weight")
        if isinstance(class_weight, Mapping):
            try:
                params["class_weight"] = {int(label): weight for label, weight in class_weight.items()}
            except ValueError as exc:
                raise ValueError(f"class_weight keys must be '0' and/or '1'; got {sorted(class_weight)}") from exc
        return params


def coefficients_table(fusion: LogisticFusion) -> list[tuple[str, float]]:
    """What a fitted :class:`LogisticFusion` learned: (design column name, standardised coefficient).

    Coefficients act on standardised columns, so their sizes are comparable across signals; indicator
    columns are named ``"<signal>_missing"``. Rows follow the design order (signals, then indicators);
    sort them for display. The intercept is ``fusion.intercept_``.

    Raises
    ------
    TypeError
        If ``fusion`` is not a LogisticFusion (only a linear model has one coefficient per column).
    """
    if not isinstance(fusion, LogisticFusion):
        raise TypeError(f"coefficients_table needs a fitted LogisticFusion; got {type(fusion).__name__}")
    return [(name, float(c)) for name, c in zip(fusion.design_names(), fusion.coef_, strict=True)]


def _check_class_weight(class_weight: Any) -> None:
    if class_weight is None or class_weight == "balanced":
        return
    if not isinstance(class_weight, Mapping) or not set(class_weight) <= {0, 1}:
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{0: w, 1: w}}; got {class_weight!r}")
    for label, weight in class_weight.items():
        check_number(weight, f"class_weight[{label}]", low=0.0, low_open=True)


def _observed_means(x: np.ndarray) -> np.ndarray:
    observed = ~np.isnan(x)
    counts = observed.sum(axis=0)
    sums = np.where(observed, x, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(x.shape[1], _UNOBSERVED_IMPUTE), where=counts > 0)


def _transformed(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return x
    clipped = np.clip(x, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(clipped) - np.log1p(-clipped)  # NaN stays NaN (missing)


def _logistic_design(x: np.ndarray, impute_values: np.ndarray, *, indicators: bool) -> np.ndarray:
    missing = np.isnan(x)
    imputed = np.where(missing, impute_values, x)
    return np.hstack([imputed, missing.astype(np.float64)]) if indicators else imputed
