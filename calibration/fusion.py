"""Fusion: map the per-signal confidences of a request to one score, P(answer is correct).

Each row of ``X`` holds one request's signal confidences (token log-prob confidence, sample agreement,
verbalized confidence, P(True), familiarity, PACE, ...), each in [0, 1], with NaN where a signal is
missing because its estimator failed or the cost cascade skipped it. Any subset may be missing, so every
model here predicts from any pattern of NaNs.

- :class:`LogisticFusion` (the default): mean imputation plus one missing-indicator per signal,
  standardisation, L2 logistic regression.
- :class:`BoostedFusion`: gradient-boosted trees, which route NaN down a learned branch.
- :class:`WeightedMeanFusion`: no training, the weighted mean of the signals present.

Each kind lives in its own module (:mod:`calibration.fusion_logistic`, :mod:`calibration.fusion_boosted`,
:mod:`calibration.fusion_weighted`) on a shared base (``calibration._fusion_base``); this module is the
registry by kind and the public import path of all of them.

The output is a score, not yet a calibrated probability: a calibrator fitted on a separate split maps it
to one (``DESIGN.md``, "Fusion, calibration, decision"). Models persist as JSON-able dicts
(:meth:`~LogisticFusion.to_dict`, :func:`fusion_from_dict`); loading one never runs code, and all three
predict from their learned arrays with numpy alone, so a loaded model scores exactly like the fitted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calibration._fusion_base import BaseFusion, param_names
from calibration.fusion_boosted import BoostedFusion
from calibration.fusion_logistic import LogisticFusion, coefficients_table
from calibration.fusion_weighted import NO_EVIDENCE_SCORE, WeightedMeanFusion

__all__ = [
    "FUSIONS",
    "NO_EVIDENCE_SCORE",
    "BoostedFusion",
    "LogisticFusion",
    "WeightedMeanFusion",
    "coefficients_table",
    "fusion_from_dict",
    "make_fusion",
]


FUSIONS: dict[str, type[BaseFusion]] = {
    LogisticFusion.kind: LogisticFusion,
    BoostedFusion.kind: BoostedFusion,
    WeightedMeanFusion.kind: WeightedMeanFusion,
}


def make_fusion(kind: str, **params: Any) -> BaseFusion:
    """An unfitted fusion of the named kind.

    Parameters
    ----------
    kind : {"logistic", "boosted", "weighted_mean"}
    **params
        Constructor parameters of that kind.

    Raises
    ------
    ValueError
        If ``kind`` is unknown (the message lists the valid kinds).
    TypeError
        If a parameter is not one the kind takes (the message lists those it takes).
    """
    cls = _fusion_class(kind)
    valid = param_names(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise TypeError(f"{cls.__name__} got unknown parameters {unknown}; valid: {valid}")
    return cls(**params)


def fusion_from_dict(data: Mapping[str, Any]) -> BaseFusion:
    """Rebuild any fusion from :meth:`to_dict` output, dispatching on its ``kind``.

    Raises
    ------
    ValueError
        If ``data`` is not a mapping, its kind is unknown, or the class's ``from_dict`` refuses it.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a saved fusion must be a mapping with a 'kind'; got {type(data).__name__}")
    return _fusion_class(data.get("kind")).from_dict(data)


def _fusion_class(kind: Any) -> type[BaseFusion]:
    if kind not in FUSIONS:
        raise ValueError(f"Unknown fusion kind {kind!r}; valid: {sorted(FUSIONS)}")
    return FUSIONS[kind]
