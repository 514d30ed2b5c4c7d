"""Metrics of how well a confidence score ranks and calibrates the correctness of answers.

Every function takes ``y_correct`` (1-D bools or 0/1: was each answer correct) and, where needed,
``confidence`` (1-D scores, higher meaning more likely correct) positionally; options are keyword-only.
Ranking metrics (AUROC, AUPRC, risk-coverage, AURC, PRR, selective accuracy) accept any real scores;
calibration metrics (ECE, MCE, reliability, Brier, log-loss) require probabilities in [0, 1].
The selective-prediction metrics (risk-coverage curve, AURC, E-AURC, PRR, selective accuracy and risk)
live in :mod:`calibration.selective` and are re-exported here, so ``calibration.metrics`` offers them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration._validation import FloatArray, as_binary_labels, check_int, check_number, metric_inputs
from calibration.bootstrap import Interval, bootstrap_interval
from calibration.selective import (
    RiskCoverageCurve,
    _descending_groups,
    _n_answered,
    aurc,
    e_aurc,
    prr,
    risk_coverage_curve,
    selective_accuracy,
    selective_risk,
)

__all__ = [
    "BrierDecomposition",
    "Interval",
    "ReliabilityCurve",
    "RiskCoverageCurve",
    "accuracy",
    "auprc_correct",
    "auprc_error",
    "aurc",
    "auroc",
    "bootstrap_interval",
    "brier_decomposition",
    "brier_score",
    "e_aurc",
    "ece",
    "log_loss",
    "mce",
    "prr",
    "reliability_curve",
    "risk_coverage_curve",
    "selective_accuracy",
    "selective_risk",
    "summarize",
]

Strategy = Literal["uniform", "quantile"]
_STRATEGIES = ("uniform", "quantile")


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin calibration of a confidence score; empty bins are dropped.

    Attributes
    ----------
    mean_confidence, accuracy, count : ndarray of shape (n_nonempty_bins,)
        Mean confidence, fraction correct and number of answers of each non-empty bin.
    edges : ndarray of shape (n_bins + 1,)
        Boundaries of all bins, empty ones included. Bin ``i`` is ``[edges[i], edges[i+1])``, the last one
        closed; the bin of each kept row is ``np.searchsorted(edges[1:-1], mean_confidence, side="right")``.
    """

    mean_confidence: FloatArray
    accuracy: FloatArray
    count: NDArray[np.int64]
    edges: FloatArray


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy decomposition of the Brier score: ``reliability - resolution + uncertainty``.

    Attributes
    ----------
    reliability : float
        Count-weighted mean of ``(mean_confidence - accuracy)**2`` over bins; lower is better.
    resolution : float
        Count-weighted mean of ``(accuracy - base_rate)**2`` over bins; higher is better.
    uncertainty : float
        ``base_rate * (1 - base_rate)``; a property of the data alone.
    """

    reliability: float
    resolution: float
    uncertainty: float


# ---------------------------------------------------------------- validation


def _check_binning(n_bins: int, strategy: str) -> None:
    check_int(n_bins, "n_bins")
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}; got {strategy!r}.")


# ---------------------------------------------------------------- ranking


def accuracy(y_correct: ArrayLike) -> float:
    """Fraction of answers that are correct.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).

    Returns
    -------
    float
    """
    return float(as_binary_labels(y_correct, "y_correct").mean())


def _average_ranks(x: FloatArray) -> FloatArray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def auroc(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Area under the ROC curve of confidence separating correct from wrong answers.

    Computed as the Mann-Whitney statistic with ties counted as one half, which equals
    ``sklearn.metrics.roc_auc_score(y_correct, confidence)``.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        In [0, 1]; 0.5 is chance. NaN when only one class is present (AUROC is undefined).
    """
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(c)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_precision(y: FloatArray, c: FloatArray) -> float:
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    _, sizes, pos = _descending_groups(y, c)
    precision = np.cumsum(pos) / np.cumsum(sizes)
    return float(np.sum(pos / n_pos * precision))


