"""Calibrators: map a fused score to a calibrated probability that the answer is correct.

Four one-dimensional calibrators share one contract:

- :class:`IsotonicCalibrator`: a monotone step-and-ramp fit (pool adjacent violators), stored as knots.
- :class:`PlattCalibrator`: ``p = sigmoid(a * s + b)`` on the raw score.
- :class:`TemperatureCalibrator`: ``p = sigmoid(logit(s) / T)`` for scores that already are probabilities.
- :class:`HistogramCalibrator`: equal-mass bins, each predicting its smoothed empirical accuracy.

Each is fitted on a labelled calibration split (separate from the one the fusion was fitted on, see
``DESIGN.md``), predicts from its learned numbers with numpy alone, and persists as a dict of JSON types;
``from_dict`` validates the dict and rebuilds a calibrator that predicts exactly like the saved one.
:func:`compare_calibrators` scores each kind by cross-validated log-loss so the winner is chosen on
held-out folds, never on the rows it was fitted on.

This module is the public import path; the code lives in :mod:`calibration.calibrator_kinds` (the kinds
and the registry), :mod:`calibration.calibrator_selection` (choosing a kind) and
``calibration._calibrator_base`` (the shared contract).
"""

from calibration._calibrator_base import BaseCalibrator
from calibration.calibrator_kinds import (
    CALIBRATORS,
    HistogramCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    make_calibrator,
)
from calibration.calibrator_selection import ORDER_PRESERVING, best_calibrator_kind, best_of, compare_calibrators

__all__ = [
    "CALIBRATORS",
    "ORDER_PRESERVING",
    "BaseCalibrator",
    "HistogramCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "best_calibrator_kind",
    "best_of",
    "calibrator_from_dict",
    "compare_calibrators",
    "make_calibrator",
]
