"""Confidence estimators, one module per signal family, each usable on its own.

>>> from estimators import Consistency, make_estimator
>>> make_estimator("logprob").name
'logprob'
"""

from __future__ import annotations

from typing import Any

from estimators.base import LLM, Cost, Estimator, Generation, Signal, TokenLogprob, total_cost
from estimators.consistency import Consistency
from estimators.familiarity import Familiarity
from estimators.logprob import TokenProbability
from estimators.p_true import PTrue
from estimators.pace import Pace
from estimators.verbalized import Verbalized

__all__ = [
    "ESTIMATORS",
    "LLM",
    "Consistency",
    "Cost",
    "Estimator",
    "Familiarity",
    "Generation",
    "PTrue",
    "Pace",
    "Signal",
    "TokenLogprob",
    "TokenProbability",
    "Verbalized",
    "make_estimator",
    "total_cost",
]

ESTIMATORS: dict[str, type] = {
    TokenProbability.name: TokenProbability,
    PTrue.name: PTrue,
    Consistency.name: Consistency,
    Verbalized.name: Verbalized,
    Familiarity.name: Familiarity,
    Pace.name: Pace,
}


def make_estimator(name: str, **config: Any) -> Estimator:
    """Build the estimator registered as ``name`` with keyword configuration.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; valid: {sorted(ESTIMATORS)}") from None
    return cls(**config)