def auprc_correct(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Average precision of retrieving the correct answers, ranked by decreasing confidence.

    Uses the step-wise definition of ``sklearn.metrics.average_precision_score`` (ties form one threshold).

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        In [0, 1]; chance level is the accuracy. NaN when no answer is correct
        (scikit-learn returns 0 with a warning there; the quantity is undefined).
    """
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
    return _average_precision(y, c)


def auprc_error(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Average precision of catching the wrong answers, ranked by increasing confidence.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        Average precision with labels ``1 - y_correct`` and scores ``-confidence``; chance level is the
        error rate. NaN when every answer is correct.
    """
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
    return _average_precision(1.0 - y, -c)


# ---------------------------------------------------------------- calibration


def _bin_stats(
    y: FloatArray, c: FloatArray, n_bins: int, strategy: str
) -> tuple[FloatArray, FloatArray, NDArray[np.int64], FloatArray]:
    """(mean confidence, accuracy, count) of non-empty bins, and all edges."""
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)
    edges = quantiles if strategy == "uniform" else np.quantile(c, quantiles)
    # Same assignment as sklearn.calibration.calibration_curve: [e_i, e_i+1), the last bin closed at 1.
    idx = np.searchsorted(edges[1:-1], c, side="right")
    count = np.bincount(idx, minlength=n_bins)
    keep = count > 0
    sum_conf = np.bincount(idx, weights=c, minlength=n_bins)[keep]
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)[keep]
    return sum_conf / count[keep], sum_y / count[keep], count[keep].astype(np.int64), edges


