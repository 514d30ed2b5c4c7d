"""Calibrators: map a fused score to a calibrated probability that the answer is correct.

Four one-dimensional calibrators share one contract:

- :class:`IsotonicCalibrator`: a monotone step-and-ramp fit (pool adjacent violators), stored as knots.
- :class:`PlattCalibrator`: ``p = sigmoid(a * s + b)`` on the raw score.
- :class:`TemperatureCalibrator`: ``p = sigmoid(logit(s) / T)`` for scores that already are probabilities.
- :class:`HistogramCalibrator`: equal-mass bins, each predicting its smoothed empirical accuracy.

Each is fitted on a labelled calibration split (separate from the one the fusion was fitted on, see
``DESIGN.md``), predicts from its learned numbers with numpy alone, and persists as a dict of JSON types;
``from_dict`` validates the dict and rebuilds a calibrator that predicts exactly like the saved one.
:func:`compare_calibrators` scores each kind by cross-validated log-loss so the winner is chosen on
held-out folds, never on the rows it was fitted on.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize, minimize_scalar
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from calibration._validation import (
    FloatArray,
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
    "CALIBRATORS",
    "ORDER_PRESERVING",
    "BaseCalibrator",
    "HistogramCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "best_calibrator_kind",
    "best_of",
    "calibrator_from_dict",
    "compare_calibrators",
    "make_calibrator",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ORDER_PRESERVING = ("platt", "temperature")
"""The kinds that keep every distinct fused score distinct (strictly increasing maps).

