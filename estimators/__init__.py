"""Confidence estimators, one module per signal family, each usable on its own.

The estimator classes are imported on first use (``from estimators import Consistency`` works as
usual), so importing the core types does not pull in scipy and scikit-learn.

>>> from estimators import make_estimator
>>> make_estimator("logprob").name
'logprob'
"""

from __future__ import annotations

import importlib
from typing import Any

from estimators.base import LLM, Cost, Estimator, Generation, Signal, TokenLogprob, total_cost

__all__ = [
    "ESTIMATOR_NAMES",
    "LLM",
    "ClaimConsistency",
    "ClaimSupport",
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
    "estimator_class",
    "make_estimator",
    "total_cost",
]

# registry name -> (module, class); the class's own ``name`` attribute equals the key (tested).
_REGISTRY: dict[str, tuple[str, str]] = {
    "logprob": ("estimators.logprob", "TokenProbability"),
    "p_true": ("estimators.p_true", "PTrue"),
    "consistency": ("estimators.consistency", "Consistency"),
    "verbalized": ("estimators.verbalized", "Verbalized"),
    "familiarity": ("estimators.familiarity", "Familiarity"),
    "pace": ("estimators.pace", "Pace"),
    # Long answers, claim by claim: per-claim values are in ``details["claims"]``, the confidence aggregates them.
    "claim_support": ("estimators.claim_support", "ClaimSupport"),
    "claim_consistency": ("estimators.claim_consistency", "ClaimConsistency"),
}
_CLASSES = {cls: module for module, cls in _REGISTRY.values()}

ESTIMATOR_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""The names ``make_estimator`` accepts."""


def estimator_class(name: str) -> type:
    """The estimator class registered as ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        module, cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; valid: {sorted(_REGISTRY)}") from None
    return getattr(importlib.import_module(module), cls)


def make_estimator(name: str, **config: Any) -> Estimator:
    """Build the estimator registered as ``name`` with keyword configuration."""
    return estimator_class(name)(**config)


def __getattr__(attribute: str) -> Any:
    if attribute in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[attribute]), attribute)
    raise AttributeError(f"module 'estimators' has no attribute {attribute!r}")