def reliability_curve(
    y_correct: ArrayLike, confidence: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> ReliabilityCurve:
    """Mean confidence against accuracy in confidence bins, for a reliability diagram.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    n_bins : int, default=10
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins on [0, 1]; ``"quantile"``: equal-mass bins at the quantiles of
        ``confidence`` (tied quantiles give empty bins, which are dropped).

    Returns
    -------
    ReliabilityCurve
    """
    _check_binning(n_bins, strategy)
    y, c = metric_inputs(y_correct, confidence, probabilities=True)
    mean_conf, acc, count, edges = _bin_stats(y, c, n_bins, strategy)
    return ReliabilityCurve(mean_confidence=mean_conf, accuracy=acc, count=count, edges=edges)


def ece(y_correct: ArrayLike, confidence: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform") -> float:
    """Expected calibration error: count-weighted mean of ``|accuracy - mean_confidence|`` over bins.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    n_bins : int, default=10
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins, see :func:`reliability_curve`.

    Returns
    -------
    float
        In [0, 1]; 0 is perfectly calibrated at this binning.

    Examples
    --------
    >>> round(ece([1, 0, 1, 0], [0.1, 0.3, 0.8, 0.9], n_bins=2), 6)
    0.325
    """
    curve = reliability_curve(y_correct, confidence, n_bins=n_bins, strategy=strategy)
    gaps = np.abs(curve.accuracy - curve.mean_confidence)
    return float(np.sum(curve.count * gaps) / np.sum(curve.count))


def mce(y_correct: ArrayLike, confidence: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform") -> float:
    """Maximum calibration error: largest ``|accuracy - mean_confidence|`` over non-empty bins.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    n_bins : int, default=10
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width or equal-mass bins, see :func:`reliability_curve`.

    Returns
    -------
    float
        In [0, 1].
    """
    curve = reliability_curve(y_correct, confidence, n_bins=n_bins, strategy=strategy)
    return float(np.max(np.abs(curve.accuracy - curve.mean_confidence)))


def brier_score(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Mean squared difference between confidence and correctness.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.

    Returns
    -------
    float
        In [0, 1]; lower is better. Equals ``sklearn.metrics.brier_score_loss``.
    """
    y, c = metric_inputs(y_correct, confidence, probabilities=True)
    return float(np.mean((c - y) ** 2))


def brier_decomposition(y_correct: ArrayLike, confidence: ArrayLike, *, n_bins: int = 10) -> BrierDecomposition:
    """Murphy decomposition of the Brier score over equal-width confidence bins.

    ``brier_score == reliability - resolution + uncertainty`` holds exactly (up to rounding) when
    confidence is constant within each bin. Otherwise it is an approximation: the within-bin spread of
    confidence adds terms that the binned decomposition does not see.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    n_bins : int, default=10
        Number of equal-width bins on [0, 1].

    Returns
    -------
    BrierDecomposition
    """
    _check_binning(n_bins, "uniform")
    y, c = metric_inputs(y_correct, confidence, probabilities=True)
    mean_conf, acc, count, _ = _bin_stats(y, c, n_bins, "uniform")
    base_rate = y.mean()
    return BrierDecomposition(
        reliability=float(np.sum(count * (mean_conf - acc) ** 2) / len(y)),
        resolution=float(np.sum(count * (acc - base_rate) ** 2) / len(y)),
        uncertainty=float(base_rate * (1.0 - base_rate)),
    )


def log_loss(y_correct: ArrayLike, confidence: ArrayLike, *, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (natural log) of the observed correctness.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    eps : float, default=1e-12
        Confidence is clipped to ``[eps, 1 - eps]`` so that a confident mistake costs a large but finite loss.

    Returns
    -------
    float
        Non-negative; lower is better. Equals ``sklearn.metrics.log_loss(y_correct, confidence)``
        away from the clipping region.
    """
    check_number(eps, "eps", low=0.0, high=0.5, low_open=True, high_open=True)
    y, c = metric_inputs(y_correct, confidence, probabilities=True)
    p = np.clip(c, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


# ---------------------------------------------------------------- summary


def summarize(
    y_correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_bins: int = 10,
    coverages: Sequence[float] = (0.25, 0.5, 0.75),
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every metric of this module with a 95 % percentile bootstrap interval, as JSON-ready floats.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Probability in [0, 1] that each answer is correct.
    n_bins : int, default=10
        Bins of ``ece`` (uniform), ``ece_quantile`` and ``mce``.
    coverages : sequence of float, default=(0.25, 0.5, 0.75)
        Coverages of ``selective_accuracy@<percent>`` entries.
    n_resamples : int, default=1000
        Bootstrap resamples per metric; every metric uses the same resamples (same ``seed``).
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    dict of str to dict of str to float
        ``{name: {"value", "low", "high"}}`` for ``n``, ``accuracy``, ``auroc``, ``auprc_correct``,
        ``auprc_error``, ``ece``, ``ece_quantile``, ``mce``, ``brier``, ``log_loss``, ``aurc``, ``e_aurc``,
        ``prr`` and ``selective_accuracy@<percent>``. ``n`` is fixed, so its bounds equal its value.
        Undefined values are ``float("nan")``.
    """
    _check_binning(n_bins, "uniform")
    y, c = metric_inputs(y_correct, confidence, probabilities=True)
    metrics = {
        "accuracy": lambda y_boot, _: accuracy(y_boot),
        "auroc": auroc,
        "auprc_correct": auprc_correct,
        "auprc_error": auprc_error,
        "ece": partial(ece, n_bins=n_bins),
        "ece_quantile": partial(ece, n_bins=n_bins, strategy="quantile"),
        "mce": partial(mce, n_bins=n_bins),
        "brier": brier_score,
        "log_loss": log_loss,
        "aurc": aurc,
        "e_aurc": e_aurc,
        "prr": prr,
    }
    for cov in coverages:
        _n_answered(cov, len(y))
        metrics[f"selective_accuracy@{cov * 100:g}"] = partial(selective_accuracy, coverage=cov)
    n = float(len(y))
    summary = {"n": {"value": n, "low": n, "high": n}}
    for name, metric in metrics.items():
        iv = bootstrap_interval(metric, y, c, n_resamples=n_resamples, seed=seed)
        summary[name] = {"value": iv.value, "low": iv.low, "high": iv.high}
    return summary
