"""The gate's decision rule, written once: abstain below ``abstain``, hedge between, answer at or above ``hedge``.

Everything that turns a calibrated probability into a decision calls these two functions: the pipeline for
one request, the threshold and cascade code for whole arrays. Lower bounds are inclusive. They check
nothing, so that every caller decides the same way on the same numbers; :func:`calibration.thresholds.decide`
and :func:`calibration.thresholds.decisions` validate their input first.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Decision", "decision_of", "decisions_of"]

Decision = Literal["answer", "hedge", "abstain"]


def decisions_of(probs: ArrayLike, *, abstain: float, hedge: float) -> NDArray[np.str_]:
    """The decision for every probability: ``"answer"`` at or above ``hedge``, ``"hedge"`` at or above ``abstain``.

    Parameters
    ----------
    probs : array-like
        Calibrated probabilities.
    abstain : float
        Lowest probability that is delivered at all (hedged or answered).
    hedge : float
        Lowest probability that is answered outright.

    Returns
    -------
    ndarray of str
        Same shape as ``probs``; a probability below ``abstain`` (or NaN) abstains.

    Examples
    --------
    >>> decisions_of([0.1, 0.3, 0.69, 0.7], abstain=0.3, hedge=0.7).tolist()
    ['abstain', 'hedge', 'hedge', 'answer']
    """
    p = np.asarray(probs, dtype=np.float64)
    return np.where(p >= hedge, "answer", np.where(p >= abstain, "hedge", "abstain"))


def decision_of(probability: float, *, abstain: float, hedge: float) -> Decision:
    """The decision for one probability, by the rule of :func:`decisions_of`."""
    return cast(Decision, str(decisions_of(probability, abstain=abstain, hedge=hedge)))