Isotonic regression and histogram binning map whole ranges of scores to one value: the ordering inside
each range is lost, and decision thresholds can only cut between the ranges. Cross-fitted on the embedded
model's 883 questions (``benchmarks/results/quality.md``, "Calibrator choice and ranking"), the fused
score ranks at AUROC 0.829 before calibration and 0.829 after temperature scaling, but 0.793 after
histogram binning, which had won the log-loss comparison in some folds by <= 0.003. So
``gate calibrate --calibrator auto`` chooses among these only.
"""


def _sigmoid(z: FloatArray) -> FloatArray:
    # exp(-log(1 + exp(-z))) never overflows, unlike 1 / (1 + exp(-z)) for very negative z.
    return np.exp(-np.logaddexp(0.0, -z))


def _check_fit_data(scores: ArrayLike, y_correct: ArrayLike) -> tuple[FloatArray, NDArray[np.int64]]:
    s = as_float_array(scores, "scores")
    y = as_binary_labels(y_correct, "y_correct", n_rows=s.shape[0], per="score")
    if s.shape[0] < 2:
        raise ValueError(f"a calibrator needs at least 2 rows; got {s.shape[0]}")
    require_both_classes(y, "y_correct")
    return s, y


class BaseCalibrator(BaseEstimator):
    """The shared contract: validation, the fitted check, ``predict`` and JSON persistence.

    Subclasses set ``kind`` and implement ``_fit``, ``_predict``, ``_learned_to_json`` and
    ``_load_learned``; constructor arguments are their only parameters.

    Attributes
    ----------
    n_samples_ : int
        Rows seen by ``fit`` (or recorded in the loaded dict).
    """

    kind: ClassVar[str]

    def fit(self, scores: ArrayLike, y_correct: ArrayLike) -> Self:
        """Learn the map from score to P(correct).

        Parameters
        ----------
        scores : array-like of shape (n_samples,)
            Fused scores, higher meaning more likely correct.
        y_correct : array-like of shape (n_samples,)
            1 (or True) where the answer was correct, else 0.

        Returns
        -------
        self
            The fitted calibrator.

        Raises
        ------
        ValueError
            If the inputs are not 1-D and of equal length, hold non-finite scores or non-binary labels,
            have fewer than 2 rows or a single class, or the parameters are invalid.
        """
        self._check_params()
        s, y = _check_fit_data(scores, y_correct)
        self._check_scores(s)
        self._fit(s, y)
        self.n_samples_ = int(s.shape[0])
        return self

    def predict(self, scores: ArrayLike) -> FloatArray:
        """Calibrated P(correct) for each score.

        Parameters
        ----------
        scores : array-like of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,)
            Probabilities in [0, 1].

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the calibrator is neither fitted nor loaded with ``from_dict``.
        """
        check_is_fitted(self)
        s = as_float_array(scores, "scores")
        self._check_scores(s)
        return np.clip(self._predict(s), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """The fitted calibrator as a dict of JSON types (``json.dumps`` works on it as is).

        Returns
        -------
        dict
            ``kind``, ``format_version``, ``params`` (the constructor arguments), ``n_samples`` and the
            learned numbers (see each class).
        """
        check_is_fitted(self)
        # The parameter checks accept numpy scalars (np.int64 bins), which json.dumps does not.
        params = {key: v.item() if isinstance(v, np.generic) else v for key, v in self.get_params().items()}
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "params": params,
            "n_samples": self.n_samples_,
            **self._learned_to_json(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a fitted calibrator from :meth:`to_dict` output (e.g. after a JSON round trip).

        Parameters
        ----------
        data : mapping
            What ``to_dict`` returned, with this class's ``kind``.

        Returns
        -------
        A fitted calibrator whose predictions are identical to the saved one's.

        Raises
        ------
        ValueError
            If the kind, format version, parameters, learned numbers or their lengths are not valid.
        """
        params = read_saved_header(
            data, owner=cls.__name__, kind=cls.kind, format_version=FORMAT_VERSION, params=cls().get_params()
        )
        n_samples = check_int(data.get("n_samples"), "n_samples", minimum=2)
        calibrator = cls(**params)
        calibrator._check_params()
        calibrator._load_learned(data)
        calibrator.n_samples_ = n_samples
        return calibrator

    def _check_params(self) -> None:
        """Raise ValueError for invalid constructor arguments (none by default)."""

    def _check_scores(self, s: FloatArray) -> None:
        """Raise ValueError for scores this kind cannot use (any finite score by default)."""

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        raise NotImplementedError

    def _predict(self, s: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _learned_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        raise NotImplementedError


class IsotonicCalibrator(BaseCalibrator):
    """Monotone non-decreasing calibration by isotonic regression.

    Predictions interpolate linearly between the knots (``np.interp``) and are constant beyond the
    first and last knot, exactly like ``sklearn.isotonic.IsotonicRegression(out_of_bounds="clip")``.

    Attributes
    ----------
    x_knots_ : ndarray
        Strictly increasing scores of the knots.
    y_knots_ : ndarray
        Non-decreasing probabilities at the knots, in [0, 1].
    n_samples_ : int

    Examples
    --------
    >>> cal = IsotonicCalibrator().fit([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1])
    >>> cal.predict([0.0, 0.5, 1.0]).tolist()
    [0.0, 0.5, 1.0]
    """

    kind = "isotonic"

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
        self.x_knots_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_knots_ = np.asarray(iso.y_thresholds_, dtype=np.float64)

    def _predict(self, s: FloatArray) -> FloatArray:
        return np.interp(s, self.x_knots_, self.y_knots_)

    def _learned_to_json(self) -> dict[str, Any]:
        return {"x": self.x_knots_.tolist(), "y": self.y_knots_.tolist()}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        x = json_float_list(data, "x")
        y = json_float_list(data, "y", low=0.0, high=1.0)
        if x.shape != y.shape:
            raise ValueError(f"'x' and 'y' knots must have the same length; got {x.size} and {y.size}")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("isotonic knots must have strictly increasing 'x' and non-decreasing 'y'")
        self.x_knots_, self.y_knots_ = x, y


class PlattCalibrator(BaseCalibrator):
    """Platt scaling: ``p = sigmoid(a * score + b)``.

    Fitted by maximum likelihood against Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and
    ``1 / (N- + 2)``, as in ``sklearn.calibration``, so that ``a`` stays finite when the scores separate
    the classes perfectly.

    Attributes
    ----------
    a_ : float
        Slope on the score (positive when higher scores mean more often correct).
    b_ : float
        Intercept.
    n_samples_ : int
    """

    kind = "platt"

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1.0 / (n_neg + 2))
        # Standardising the score keeps L-BFGS well conditioned for scores on any scale (logits, 0-100, ...).
        center = float(s.mean())
        scale = float(s.std()) or 1.0
        u = (s - center) / scale

        def loss_and_grad(theta: FloatArray) -> tuple[float, FloatArray]:
            z = theta[0] * u + theta[1]
            residual = _sigmoid(z) - target
            value = float(np.sum(np.logaddexp(0.0, z) - target * z))
            return value, np.array([residual @ u, residual.sum()])

        prior = math.log((n_pos + 1) / (n_neg + 1))
        result = minimize(loss_and_grad, x0=np.array([0.0, prior]), jac=True, method="L-BFGS-B")
        if not result.success:
            warnings.warn(f"Platt scaling did not converge: {result.message}", RuntimeWarning, stacklevel=3)
        slope, intercept = (float(v) for v in result.x)
        self.a_ = slope / scale
        self.b_ = intercept - slope * center / scale

    def _predict(self, s: FloatArray) -> FloatArray:
        return _sigmoid(self.a_ * s + self.b_)

    def _learned_to_json(self) -> dict[str, Any]:
        return {"a": self.a_, "b": self.b_}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        self.a_ = json_float(data, "a")
        self.b_ = json_float(data, "b")


