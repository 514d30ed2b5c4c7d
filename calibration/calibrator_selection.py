"""Choosing a calibrator kind: cross-validated log-loss of each kind, and the winner among those allowed."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from calibration._calibrator_base import BaseCalibrator, check_fit_data
from calibration._validation import FloatArray, check_int
from calibration.calibrator_kinds import calibrator_class

__all__ = ["ORDER_PRESERVING", "best_calibrator_kind", "best_of", "compare_calibrators"]

logger = logging.getLogger(__name__)

ORDER_PRESERVING = ("platt", "temperature")
"""The kinds that keep every distinct fused score distinct (strictly increasing maps).

Isotonic regression and histogram binning map whole ranges of scores to one value: the ordering inside
each range is lost, and decision thresholds can only cut between the ranges. Cross-fitted on the embedded
model's 883 questions (``benchmarks/results/quality.md``, "Calibrator choice and ranking"), the fused
score ranks at AUROC 0.829 before calibration and 0.829 after temperature scaling, but 0.793 after
histogram binning, which had won the log-loss comparison in some folds by <= 0.003. So
``gate calibrate --calibrator auto`` chooses among these only.
"""


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
    s, y = check_fit_data(scores, y_correct)
    classes = [calibrator_class(kind) for kind in kinds]
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
