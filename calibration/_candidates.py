"""What every way of choosing a threshold shares: the levels, the data, the candidates, and the result.

A candidate threshold ``t`` "answers" the rows with ``p >= t``. :func:`candidates` lists the candidates
from strict to permissive with the rows each answers and the errors among them; the choosers in
:mod:`calibration.risk_control` and :mod:`calibration.thresholds` differ only in which candidate they
take, and all report it as a :class:`ThresholdResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration._validation import (
    FloatArray,
    as_binary_labels,
    as_float_array,
    check_number,
    check_probabilities,
    is_number,
    require_keys,
)

# Fine enough that the default grid never leaves a gap wider than 0.001 between candidate thresholds.
GRID_POINTS = 1001


@dataclass(frozen=True)
class ThresholdResult:
    """One chosen boundary and what it does on the data it was chosen on.

    Attributes
    ----------
    threshold : float or None
        Rows with ``p >= threshold`` are answered (for this boundary); None when the target is infeasible.
    method : str
        ``"ltt:binomial"``, ``"ltt:hoeffding_bentkus"``, ``"crc"`` or ``"balance"``.
    alpha : float
        The allowed risk, ``1 - target_level``; NaN for ``"balance"``, which has no target.
    delta : float or None
        ``1 - confidence_level`` for LTT; None for methods without one.
    feasible : bool
    empirical_risk : float
        Error rate among rows with ``p >= threshold`` on the given data; NaN when none is selected.
    coverage : float
        Fraction of rows with ``p >= threshold`` (0 when infeasible).
    n : int
        Rows the choice was made on.
    message : str
        What the result means, or why the target is infeasible and what it would take.
    """

    threshold: float | None
    method: str
    alpha: float
    delta: float | None
    feasible: bool
    empirical_risk: float
    coverage: float
    n: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON types; NaN becomes None (strict JSON has no NaN)."""
        return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdResult:
        """Rebuild a result from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If keys are missing or extra, or a field has the wrong type.
        """
        require_keys(data, [f.name for f in fields(cls)], "a saved ThresholdResult")
        for key in ("threshold", "alpha", "delta", "empirical_risk", "coverage"):
            if data[key] is not None and (not is_number(data[key]) or math.isnan(data[key])):
                raise ValueError(f"ThresholdResult {key!r} must be a number or null; got {data[key]!r}")
        if not isinstance(data["feasible"], bool) or not isinstance(data["n"], int) or isinstance(data["n"], bool):
            raise ValueError(f"'feasible' must be a bool and 'n' an int; got {data['feasible']!r}, {data['n']!r}")
        if not isinstance(data["method"], str) or not isinstance(data["message"], str):
            raise ValueError("'method' and 'message' must be strings")
        values = dict(data)
        for key in ("alpha", "empirical_risk", "coverage"):
            values[key] = math.nan if data[key] is None else float(data[key])
        for key in ("threshold", "delta"):
            values[key] = None if data[key] is None else float(data[key])
        return cls(**values)


def risk_levels(target_level: float, confidence_level: float | None = None) -> tuple[float, float | None]:
    """(alpha, delta) from (target_level, confidence_level): the one place the public levels are converted."""

    def one_minus(level: float, name: str) -> float:
        check_number(level, name, low=0.0, high=1.0, low_open=True, high_open=True)
        # Decimal keeps 1 - 0.9 at 0.1 instead of 0.09999999999999998, as MAPIE does.
        return float(Decimal(1) - Decimal(str(level)))

    alpha = one_minus(target_level, "target_level")
    return alpha, None if confidence_level is None else one_minus(confidence_level, "confidence_level")


def check_probs(probs: ArrayLike) -> FloatArray:
    """``probs`` as a 1-D float array of probabilities in [0, 1], or a ``ValueError``."""
    return check_probabilities(as_float_array(probs, "probs"), "probs")


def check_data(probs: ArrayLike, y_correct: ArrayLike) -> tuple[FloatArray, NDArray[np.int64]]:
    """Validated probabilities and the matching error indicators (1 = wrong)."""
    p = check_probs(probs)
    return p, 1 - as_binary_labels(y_correct, "y_correct", n_rows=p.shape[0], per="score")


def candidates(p: FloatArray, err: NDArray[np.int64], grid: ArrayLike | None) -> tuple[FloatArray, NDArray, NDArray]:
    """Candidate thresholds, strict (high) to permissive (low), with the rows each answers and their errors.

    The default grid is every observed probability plus :data:`GRID_POINTS` evenly spaced points in [0, 1].
    """
    values = np.concatenate([p, np.linspace(0.0, 1.0, GRID_POINTS)]) if grid is None else as_float_array(grid, "grid")
    thresholds = np.unique(values)[::-1]
    order = np.argsort(p, kind="stable")
    # errors_at_or_above[k] = errors among the rows from sorted position k upwards.
    errors_at_or_above = np.append(np.cumsum(err[order][::-1])[::-1], 0)
    first = np.searchsorted(p[order], thresholds, side="left")
    return thresholds, p.size - first, errors_at_or_above[first]


def minimum_abstention(base_error: float, alpha: float) -> float:
    """The abstention rate any method needs for an error rate among answered of at most ``alpha``.

    Even an oracle that abstains only on wrong answers must withhold ``(mu - alpha) / (1 - alpha)`` of
    the inputs when the base error rate ``mu`` exceeds ``alpha``; otherwise nothing.

    Parameters
    ----------
    base_error : float
        Error rate over all requests, in [0, 1].
    alpha : float
        Allowed error rate among answered, in [0, 1).

    Returns
    -------
    float
        ``max(0, (base_error - alpha) / (1 - alpha))``.
    """
    check_number(base_error, "base_error", low=0.0, high=1.0)
    check_number(alpha, "alpha", low=0.0, high=1.0, high_open=True)
    return max(0.0, (base_error - alpha) / (1.0 - alpha))


def feasible(
    t: float, p: FloatArray, err: NDArray, *, method: str, alpha: float, delta: float | None, message: str
) -> ThresholdResult:
    """The result for threshold ``t``, with its empirical risk and coverage on these rows."""
    selected = p >= t
    n_sel = int(selected.sum())
    risk = float(err[selected].mean()) if n_sel else math.nan
    return ThresholdResult(float(t), method, alpha, delta, True, risk, n_sel / p.size, int(p.size), message)


def infeasible(
    err: NDArray, *, method: str, alpha: float, delta: float | None, reason: str, among_answered: bool = True
) -> ThresholdResult:
    """An infeasible result; ``among_answered`` when alpha bounds the error rate among answered requests."""
    mu = float(err.mean())
    need = minimum_abstention(mu, alpha) if among_answered else 0.0
    if need > 0.0:
        message = (
            f"Target infeasible: the base error rate is {mu:.3g}, above the allowed {alpha:.3g}, so any method "
            f"must abstain on at least {need:.1%} of requests (minimum abstention (mu - alpha) / (1 - alpha) = "
            f"{need:.3f}). {reason}"
        )
    else:
        message = f"Target infeasible on this data: {reason}"
    return ThresholdResult(None, method, alpha, delta, False, math.nan, 0.0, int(err.size), message)
