"""Percentile bootstrap confidence intervals for per-answer metrics.

Why not ``scipy.stats.bootstrap``: a metric here can be undefined on a resample (an AUROC drawn with one
class only, common with a few dozen correct answers), and scipy then returns a NaN interval (checked with
scipy 1.17, percentile method); here such resamples are dropped, and the interval is NaN only when more
than half of them are undefined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from calibration._validation import check_int, check_number

__all__ = ["Interval", "bootstrap_interval", "percentile_interval"]

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A metric value with a bootstrap confidence interval.

    Attributes
    ----------
    value : float
        The metric computed on the full data.
    low, high : float
        Lower and upper percentile bounds; NaN when too few resamples gave a defined value.
    """

    value: float
    low: float
    high: float


def bootstrap_interval(
    metric: Metric,
    y_correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric`` by resampling rows with replacement.

    Parameters
    ----------
    metric : callable
        ``metric(y_correct, confidence) -> float``; bind options with :func:`functools.partial`.
        It is called once on the full data first, so it validates the inputs.
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Score of each answer, aligned with ``y_correct``.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence_level : float, default=0.95
        Coverage of the interval, in (0, 1).
    seed : int, default=0
        Seed of the resampling; the same seed gives the same interval.

    Returns
    -------
    Interval
        ``value`` on the full data and the percentile bounds ``low``, ``high``.
        Resamples on which the metric is NaN (for example a single class for AUROC) are dropped;
        if fewer than half of them remain, ``low`` and ``high`` are NaN rather than a biased interval.

    Examples
    --------
    >>> from calibration.metrics import brier_score
    >>> iv = bootstrap_interval(brier_score, [1, 0, 1, 1], [0.9, 0.2, 0.6, 0.8], n_resamples=200)
    >>> iv.low <= iv.value <= iv.high
    True
    """
    value = float(metric(y_correct, confidence))
    y = np.asarray(y_correct)
    c = np.asarray(confidence)
    low, high = percentile_interval(
        lambda rows: metric(y[rows], c[rows]),
        len(y),
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
    )
    return Interval(value=value, low=low, high=high)


def percentile_interval(
    statistic: Callable[[np.ndarray], float],
    n_rows: int,
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap bounds of ``statistic(rows)`` over resampled row indices.

    Parameters
    ----------
    statistic : callable
        ``statistic(rows) -> float`` for an integer array of row indices (drawn with replacement).
    n_rows : int
        Number of rows to resample from.
    n_resamples, confidence_level, seed
        As in :func:`bootstrap_interval`.

    Returns
    -------
    tuple of float
        ``(low, high)``; NaN when more than half of the resamples gave NaN.
    """
    check_int(n_resamples, "n_resamples")
    check_number(confidence_level, "confidence_level", low=0.0, high=1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(seed)
    # One resample at a time: a (n_resamples, n) index matrix would not fit in memory for large n.
    values = np.array([statistic(rng.integers(0, n_rows, n_rows)) for _ in range(n_resamples)])
    values = values[~np.isnan(values)]
    if 2 * len(values) < n_resamples:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence_level
    low, high = np.quantile(values, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)