class TemperatureCalibrator(BaseCalibrator):
    """Temperature scaling of a probability: ``p = sigmoid(logit(score) / T)``.

    Scores must lie in [0, 1]; they are clipped to ``[eps, 1 - eps]`` before the logit so that a score of
    exactly 0 or 1 maps to a finite logit. ``T`` minimises the log-loss over ``[T_MIN, T_MAX]`` (bounded
    scalar search on ``log T``). ``T > 1`` softens over-confident scores, ``T < 1`` sharpens timid ones.

    Parameters
    ----------
    eps : float, default=1e-6
        Clipping distance from 0 and 1, in (0, 0.5).

    Attributes
    ----------
    temperature_ : float
    n_samples_ : int
    """

    kind = "temperature"
    T_MIN: ClassVar[float] = 1e-2
    T_MAX: ClassVar[float] = 1e2

    def __init__(self, *, eps: float = 1e-6) -> None:
        self.eps = eps

    def _check_params(self) -> None:
        check_number(self.eps, "eps", low=0.0, high=0.5, low_open=True, high_open=True)

    def _check_scores(self, s: FloatArray) -> None:
        check_probabilities(s, "scores", hint=" (TemperatureCalibrator; use PlattCalibrator for unbounded scores)")

    def _logits(self, s: FloatArray) -> FloatArray:
        clipped = np.clip(s, self.eps, 1.0 - self.eps)
        return np.log(clipped) - np.log1p(-clipped)

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        z = self._logits(s)

        def mean_log_loss(log_t: float) -> float:
            zt = z * math.exp(-log_t)
            return float(np.mean(np.logaddexp(0.0, zt) - y * zt))

        bounds = (math.log(self.T_MIN), math.log(self.T_MAX))
        result = minimize_scalar(mean_log_loss, bounds=bounds, method="bounded", options={"xatol": 1e-8})
        self.temperature_ = float(math.exp(result.x))

    def _predict(self, s: FloatArray) -> FloatArray:
        return _sigmoid(self._logits(s) / self.temperature_)

    def _learned_to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        self.temperature_ = json_float(data, "temperature", low=self.T_MIN, high=self.T_MAX)


