"""Fusion: map the per-signal confidences of a request to one score, P(answer is correct).

Each row of ``X`` holds one request's signal confidences (token log-prob confidence, sample agreement,
verbalized confidence, P(True), familiarity, PACE, ...), each in [0, 1], with NaN where a signal is
missing because its estimator failed or the cost cascade skipped it. Any subset may be missing, so every
model here predicts from any pattern of NaNs.

- :class:`LogisticFusion` (the default): mean imputation plus one missing-indicator per signal,
  standardisation, L2 logistic regression.
- :class:`BoostedFusion`: gradient-boosted trees, which route NaN down a learned branch.
- :class:`WeightedMeanFusion`: no training, the weighted mean of the signals present.

The output is a score, not yet a calibrated probability: a calibrator fitted on a separate split maps it
to one (``DESIGN.md``, "Fusion, calibration, decision"). Models persist as JSON-able dicts
(:meth:`~LogisticFusion.to_dict`, :func:`fusion_from_dict`); loading one never runs code, and all three
predict from their learned arrays with numpy alone, so a loaded model scores exactly like the fitted one.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from calibration._tree_export import ExportedTree, export_trees, predict_raw, tree_from_json, tree_to_json
from calibration._validation import (
    as_binary_labels,
    as_float_array,
    check_int,
    check_number,
    check_probabilities,
    json_float,
    json_float_list,
    read_saved_header,
    require_both_classes,
)

__all__ = [
    "FUSIONS",
    "BoostedFusion",
    "LogisticFusion",
    "WeightedMeanFusion",
    "coefficients_table",
    "fusion_from_dict",
    "make_fusion",
]

FORMAT_VERSION = 1
# The score a row gets when no signal is present: no evidence either way (see WeightedMeanFusion).
NO_EVIDENCE_SCORE = 0.5
# The imputation value of a signal never observed in training: the midpoint of the confidence scale.
_UNOBSERVED_IMPUTE = 0.5
_LBFGS_MAX_ITER = 1000


class _BaseFusion(BaseEstimator):
    """The shared contract: validation, the fitted check, predict_proba / predict_score, persistence header."""

    kind: ClassVar[str]

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name for the data
        """Probability of each class for every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Signal confidences, NaN where a signal is missing.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Column 0 is P(incorrect), column 1 is P(correct); each row sums to 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is neither fitted nor loaded with ``from_dict``.
        ValueError
            If ``X`` is not 2-D, holds infinities, or has a different number of columns than in ``fit``.
        """
        check_is_fitted(self)
        x = _check_signals(X)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} signals per row, but this {type(self).__name__} was fitted with "
                f"{self.n_features_in_} ({', '.join(self._signal_names())})"
            )
        score = self._predict_positive(x)
        return np.column_stack([1.0 - score, score])

    def predict_score(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name for the data
        """P(correct) for every row: ``predict_proba(X)[:, 1]``, shape (n_samples,)."""
        return self.predict_proba(X)[:, 1]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict` output (e.g. after a JSON round trip).

        Parameters
        ----------
        data : mapping
            What ``to_dict`` returned, with this class's ``kind``.

        Returns
        -------
        A fitted model that predicts exactly as the one that was saved.

        Raises
        ------
        ValueError
            If the kind, format version, parameters, feature names, array lengths or values are not valid.
        """
        params, n_features, names = _read_header(data, cls)
        fusion = cls(**params)
        fusion._check_params()
        fusion.n_features_in_ = n_features
        if names is not None:
            fusion.feature_names_in_ = names
        fusion._load_learned(data)
        return fusion

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as a dict of JSON types (``json.dumps`` works on it as is).

        Returns
        -------
        dict
            ``kind``, ``format_version``, ``params`` (the constructor arguments), ``feature_names``
            (a list, or None when fitted without names), ``n_features`` and the learned arrays as lists.
        """
        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "params": self._params_to_json(),
            "feature_names": None if names is None else [str(name) for name in names],
            "n_features": int(self.n_features_in_),
            **self._learned_to_json(),
        }

    def _fit_data(self, X: Any, y: Any, feature_names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803 - scikit-learn's name for the data
        """The start of a supervised fit: check parameters, signals and labels, and record the signals."""
        self._check_params()
        x = _check_signals(X)
        labels = _check_labels(y, x.shape[0])
        self._set_signals(x, feature_names)
        return x, labels

    def _set_signals(self, x: np.ndarray, feature_names: Sequence[str] | None) -> None:
        names = _check_feature_names(feature_names, x.shape[1])
        self.n_features_in_ = x.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            # A refit without names must not keep the names of an earlier fit.
            del self.feature_names_in_

    def _signal_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [f"x{i}" for i in range(self.n_features_in_)] if names is None else [str(n) for n in names]

    def _check_params(self) -> None:
        raise NotImplementedError

    def _predict_positive(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _params_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _learned_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        return params


class LogisticFusion(_BaseFusion):
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

    def __init__(
        self,
        *,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name for the inverse regularisation strength
        missing_indicators: bool = True,
        class_weight: Any = None,
    ) -> None:
        self.C = C
        self.missing_indicators = missing_indicators
        self.class_weight = class_weight

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
        design = _logistic_design(x, self.impute_values_, indicators=self.missing_indicators)
        return _sigmoid((design - self.mean_) / self.scale_ @ self.coef_ + self.intercept_)

    def _check_params(self) -> None:
        check_number(self.C, "C", low=0.0, low_open=True)
        if not isinstance(self.missing_indicators, bool | np.bool_):
            raise ValueError(f"missing_indicators must be True or False; got {self.missing_indicators!r}")
        _check_class_weight(self.class_weight)

    def _params_to_json(self) -> dict[str, Any]:
        class_weight = self.class_weight
        if isinstance(class_weight, Mapping):
            # JSON object keys are strings; from_dict turns "0"/"1" back into the class labels.
            class_weight = {str(int(label)): float(weight) for label, weight in class_weight.items()}
        return {"C": float(self.C), "missing_indicators": bool(self.missing_indicators), "class_weight": class_weight}

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


class BoostedFusion(_BaseFusion):
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
        return _sigmoid(predict_raw(x, self.trees_, self.baseline_))

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


class WeightedMeanFusion(_BaseFusion):
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
        x = _check_unit_interval(_check_signals(X))
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


FUSIONS: dict[str, type[_BaseFusion]] = {
    LogisticFusion.kind: LogisticFusion,
    BoostedFusion.kind: BoostedFusion,
    WeightedMeanFusion.kind: WeightedMeanFusion,
}


def make_fusion(kind: str, **params: Any) -> _BaseFusion:
    """An unfitted fusion of the named kind.

    Parameters
    ----------
    kind : {"logistic", "boosted", "weighted_mean"}
    **params
        Constructor parameters of that kind.

    Raises
    ------
    ValueError
        If ``kind`` is unknown (the message lists the valid kinds).
    TypeError
        If a parameter is not one the kind takes (the message lists those it takes).
    """
    cls = _fusion_class(kind)
    valid = _param_names(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise TypeError(f"{cls.__name__} got unknown parameters {unknown}; valid: {valid}")
    return cls(**params)


def fusion_from_dict(data: Mapping[str, Any]) -> _BaseFusion:
    """Rebuild any fusion from :meth:`to_dict` output, dispatching on its ``kind``.

    Raises
    ------
    ValueError
        If ``data`` is not a mapping, its kind is unknown, or the class's ``from_dict`` refuses it.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a saved fusion must be a mapping with a 'kind'; got {type(data).__name__}")
    return _fusion_class(data.get("kind")).from_dict(data)


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


