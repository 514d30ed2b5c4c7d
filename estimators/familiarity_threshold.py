"""The familiarity threshold of SELF-FAMILIARITY, estimated from the scores of well-known concepts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from estimators._checks import check_positive_int

__all__ = ["ThresholdEstimate", "estimate_threshold"]


@dataclass(frozen=True)
class ThresholdEstimate:
    """A familiarity threshold: the midpoint of the bootstrap 95% interval of a low percentile."""

    threshold: float
    ci_low: float
    ci_high: float
    n: int


def estimate_threshold(
    scores: Sequence[float], *, percentile: float = 5.0, n_resamples: int = 1000, seed: int = 0
) -> ThresholdEstimate:
    """The familiarity threshold of SELF-FAMILIARITY: the midpoint of a bootstrap 95% interval of a low
    percentile of the scores of well-known concepts.

    A percentile bootstrap (the paper used ``scipy.stats.bootstrap``, whose default is BCa): the
    ``percentile``-th percentile is recomputed on ``n_resamples`` resamples drawn with replacement, and
    the interval is the 2.5th to 97.5th percentile of those values.

    Parameters
    ----------
    scores : sequence of float
        Familiarity scores of concepts the model should know (:func:`score_common_concepts`).
    percentile : float, default 5.0
        Which low percentile marks the edge of familiarity, in (0, 100).
    n_resamples : int, default 1000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the resampling.

    Returns
    -------
    ThresholdEstimate

    Raises
    ------
    ValueError
        If ``scores`` is empty or not finite, or an option is out of range.

    Examples
    --------
    >>> estimate_threshold([0.5] * 10)
    ThresholdEstimate(threshold=0.5, ci_low=0.5, ci_high=0.5, n=10)
    """
    data = np.asarray(scores, dtype=float)
    if data.ndim != 1 or data.size == 0 or not np.all(np.isfinite(data)):
        raise ValueError(f"scores must be a non-empty 1-D sequence of finite numbers, got shape {data.shape}")
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must lie in (0, 100), got {percentile!r}")
    check_positive_int("n_resamples", n_resamples)
    rng = np.random.default_rng(seed)
    resamples = data[rng.integers(0, data.size, size=(n_resamples, data.size))]
    values = np.percentile(resamples, percentile, axis=1)
    low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return ThresholdEstimate(threshold=(low + high) / 2, ci_low=low, ci_high=high, n=int(data.size))
