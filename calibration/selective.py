"""Selective prediction: the risk of answering only the most confident requests.

The risk-coverage curve, its area (AURC), the excess over an oracle ranking (E-AURC), the
prediction-rejection ratio (PRR) and the accuracy or risk at one coverage. Like every metric of
:mod:`calibration.metrics` (which re-exports these), each takes ``y_correct`` (1-D bools or 0/1) and
``confidence`` (any real score, higher meaning more likely correct) positionally, options keyword-only.
Tied confidences form one group whose errors are spread evenly, the expectation over random tie-breaking,
so no result depends on how a sort happens to break ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from calibration._validation import FloatArray, check_number, metric_inputs

__all__ = [
    "RiskCoverageCurve",
    "aurc",
    "e_aurc",
    "prr",
    "risk_coverage_curve",
    "selective_accuracy",
    "selective_risk",
]


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


def _descending_groups(y: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Tie groups in order of decreasing score: (score, size, number of positives) per group."""
    order = np.argsort(-c, kind="mergesort")
    cs = c[order]
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    sizes = np.diff(np.r_[starts, len(c)]).astype(np.float64)
    return cs[starts], sizes, np.add.reduceat(y[order], starts)


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
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
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
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
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
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
    n_correct = y.sum()
    if n_correct in (0, len(y)):
        return float("nan")
    random = 1.0 - n_correct / len(y)
    return float((random - np.mean(_expected_risks(y, c)[0])) / (random - _oracle_aurc(y)))


def _n_answered(coverage: float, n: int) -> int:
    """How many of ``n`` answers a coverage gives: ``ceil(coverage * n)``, at least one."""
    check_number(coverage, "coverage", low=0.0, high=1.0, low_open=True)
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
    y, c = metric_inputs(y_correct, confidence, probabilities=False)
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