class HistogramCalibrator(BaseCalibrator):
    """Histogram binning with equal-mass bins.

    Bin edges are quantiles of the training scores (ties collapse bins, so there may be fewer than
    ``n_bins``). Each bin predicts its accuracy shrunk towards the overall accuracy,
    ``(correct + prior_strength * base_rate) / (count + prior_strength)``, so a bin with one or zero rows
    predicts something near the base rate instead of exactly 0 or 1. Scores below the first edge use the
    first bin, above the last edge the last bin; an edge belongs to the bin on its right.

    Parameters
    ----------
    n_bins : int, default=10
        Number of equal-mass bins, at least 1.
    prior_strength : float, default=2.0
        Pseudo-count of the base-rate prior in every bin, > 0.

    Attributes
    ----------
    bin_edges_ : ndarray of shape (n_used_bins + 1,)
        Non-decreasing edges, from the smallest to the largest training score.
    bin_values_ : ndarray of shape (n_used_bins,)
        Predicted probability of each bin.
    n_samples_ : int
    """

    kind = "histogram"

    def __init__(self, *, n_bins: int = 10, prior_strength: float = 2.0) -> None:
        self.n_bins = n_bins
        self.prior_strength = prior_strength

    def _check_params(self) -> None:
        check_int(self.n_bins, "n_bins")
        check_number(self.prior_strength, "prior_strength", low=0.0, low_open=True)

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, self.n_bins + 1)))
        if edges.size == 1:
            # All scores equal: one bin, kept as a (degenerate) pair of edges so the format has no special case.
            edges = np.repeat(edges, 2)
        n_used = edges.size - 1
        index = _bin_index(s, edges)
        counts = np.bincount(index, minlength=n_used)
        hits = np.bincount(index, weights=y, minlength=n_used)
        self.bin_edges_ = edges
        self.bin_values_ = (hits + self.prior_strength * y.mean()) / (counts + self.prior_strength)

    def _predict(self, s: FloatArray) -> FloatArray:
        return self.bin_values_[_bin_index(s, self.bin_edges_)]

    def _learned_to_json(self) -> dict[str, Any]:
        return {"edges": self.bin_edges_.tolist(), "values": self.bin_values_.tolist()}

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        edges = json_float_list(data, "edges")
        values = json_float_list(data, "values", low=0.0, high=1.0)
        if edges.size < 2 or np.any(np.diff(edges) < 0):
            raise ValueError(f"'edges' must be at least 2 non-decreasing numbers; got {edges.tolist()!r:.80}")
        if values.size != edges.size - 1 or values.size > self.n_bins:
            raise ValueError(
                f"'values' must have one entry per bin (len(edges) - 1 = {edges.size - 1}, at most n_bins = "
                f"{self.n_bins}); got {values.size}"
            )
        self.bin_edges_, self.bin_values_ = edges, values


def _bin_index(s: FloatArray, edges: FloatArray) -> NDArray[np.intp]:
    return np.clip(np.searchsorted(edges, s, side="right") - 1, 0, edges.size - 2)


CALIBRATORS: dict[str, type[BaseCalibrator]] = {
    cls.kind: cls for cls in (IsotonicCalibrator, PlattCalibrator, TemperatureCalibrator, HistogramCalibrator)
}


def _calibrator_class(kind: Any) -> type[BaseCalibrator]:
    try:
        return CALIBRATORS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown calibrator kind {kind!r}; valid: {sorted(CALIBRATORS)}") from None


def make_calibrator(kind: str, **params: Any) -> BaseCalibrator:
    """An unfitted calibrator of the named kind.

    Parameters
    ----------
    kind : {"isotonic", "platt", "temperature", "histogram"}
    **params
        Constructor arguments of that kind (e.g. ``n_bins`` for ``"histogram"``).

    Raises
    ------
    ValueError
        If ``kind`` is not a registered name.
    """
    return _calibrator_class(kind)(**params)


