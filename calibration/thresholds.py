"""Decision thresholds: answer, hedge or abstain from a calibrated probability ``p``.

Two boundaries split the probability scale: **answer** when ``p >= hedge``, **hedge** when
``abstain <= p < hedge``, **abstain** when ``p < abstain`` (lower bounds inclusive). They are chosen on a
labelled split that neither the fusion nor the calibrator was fitted on.

Three ways to choose a boundary ``t`` (rows with ``p >= t`` count as "answered"):

- :func:`learn_then_test` (Angelopoulos et al., Learn then Test): with probability at least
  ``confidence_level`` over the calibration draw, the error rate among answered requests is at most
  ``1 - target_level``. Binomial or Hoeffding-Bentkus p-values, fixed-sequence testing.
- :func:`conformal_risk_control` (Angelopoulos et al., Conformal Risk Control): in expectation,
  ``P(answered and wrong) <= 1 - target_level``.
- :func:`balance_threshold` (the Auto-CEI objective): maximise
  ``(1 - balance) * precision + balance * (1 - abstain rate)``, no guarantee.

The public API speaks MAPIE's language, ``target_level`` (wanted accuracy, ``1 - alpha``) and
``confidence_level`` (``1 - delta``); :func:`_risk_levels` is the one place they become alpha and delta.
When a target cannot be met, the result says so plainly, with the abstention that any method would need
when the base error rate exceeds alpha (:func:`minimum_abstention`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import binom

from calibration._validation import (
    FloatArray,
    as_binary_labels,
    as_float_array,
    check_int,
    check_number,
    check_probabilities,
    is_number,
    require_keys,
)

__all__ = [
    "NEVER",
    "DecisionThresholds",
    "ThresholdResult",
    "balance_threshold",
    "choose_thresholds",
    "conformal_risk_control",
    "decide",
    "decisions",
    "learn_then_test",
    "minimum_abstention",
]

logger = logging.getLogger(__name__)

Decision = Literal["answer", "hedge", "abstain"]
Bound = Literal["binomial", "hoeffding_bentkus"]
Method = Literal["ltt", "crc", "balance"]

# The boundary of a tier that must never be reached: above every probability, yet finite so JSON can hold it.
NEVER: float = math.nextafter(1.0, math.inf)
_BOUNDS = ("binomial", "hoeffding_bentkus")
_METHODS = ("ltt", "crc", "balance")
# Fine enough that the default grid never leaves a gap wider than 0.001 between candidate thresholds.
_GRID_POINTS = 1001


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


@dataclass(frozen=True)
class DecisionThresholds:
    """The two boundaries of the gate and how each was chosen.

    ``p >= hedge`` answers, ``abstain <= p < hedge`` hedges, ``p < abstain`` abstains. A boundary equal to
    :data:`NEVER` (just above 1.0) is never reached: ``hedge == NEVER`` answers nothing outright,
    ``abstain == NEVER`` abstains on everything. Always ``0 <= abstain <= hedge <= NEVER``.

    Attributes
    ----------
    abstain : float
        Lowest probability that is delivered at all (hedged or answered).
    hedge : float
        Lowest probability that is answered outright.
    answer_result : ThresholdResult
        How ``hedge`` was chosen (target: accuracy among answered).
    hedge_result : ThresholdResult
        How ``abstain`` was chosen (target: accuracy among answered or hedged).
    """

    abstain: float
    hedge: float
    answer_result: ThresholdResult
    hedge_result: ThresholdResult

    def __post_init__(self) -> None:
        # NaN fails the comparisons, so no separate NaN check is needed.
        if not (is_number(self.abstain) and is_number(self.hedge) and 0.0 <= self.abstain <= self.hedge <= NEVER):
            raise ValueError(
                f"thresholds must satisfy 0 <= abstain <= hedge <= NEVER ({NEVER!r}); got abstain={self.abstain!r}, "
                f"hedge={self.hedge!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The thresholds and both results as JSON types."""
        return {
            "abstain": self.abstain,
            "hedge": self.hedge,
            "answer_result": self.answer_result.to_dict(),
            "hedge_result": self.hedge_result.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionThresholds:
        """Rebuild thresholds from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If keys are missing, a result is malformed, or the boundaries are out of order.
        """
        require_keys(data, ["abstain", "answer_result", "hedge", "hedge_result"], "saved DecisionThresholds")
        return cls(
            abstain=data["abstain"],
            hedge=data["hedge"],
            answer_result=ThresholdResult.from_dict(data["answer_result"]),
            hedge_result=ThresholdResult.from_dict(data["hedge_result"]),
        )


def _risk_levels(target_level: float, confidence_level: float | None = None) -> tuple[float, float | None]:
    """(alpha, delta) from (target_level, confidence_level): the one place the public levels are converted."""

    def one_minus(level: float, name: str) -> float:
        check_number(level, name, low=0.0, high=1.0, low_open=True, high_open=True)
        # Decimal keeps 1 - 0.9 at 0.1 instead of 0.09999999999999998, as MAPIE does.
        return float(Decimal(1) - Decimal(str(level)))

    alpha = one_minus(target_level, "target_level")
    return alpha, None if confidence_level is None else one_minus(confidence_level, "confidence_level")


def _check_probs(probs: ArrayLike) -> FloatArray:
    return check_probabilities(as_float_array(probs, "probs"), "probs")


def _check_data(probs: ArrayLike, y_correct: ArrayLike) -> tuple[FloatArray, NDArray[np.int64]]:
    """Validated probabilities and the matching error indicators (1 = wrong)."""
    p = _check_probs(probs)
    return p, 1 - as_binary_labels(y_correct, "y_correct", n_rows=p.shape[0], per="score")


def _candidate_grid(p: FloatArray, grid: ArrayLike | None) -> FloatArray:
    """Candidate thresholds, strict (high) to permissive (low)."""
    values = np.concatenate([p, np.linspace(0.0, 1.0, _GRID_POINTS)]) if grid is None else as_float_array(grid, "grid")
    return np.unique(values)[::-1]


def _answered_counts(p: FloatArray, err: NDArray[np.int64], grid: FloatArray) -> tuple[NDArray, NDArray]:
    """For each threshold t: rows with p >= t, and errors among them."""
    order = np.argsort(p, kind="stable")
    # errors_at_or_above[k] = errors among the rows from sorted position k upwards.
    errors_at_or_above = np.append(np.cumsum(err[order][::-1])[::-1], 0)
    first = np.searchsorted(p[order], grid, side="left")
    return p.size - first, errors_at_or_above[first]


def _p_values(n_err: NDArray, n_sel: NDArray, alpha: float, bound: str) -> FloatArray:
    """p-values of H0: risk > alpha, from ``n_err`` errors among ``n_sel`` answered rows (``n_sel > 0``)."""
    binomial = binom.cdf(n_err, n_sel, alpha)
    if bound == "binomial":
        return binomial
    # Hoeffding-Bentkus (Bates et al.): min of the Hoeffding tail and e times the binomial tail.
    rate = np.minimum(n_err / n_sel, alpha)
    kl = xlogy(rate, rate / alpha) + xlogy(1.0 - rate, (1.0 - rate) / (1.0 - alpha))
    return np.minimum(np.minimum(np.exp(-n_sel * kl), math.e * binomial), 1.0)


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


def _feasible(
    t: float, p: FloatArray, err: NDArray, *, method: str, alpha: float, delta: float | None, message: str
) -> ThresholdResult:
    selected = p >= t
    n_sel = int(selected.sum())
    risk = float(err[selected].mean()) if n_sel else math.nan
    return ThresholdResult(float(t), method, alpha, delta, True, risk, n_sel / p.size, int(p.size), message)


def _infeasible(
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


def _start_count(n_rows: int, alpha: float, delta: float) -> int | None:
    """Rows a candidate must answer before the test sequence starts; depends on no label.

    The count at which an error rate of alpha / 2 would already be rejected; failing that (too few rows),
    the count at which zero errors would be; None when not even that is reachable. Always computed with
    the Hoeffding-Bentkus p-value, so both bounds test the same sequence and the binomial one, whose
    p-values are never larger, rejects at least as far.
    """
    counts = np.arange(1, n_rows + 1)
    for rate in (alpha / 2, 0.0):
        passing = np.flatnonzero(_p_values(np.floor(counts * rate), counts, alpha, "hoeffding_bentkus") <= delta)
        if passing.size:
            return int(counts[passing[0]])
    return None


def learn_then_test(
    probs: ArrayLike,
    y_correct: ArrayLike,
    *,
    target_level: float = 0.9,
    confidence_level: float = 0.9,
    grid: ArrayLike | None = None,
    bound: Bound = "hoeffding_bentkus",
    min_answered: int | None = None,
) -> ThresholdResult:
    """The most permissive threshold whose error rate among answered is certified by Learn-then-Test.

    For every candidate ``t`` the null hypothesis "error rate among rows with ``p >= t`` exceeds alpha" is
    tested with the errors of the selected rows. Candidates are tested in a fixed sequence from strict to
    permissive and testing stops at the first non-rejection (fixed-sequence testing controls the
    family-wise error at delta with no multiplicity correction, since the order is fixed before the labels
    are seen). The answer is the last rejected candidate: with probability at least ``confidence_level``,
    the population error rate among requests with ``p >= threshold`` is at most ``1 - target_level``.

    The sequence starts at the strictest candidate that answers at least ``min_answered`` rows; stricter
    ones answer too few rows for a test to pass, and one chance error there would end the whole sequence
    (Angelopoulos and Bates' selective-classification example keeps candidates with at least 30 rows for
    the same reason). The start depends on the probabilities only, never on the labels, so the guarantee
    holds. Even so, one unlucky error early in the sequence ends it: on 2000 calibrated rows with
    ``p ~ U(0, 1)`` and the defaults, about 9% of draws come out infeasible (3% with the binomial bound).

    Parameters
    ----------
    probs : array-like of shape (n_samples,)
        Calibrated probabilities in [0, 1] of a held-out labelled split.
    y_correct : array-like of shape (n_samples,)
        1 where the answer was correct.
    target_level : float, default=0.9
        Wanted accuracy among answered, ``1 - alpha``, in (0, 1).
    confidence_level : float, default=0.9
        Probability of the guarantee, ``1 - delta``, in (0, 1).
    grid : array-like, optional
        Candidate thresholds; default: every observed probability plus 1001 evenly spaced points in [0, 1].
    bound : {"hoeffding_bentkus", "binomial"}
        ``"binomial"``: the exact binomial tail ``P(Binom(n, alpha) <= errors)``; valid here because the
        loss (wrong or not) is 0/1, and the least conservative. ``"hoeffding_bentkus"``: the minimum of the
        Hoeffding and Bentkus p-values (Bates et al.; Bentkus with its factor ``e``), the Learn-then-Test
        paper's bound for any loss in [0, 1]; never smaller than the binomial p-value, so its threshold is
        never lower.
    min_answered : int, optional
        Rows a candidate must answer to be tested. Default: the smallest count at which an error rate of
        alpha / 2 would be rejected by the Hoeffding-Bentkus test (with too few rows for that: zero
        errors), whichever ``bound`` is used, so that both bounds test the same sequence.

    Returns
    -------
    ThresholdResult
        ``feasible=False`` and ``threshold=None`` when no candidate is rejected.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> result = learn_then_test(p, rng.uniform(size=2000) < p, target_level=0.9)
    >>> result.feasible and 0.8 < result.threshold < 0.95
    True
    """
    alpha, delta = _risk_levels(target_level, confidence_level)
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {list(_BOUNDS)}; got {bound!r}")
    check_int(min_answered, "min_answered", allow_none=True)
    p, err = _check_data(probs, y_correct)
    method = f"ltt:{bound}"
    start = _start_count(p.size, alpha, delta) if min_answered is None else int(min_answered)
    thresholds = _candidate_grid(p, grid)
    n_sel, n_err = _answered_counts(p, err, thresholds)
    tested = n_sel >= (start or math.inf)
    thresholds, n_sel, n_err = thresholds[tested], n_sel[tested], n_err[tested]
    if thresholds.size == 0:
        needed = f"at least {start} answered rows" if start else f"more than the {p.size} rows given"
        reason = (
            f"No threshold answers enough rows for the {bound} test at confidence {1 - delta:.3g} to pass "
            f"({needed}); more calibration data is needed."
        )
        return _infeasible(err, method=method, alpha=alpha, delta=delta, reason=reason)
    p_values = _p_values(n_err, n_sel, alpha, bound)
    not_rejected = np.flatnonzero(p_values > delta)
    n_rejected = int(not_rejected[0]) if not_rejected.size else thresholds.size
    if n_rejected == 0:
        reason = (
            f"The strictest testable threshold {thresholds[0]:.4g} ({n_err[0]} errors among {n_sel[0]} answered) "
            f"was not rejected: p-value {p_values[0]:.3g} > delta {delta:.3g}."
        )
        return _infeasible(err, method=method, alpha=alpha, delta=delta, reason=reason)
    last = n_rejected - 1
    message = (
        f"Learn-then-Test ({bound}): answer when p >= {thresholds[last]:.4g}; with probability >= {1 - delta:.3g} "
        f"the error rate among answered is <= {alpha:.3g} ({n_err[last]} errors among {n_sel[last]} of {p.size} "
        "rows here)."
    )
    return _feasible(thresholds[last], p, err, method=method, alpha=alpha, delta=delta, message=message)


def conformal_risk_control(
    probs: ArrayLike, y_correct: ArrayLike, *, target_level: float = 0.9, grid: ArrayLike | None = None
) -> ThresholdResult:
    """The most permissive threshold for which conformal risk control bounds ``P(answered and wrong)``.

    The loss of a calibration row at threshold ``t`` is ``1`` when it is answered (``p >= t``) and wrong,
    else 0: bounded by ``B = 1`` and non-increasing in ``t``, as conformal risk control requires. The
    chosen threshold is the smallest candidate with ``n / (n + 1) * Rhat(t) + B / (n + 1) <= alpha``, and
    for a new exchangeable request ``E[loss] = P(answered and wrong) <= alpha = 1 - target_level``.

    This is the **joint** rate, not the error rate among answered requests (which equals the joint rate
    divided by the answer rate, so it can exceed alpha); the conditional loss is not monotone in ``t``,
    so conformal risk control does not apply to it. Use :func:`learn_then_test` to bound the error rate
    among answered. The result's ``empirical_risk`` still reports that conditional rate on these rows.

    Parameters
    ----------
    probs, y_correct : array-like of shape (n_samples,)
    target_level : float, default=0.9
        ``1 - alpha``, in (0, 1).
    grid : array-like, optional
        Candidate thresholds; default as in :func:`learn_then_test`.

    Returns
    -------
    ThresholdResult
        Infeasible only when even a threshold that answers nothing fails, i.e. ``n + 1 < 1 / alpha``.
    """
    alpha, _ = _risk_levels(target_level)
    p, err = _check_data(probs, y_correct)
    thresholds = _candidate_grid(p, grid)
    _, n_err = _answered_counts(p, err, thresholds)
    corrected = (n_err + 1.0) / (p.size + 1.0)
    # n_err only grows as t falls, so the passing candidates are a prefix of the strict-to-permissive grid.
    n_pass = int(np.count_nonzero(corrected <= alpha))
    if n_pass == 0:
        reason = (
            f"the corrected risk at the strictest threshold {thresholds[0]:.4g} is {corrected[0]:.3g} > alpha "
            f"{alpha:.3g}; conformal risk control needs n + 1 >= 1 / alpha rows at the least (got n = {p.size})."
        )
        return _infeasible(err, method="crc", alpha=alpha, delta=None, reason=reason, among_answered=False)
    last = n_pass - 1
    message = (
        f"Conformal risk control: answer when p >= {thresholds[last]:.4g}; expected rate of answered-and-wrong "
        f"requests <= {alpha:.3g} (corrected empirical {corrected[last]:.3g})."
    )
    return _feasible(thresholds[last], p, err, method="crc", alpha=alpha, delta=None, message=message)


def balance_threshold(
    probs: ArrayLike, y_correct: ArrayLike, *, balance: float = 0.5, grid: ArrayLike | None = None
) -> ThresholdResult:
    """The threshold maximising the Auto-CEI balance of precision and answer rate.

    ``f = (1 - balance) * precision + balance * (1 - abstain_rate)`` over candidates that answer at least
    one row; ties go to the larger answer rate, then to the stricter threshold (same decisions on these
    rows, fewer answers on unseen probabilities in between). No guarantee: both precision and abstain
    rate are in the message so over-refusal stays visible.

    Parameters
    ----------
    probs, y_correct : array-like of shape (n_samples,)
    balance : float, default=0.5
        lambda in [0, 1]: 0 maximises precision, 1 answers everything.
    grid : array-like, optional
        Candidate thresholds; default as in :func:`learn_then_test`.
    """
    check_number(balance, "balance", low=0.0, high=1.0)
    p, err = _check_data(probs, y_correct)
    thresholds = _candidate_grid(p, grid)
    n_sel, n_err = _answered_counts(p, err, thresholds)
    some = n_sel > 0
    if not some.any():
        reason = f"no candidate threshold is <= max(probs) = {p.max():.4g}."
        return _infeasible(err, method="balance", alpha=math.nan, delta=None, reason=reason, among_answered=False)
    thresholds, n_sel, n_err = thresholds[some], n_sel[some], n_err[some]
    precision = 1.0 - n_err / n_sel
    coverage = n_sel / p.size
    objective = (1.0 - balance) * precision + balance * coverage
    best = np.lexsort((thresholds, coverage, objective))[-1]
    message = (
        f"Balance {balance:g}: answer when p >= {thresholds[best]:.4g}; precision {precision[best]:.3f}, "
        f"abstain rate {1 - coverage[best]:.3f}, objective {objective[best]:.4f}."
    )
    return _feasible(thresholds[best], p, err, method="balance", alpha=math.nan, delta=None, message=message)


def choose_thresholds(
    probs: ArrayLike,
    y_correct: ArrayLike,
    *,
    answer_level: float = 0.9,
    hedge_level: float = 0.7,
    confidence_level: float = 0.9,
    method: Method = "ltt",
    balance: float = 0.5,
    bound: Bound = "hoeffding_bentkus",
) -> DecisionThresholds:
    """Both boundaries of the gate from one labelled split.

    - ``hedge`` (answer outright above it) targets accuracy ``answer_level`` among answered requests.
    - ``abstain`` (deliver at all above it) targets accuracy ``hedge_level`` among answered-or-hedged ones.

    ``method="ltt"`` certifies both with :func:`learn_then_test` (each with probability
    ``confidence_level``, jointly at least ``2 * confidence_level - 1`` by the union bound); ``"crc"`` uses
    :func:`conformal_risk_control` for both (joint rates, see there); ``"balance"`` picks ``hedge`` with
    :func:`balance_threshold` and keeps the ``abstain`` floor certified by Learn-then-Test.

    An infeasible boundary becomes :data:`NEVER`: nothing is answered outright (and, for ``abstain``,
    nothing is delivered); the result keeps ``feasible=False`` and the message, which is also logged.
    If ``abstain`` would exceed ``hedge`` (possible only with ``"balance"``), ``hedge`` is raised to
    ``abstain``: nothing below the certified floor is ever delivered.

    Raises
    ------
    ValueError
        If a level is outside (0, 1), ``hedge_level > answer_level``, or ``method`` is unknown.
    """
    answer_alpha, _ = _risk_levels(answer_level, confidence_level)
    hedge_alpha, _ = _risk_levels(hedge_level)
    if hedge_alpha < answer_alpha:
        raise ValueError(
            f"hedge_level must not exceed answer_level (hedging is the laxer tier); got hedge_level={hedge_level!r}, "
            f"answer_level={answer_level!r}"
        )
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}; got {method!r}")
    ltt = {"confidence_level": confidence_level, "bound": bound}
    if method == "crc":
        answer = conformal_risk_control(probs, y_correct, target_level=answer_level)
        floor = conformal_risk_control(probs, y_correct, target_level=hedge_level)
    else:
        floor = learn_then_test(probs, y_correct, target_level=hedge_level, **ltt)
        answer = (
            balance_threshold(probs, y_correct, balance=balance)
            if method == "balance"
            else learn_then_test(probs, y_correct, target_level=answer_level, **ltt)
        )
    for result in (answer, floor):
        if not result.feasible:
            logger.warning("%s", result.message)
    abstain = floor.threshold if floor.threshold is not None else NEVER
    hedge = answer.threshold if answer.threshold is not None else NEVER
    return DecisionThresholds(abstain=abstain, hedge=max(hedge, abstain), answer_result=answer, hedge_result=floor)


def decisions(probs: ArrayLike, thresholds: DecisionThresholds) -> NDArray[np.str_]:
    """Vectorised :func:`decide`: ``"answer"``, ``"hedge"`` or ``"abstain"`` for every probability.

    Parameters
    ----------
    probs : array-like of shape (n_samples,)
        Calibrated probabilities in [0, 1].
    thresholds : DecisionThresholds

    Returns
    -------
    ndarray of str, shape (n_samples,)
    """
    p = _check_probs(probs)
    return np.where(p >= thresholds.hedge, "answer", np.where(p >= thresholds.abstain, "hedge", "abstain"))


def decide(probability: float, thresholds: DecisionThresholds) -> Decision:
    """The decision for one calibrated probability; lower bounds are inclusive.

    ``probability >= thresholds.hedge`` answers, ``probability >= thresholds.abstain`` hedges, anything
    lower abstains.

    Examples
    --------
    >>> t = choose_thresholds([0.2, 0.9] * 100, [0, 1] * 100, answer_level=0.9, hedge_level=0.5)
    >>> decide(0.9, t), decide(0.1, t)
    ('answer', 'abstain')
    """
    check_number(probability, "probability", low=0.0, high=1.0)
    return cast(Decision, str(decisions([probability], thresholds)[0]))