def _fusion_class(kind: Any) -> type[_BaseFusion]:
    if kind not in FUSIONS:
        raise ValueError(f"Unknown fusion kind {kind!r}; valid: {sorted(FUSIONS)}")
    return FUSIONS[kind]


def _param_names(cls: type[_BaseFusion]) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def _read_header(data: Any, cls: type[_BaseFusion]) -> tuple[dict[str, Any], int, np.ndarray | None]:
    """Validate the fields every saved fusion shares; return (params, n_features, feature names)."""
    params = read_saved_header(
        data, owner=cls.__name__, kind=cls.kind, format_version=FORMAT_VERSION, params=_param_names(cls)
    )
    n_features = check_int(data.get("n_features"), "n_features")
    return cls._params_from_json(params), n_features, _check_feature_names(data.get("feature_names"), n_features)


def _check_signals(values: Any) -> np.ndarray:
    hint = " (one row per request, one column per signal: a single request is X.reshape(1, -1))"
    return as_float_array(values, "X", ndim=2, allow_nan=True, hint=hint)


def _check_labels(y: Any, n_samples: int) -> np.ndarray:
    labels = as_binary_labels(y, "y", n_rows=n_samples, per="row of X")
    require_both_classes(labels, "y")
    return labels


def _check_unit_interval(x: np.ndarray) -> np.ndarray:
    return check_probabilities(x, "signals", hint=" (NaN marks a missing signal)")


def _check_feature_names(names: Any, n_features: int) -> np.ndarray | None:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence | np.ndarray):
        raise ValueError(f"feature_names must be a sequence of strings; got {names!r}")
    names = list(names)
    if len(names) != n_features or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"feature_names must be {n_features} non-empty strings, one per column; got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"feature_names must be unique; got {names!r}")
    return np.array(names, dtype=object)


def _check_class_weight(class_weight: Any) -> None:
    if class_weight is None or class_weight == "balanced":
        return
    if not isinstance(class_weight, Mapping) or not set(class_weight) <= {0, 1}:
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{0: w, 1: w}}; got {class_weight!r}")
    for label, weight in class_weight.items():
        check_number(weight, f"class_weight[{label}]", low=0.0, low_open=True)


def _check_weight_vector(weights: np.ndarray) -> None:
    if not np.isfinite(weights).all() or (weights < 0).any() or not (weights > 0).any():
        raise ValueError(f"weights must be finite, >= 0 and not all 0; got {weights.tolist()}")


def _observed_means(x: np.ndarray) -> np.ndarray:
    observed = ~np.isnan(x)
    counts = observed.sum(axis=0)
    sums = np.where(observed, x, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(x.shape[1], _UNOBSERVED_IMPUTE), where=counts > 0)


def _logistic_design(x: np.ndarray, impute_values: np.ndarray, *, indicators: bool) -> np.ndarray:
    missing = np.isnan(x)
    imputed = np.where(missing, impute_values, x)
    return np.hstack([imputed, missing.astype(np.float64)]) if indicators else imputed


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))) never overflows, for any sign of z.
    return np.exp(-np.logaddexp(0.0, -z))