def calibrator_from_dict(data: Mapping[str, Any]) -> BaseCalibrator:
    """Rebuild any saved calibrator, dispatching on ``data["kind"]``.

    Raises
    ------
    ValueError
        If ``data`` is not a mapping, its kind is unknown, or the class's ``from_dict`` rejects it.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a saved calibrator must be a mapping; got {type(data).__name__}")
    return _calibrator_class(data.get("kind")).from_dict(data)


def compare_calibrators(
    scores: ArrayLike,
    y_correct: ArrayLike,
    *,
    kinds: Sequence[str] = ("isotonic", "platt", "temperature", "histogram"),
    n_splits: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Cross-validated log-loss of each calibrator kind, to pick the winner on held-out folds.

    Every kind is fitted on the same stratified training folds and scored on the pooled out-of-fold
    predictions (log-loss with probabilities clipped by ``sklearn.metrics.log_loss``; lower is better).
    When the rarer class has fewer rows than ``n_splits``, fewer folds are used (one rarer-class row per
    fold at the least).

    Parameters
    ----------
    scores, y_correct : array-like of shape (n_samples,)
    kinds : sequence of str
        Registered calibrator names; each is fitted with its default parameters.
    n_splits : int, default=5
        Wanted number of folds, at least 2.
    seed : int, default=0
        Seed of the fold shuffle.

    Returns
    -------
    dict
        Kind to log-loss. NaN where it cannot be computed: every kind when the rarer class has a single
        row (no split keeps both classes in training), a kind that rejects these scores (temperature
        scaling needs scores in [0, 1]).
    """
    s, y = _check_fit_data(scores, y_correct)
    classes = [_calibrator_class(kind) for kind in kinds]
    check_int(n_splits, "n_splits", minimum=2)
    folds = min(n_splits, int(np.bincount(y).min()))
    if folds < 2:
        logger.warning("compare_calibrators: the rarer class has a single row, so no fold can hold it out")
        return dict.fromkeys(kinds, math.nan)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(s.reshape(-1, 1), y))
    return {kind: _cv_log_loss(cls, s, y, splits) for kind, cls in zip(kinds, classes, strict=True)}


def _cv_log_loss(
    cls: type[BaseCalibrator], s: FloatArray, y: NDArray[np.int64], splits: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    held_out = np.empty_like(s)
    try:
        for train, test in splits:
            held_out[test] = cls().fit(s[train], y[train]).predict(s[test])
    except ValueError as exc:
        logger.warning("compare_calibrators: %s cannot be fitted on these scores: %s", cls.kind, exc)
        return math.nan
    return float(log_loss(y, held_out, labels=[0, 1]))


def best_calibrator_kind(scores: ArrayLike, y_correct: ArrayLike, **options: Any) -> str:
    """The kind with the lowest cross-validated log-loss (ties: the first in ``kinds``).

    Parameters
    ----------
    scores, y_correct : array-like of shape (n_samples,)
    **options
        ``kinds``, ``n_splits``, ``seed``, passed to :func:`compare_calibrators`.

    Raises
    ------
    ValueError
        If no kind has a finite cross-validated loss on this data.
    """
    return best_of(compare_calibrators(scores, y_correct, **options))


def best_of(losses: Mapping[str, float], *, among: Sequence[str] | None = None) -> str:
    """The kind with the lowest finite loss in a :func:`compare_calibrators` result (ties: the first).

    Parameters
    ----------
    losses : mapping
        Kind to cross-validated loss.
    among : sequence of str, optional
        Only these kinds may win (e.g. :data:`ORDER_PRESERVING`); the others' losses are ignored.

    Raises
    ------
    ValueError
        If no (allowed) kind has a finite loss.
    """
    finite = {
        kind: loss for kind, loss in losses.items() if math.isfinite(loss) and (among is None or kind in among)
    }
    if not finite:
        allowed = "" if among is None else f" among {list(among)}"
        raise ValueError(f"no calibrator{allowed} could be cross-validated on this data; losses: {losses}")
    return min(finite, key=finite.__getitem__)
