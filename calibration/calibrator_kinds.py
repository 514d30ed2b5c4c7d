"""The four calibrator kinds (isotonic, Platt, temperature, histogram) and the registry of them by name."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize, minimize_scalar
from sklearn.isotonic import IsotonicRegression

from calibration._calibrator_base import BaseCalibrator, sigmoid
from calibration._validation import (
    FloatArray,
    check_int,
    check_number,
    check_probabilities,
    json_float,
    json_float_list,
)

__all__ = [
    "CALIBRATORS",
    "HistogramCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "calibrator_class",
    "calibrator_from_dict",
    "make_calibrator",
]


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
            residual = sigmoid(z) - target
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
        return sigmoid(self.a_ * s + self.b_)

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
        return sigmoid(self._logits(s) / self.temperature_)

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


def calibrator_class(kind: Any) -> type[BaseCalibrator]:
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
    return calibrator_class(kind)(**params)


def calibrator_from_dict(data: Mapping[str, Any]) -> BaseCalibrator:
    """Rebuild any saved calibrator, dispatching on ``data["kind"]``.

    Raises
    ------
    ValueError
        If ``data`` is not a mapping, its kind is unknown, or the class's ``from_dict`` rejects it.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a saved calibrator must be a mapping; got {type(data).__name__}")
    return calibrator_class(data.get("kind")).from_dict(data)
