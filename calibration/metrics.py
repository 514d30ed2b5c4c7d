"""Metrics of how well a confidence score ranks and calibrates the correctness of answers.

Every function takes ``y_correct`` (1-D bools or 0/1: was each answer correct) and, where needed,
``confidence`` (1-D scores, higher meaning more likely correct) positionally; options are keyword-only.
Ranking metrics (AUROC, AUPRC, risk-coverage, AURC, PRR, selective accuracy) accept any real scores;
calibration metrics (ECE, MCE, reliability, Brier, log-loss) require probabilities in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.bootstrap import Interval, bootstrap_interval

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
FloatArray = NDArray[np.float64]


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


@dataclass(frozen=True)
class RiskCoverageCurve:
    """Selective risk when only the most confident answers are given.

    Attributes
    ----------
    coverage : ndarray of shape (n,)
        ``k / n`` for ``k = 1..n``.
    risk : ndarray of shape (n,)
        Error rate among the ``k`` most confident answers. Within a group of tied confidences the group's
        errors are spread evenly, which is the expectation over random tie-breaking.
    thresholds : ndarray of shape (n,)
        Confidence of the ``k``-th answer; tied answers share a threshold.
    """

    coverage: FloatArray
    risk: FloatArray
    thresholds: FloatArray


# ---------------------------------------------------------------- validation


def _validate_labels(y_correct: ArrayLike) -> FloatArray:
    y = np.asarray(y_correct)
    if y.ndim != 1:
        raise ValueError(f"y_correct must be 1-D (one entry per answer); got shape {y.shape}.")
    if y.size == 0:
        raise ValueError("y_correct is empty; metrics need at least one answer.")
    if y.dtype != bool and (not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all()):
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5].tolist() if np.issubdtype(y.dtype, np.number) else y.dtype
        raise ValueError(f"y_correct must hold booleans or 0/1; got {bad!r}.")
    return y.astype(np.float64)


def _validate(y_correct: ArrayLike, confidence: ArrayLike, *, probabilities: bool) -> tuple[FloatArray, FloatArray]:
    y = _validate_labels(y_correct)
    c = np.asarray(confidence)
    if c.ndim != 1:
        raise ValueError(f"confidence must be 1-D (one score per answer); got shape {c.shape}.")
    if not np.issubdtype(c.dtype, np.number) or np.issubdtype(c.dtype, np.complexfloating):
        raise ValueError(f"confidence must be real numbers; got dtype {c.dtype}.")
    if len(c) != len(y):
        raise ValueError(f"y_correct and confidence must have the same length; got {len(y)} and {len(c)}.")
    c = c.astype(np.float64)
    n_nan = int(np.isnan(c).sum())
    if n_nan:
        raise ValueError(f"confidence contains {n_nan} NaN value(s); every answer needs a score.")
    if probabilities and (c.min() < 0.0 or c.max() > 1.0):
        raise ValueError(
            f"confidence must be probabilities in [0, 1] for calibration metrics; got values in "
            f"[{c.min():g}, {c.max():g}]. Ranking metrics (auroc, aurc, prr) accept any real scores."
        )
    return y, c


def _check_binning(n_bins: int, strategy: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
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
    return float(_validate_labels(y_correct).mean())


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
    y, c = _validate(y_correct, confidence, probabilities=False)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(c)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _descending_groups(y: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Tie groups in order of decreasing score: (score, size, number of positives) per group."""
    order = np.argsort(-c, kind="mergesort")
    cs = c[order]
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    sizes = np.diff(np.r_[starts, len(c)]).astype(np.float64)
    return cs[starts], sizes, np.add.reduceat(y[order], starts)


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
    y, c = _validate(y_correct, confidence, probabilities=False)
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
    y, c = _validate(y_correct, confidence, probabilities=False)
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
    y, c = _validate(y_correct, confidence, probabilities=True)
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
    y, c = _validate(y_correct, confidence, probabilities=True)
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
    y, c = _validate(y_correct, confidence, probabilities=True)
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
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5); got {eps!r}.")
    y, c = _validate(y_correct, confidence, probabilities=True)
    p = np.clip(c, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


# ---------------------------------------------------------------- selective prediction


def _expected_risks(y: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Risk among the top k (k = 1..n) and the threshold at k, spreading each tie group's errors evenly."""
    scores, sizes, correct = _descending_groups(y, c)
    group_error_rate = (sizes - correct) / sizes
    errors_before = np.r_[0.0, np.cumsum(sizes - correct)[:-1]]
    starts = np.r_[0.0, np.cumsum(sizes)[:-1]]
    group = np.repeat(np.arange(len(sizes)), sizes.astype(np.int64))
    k = np.arange(1, len(y) + 1, dtype=np.float64)
    errors = errors_before[group] + (k - starts[group]) * group_error_rate[group]
    return errors / k, scores[group]


def _oracle_aurc(y: FloatArray) -> float:
    k = np.arange(1, len(y) + 1, dtype=np.float64)
    return float(np.mean(np.maximum(0.0, k - y.sum()) / k))


def risk_coverage_curve(y_correct: ArrayLike, confidence: ArrayLike) -> RiskCoverageCurve:
    """Selective risk at each coverage when answers are given most-confident first.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    RiskCoverageCurve
        One point per coverage level ``1/n, 2/n, ..., 1``. Tied confidences are one group: a coverage
        level inside a group gets the expected risk over random orders of the group, so the curve does not
        depend on how a sort happens to break ties.
    """
    y, c = _validate(y_correct, confidence, probabilities=False)
    risk, thresholds = _expected_risks(y, c)
    coverage = np.arange(1, len(y) + 1) / len(y)
    return RiskCoverageCurve(coverage=coverage, risk=risk, thresholds=thresholds)


def aurc(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Area under the risk-coverage curve (Geifman et al.): mean selective risk over coverage ``k/n``.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        In [0, 1]; lower is better. A constant score gives the error rate.
    """
    return float(np.mean(risk_coverage_curve(y_correct, confidence).risk))


def e_aurc(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Excess AURC: AURC minus that of the oracle ranking (all correct answers first).

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        Non-negative; 0 for a perfect ranking. Removes AURC's dependence on the base error rate.
    """
    y, c = _validate(y_correct, confidence, probabilities=False)
    return float(np.mean(_expected_risks(y, c)[0]) - _oracle_aurc(y))


def prr(y_correct: ArrayLike, confidence: ArrayLike) -> float:
    """Prediction-rejection ratio, as in LM-Polygraph.

    ``(AUC_random - AUC_unc) / (AUC_random - AUC_oracle)`` where each AUC is the area under the rejection
    curve of the error rate (the AURC of that ranking). ``AUC_random`` is taken in expectation, which is the
    error rate itself, so no random permutations are drawn.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.

    Returns
    -------
    float
        1 for the oracle ranking, 0 for random (or constant) confidence, negative when worse than random.
        NaN when all answers are correct or all wrong (every ranking is then equally good).
    """
    y, c = _validate(y_correct, confidence, probabilities=False)
    n_correct = y.sum()
    if n_correct in (0, len(y)):
        return float("nan")
    random = 1.0 - n_correct / len(y)
    return float((random - np.mean(_expected_risks(y, c)[0])) / (random - _oracle_aurc(y)))


def _n_answered(coverage: float, n: int) -> int:
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must lie in (0, 1]; got {coverage!r}.")
    # Rounding first keeps e.g. 0.3 * 10 = 3.0000000000000004 from answering 4 rows.
    return max(1, math.ceil(round(coverage * n, 9)))


def selective_risk(y_correct: ArrayLike, confidence: ArrayLike, *, coverage: float) -> float:
    """Error rate among the ``ceil(coverage * n)`` most confident answers.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.
    coverage : float
        Fraction of answers given, in (0, 1].

    Returns
    -------
    float
        The point of :func:`risk_coverage_curve` at that coverage (ties split in expectation).
    """
    y, c = _validate(y_correct, confidence, probabilities=False)
    return float(_expected_risks(y, c)[0][_n_answered(coverage, len(y)) - 1])


def selective_accuracy(y_correct: ArrayLike, confidence: ArrayLike, *, coverage: float) -> float:
    """Accuracy among the ``ceil(coverage * n)`` most confident answers: ``1 - selective_risk``.

    Parameters
    ----------
    y_correct : array-like of shape (n,)
        Correctness of each answer (bools or 0/1).
    confidence : array-like of shape (n,)
        Any real score, higher meaning more likely correct.
    coverage : float
        Fraction of answers given, in (0, 1].

    Returns
    -------
    float
    """
    return 1.0 - selective_risk(y_correct, confidence, coverage=coverage)


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
    y, c = _validate(y_correct, confidence, probabilities=True)
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
