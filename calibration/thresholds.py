"""Decision thresholds: answer, hedge or abstain from a calibrated probability ``p``.

Two boundaries split the probability scale: **answer** when ``p >= hedge``, **hedge** when
``abstain <= p < hedge``, **abstain** when ``p < abstain`` (lower bounds inclusive; the rule itself is
:mod:`calibration.decision`). They are chosen on a labelled split that neither the fusion nor the
calibrator was fitted on.

Three ways to choose a boundary ``t`` (rows with ``p >= t`` count as "answered"):

- :func:`~calibration.risk_control.learn_then_test`: with probability at least ``confidence_level``, the
  error rate among answered requests is at most ``1 - target_level``;
- :func:`~calibration.risk_control.conformal_risk_control`: in expectation,
  ``P(answered and wrong) <= 1 - target_level``;
- :func:`balance_threshold` (the Auto-CEI objective): maximise
  ``(1 - balance) * precision + balance * (1 - abstain rate)``, no guarantee.

The first two live in :mod:`calibration.risk_control`, what all three share (the result type
:class:`ThresholdResult`, the candidate grid, :func:`minimum_abstention`) in ``calibration._candidates``;
``from calibration.thresholds import ...`` reaches every public name. The public API speaks MAPIE's
language, ``target_level`` (wanted accuracy, ``1 - alpha``) and ``confidence_level`` (``1 - delta``),
converted to alpha and delta in one place (``calibration._candidates.risk_levels``). When a target cannot
be met, the result says so plainly, with the abstention that any method would need when the base error
rate exceeds alpha (:func:`minimum_abstention`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration._candidates import (
    ThresholdResult,
    candidates,
    check_data,
    check_probs,
    feasible,
    infeasible,
    minimum_abstention,
    risk_levels,
)
from calibration._validation import check_number, is_number, require_keys
from calibration.decision import Decision, decision_of, decisions_of
from calibration.risk_control import Bound, conformal_risk_control, learn_then_test

__all__ = [
    "NEVER",
    "Decision",
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

Method = Literal["ltt", "crc", "balance"]

# The boundary of a tier that must never be reached: above every probability, yet finite so JSON can hold it.
NEVER: float = math.nextafter(1.0, math.inf)
_METHODS = ("ltt", "crc", "balance")


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
    p, err = check_data(probs, y_correct)
    thresholds, n_sel, n_err = candidates(p, err, grid)
    some = n_sel > 0
    if not some.any():
        reason = f"no candidate threshold is <= max(probs) = {p.max():.4g}."
        return infeasible(err, method="balance", alpha=math.nan, delta=None, reason=reason, among_answered=False)
    thresholds, n_sel, n_err = thresholds[some], n_sel[some], n_err[some]
    precision = 1.0 - n_err / n_sel
    coverage = n_sel / p.size
    objective = (1.0 - balance) * precision + balance * coverage
    best = np.lexsort((thresholds, coverage, objective))[-1]
    message = (
        f"Balance {balance:g}: answer when p >= {thresholds[best]:.4g}; precision {precision[best]:.3f}, "
        f"abstain rate {1 - coverage[best]:.3f}, objective {objective[best]:.4f}."
    )
    return feasible(thresholds[best], p, err, method="balance", alpha=math.nan, delta=None, message=message)


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
    answer_alpha, _ = risk_levels(answer_level, confidence_level)
    hedge_alpha, _ = risk_levels(hedge_level)
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
    return decisions_of(check_probs(probs), abstain=thresholds.abstain, hedge=thresholds.hedge)


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
    return decision_of(probability, abstain=thresholds.abstain, hedge=thresholds.hedge)
