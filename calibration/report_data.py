"""What a calibration report shows: :class:`ReportData`, validated when it is built.

It lives apart from :mod:`calibration.report` (the numbers, figures and files) so that
:mod:`calibration.report_render` (the page layout) can use it without importing the writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from calibration.thresholds import NEVER

__all__ = ["ReportData"]


@dataclass(frozen=True)
class ReportData:
    """Everything a calibration report shows, computed on held-out test rows.

    Parameters
    ----------
    title : str
    summary : dict of str to str
        Free-form lines: model, artifact id, the data it was fitted on and the rows evaluated here (two
        lines, each naming its datasets and counts), fusion, calibrator, target.
    y_correct : ndarray of bool, shape (n,)
        Whether each held-out answer was correct.
    fused : ndarray of float, shape (n,)
        Calibrated fused probability of each row, in [0, 1].
    signals : dict of str to ndarray of shape (n,)
        Each signal's confidence per row in [0, 1]; NaN where the signal was not computed.
    thresholds : dict of str to float
        ``"abstain"`` and ``"hedge"``: answer when ``p >= hedge``, hedge when ``abstain <= p < hedge``,
        abstain below.
    threshold_notes : list of str
        How the thresholds were chosen (the target, whether it was feasible).
    signal_costs : dict of str to dict of str to float
        Per signal, mean ``"calls"``, ``"tokens"``, ``"seconds"`` per request.
    request_costs : dict of str to dict of str to float
        Mean cost per request of whole configurations, e.g. ``"full pipeline"``, ``"with cascade"``.
    extra_tables : dict of str to list of dict
        Further tables by title, one dict per row (calibrator comparison, fusion coefficients...).

    Raises
    ------
    ValueError
        If the arrays are not aligned 1-D arrays of probabilities, or the thresholds are not
        ``0 <= abstain <= hedge <= 1``.
    """

    title: str
    summary: dict[str, str]
    y_correct: np.ndarray
    fused: np.ndarray
    signals: dict[str, np.ndarray]
    thresholds: dict[str, float]
    threshold_notes: list[str] = field(default_factory=list)
    signal_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    request_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    extra_tables: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        y = _check_labels(self.y_correct)
        object.__setattr__(self, "y_correct", y)
        object.__setattr__(self, "fused", _check_probabilities("fused", self.fused, len(y), allow_nan=False))
        signals = {name: _check_probabilities(f"signal {name!r}", c, len(y)) for name, c in self.signals.items()}
        object.__setattr__(self, "signals", signals)
        _check_thresholds(self.thresholds)

    def scored_signals(self) -> list[str]:
        """Names of the signals with a value on at least one row, in the order of ``signals``."""
        return [name for name, c in self.signals.items() if not np.isnan(c).all()]


def _check_labels(y_correct: np.ndarray) -> np.ndarray:
    y = np.asarray(y_correct)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y_correct must be a non-empty 1-D array; got shape {y.shape}.")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_correct must hold booleans or 0/1; got dtype {y.dtype}.")
    return y.astype(bool)


def _check_probabilities(what: str, values: np.ndarray, n: int, *, allow_nan: bool = True) -> np.ndarray:
    c = np.asarray(values, dtype=np.float64)
    if c.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},) like y_correct; got {c.shape}.")
    present = c[~np.isnan(c)] if allow_nan else c
    if not allow_nan and np.isnan(c).any():
        raise ValueError(f"{what} contains {int(np.isnan(c).sum())} NaN value(s); every row needs a value.")
    if present.size and (present.min() < 0.0 or present.max() > 1.0):
        raise ValueError(f"{what} must lie in [0, 1]; got values in [{present.min():g}, {present.max():g}].")
    return c


def _check_thresholds(thresholds: Mapping[str, float]) -> None:
    if set(thresholds) != {"abstain", "hedge"}:
        raise ValueError(f"thresholds must have exactly the keys 'abstain' and 'hedge'; got {sorted(thresholds)}.")
    # NEVER (just above 1) marks an infeasible target: that boundary is never reached.
    if not 0.0 <= thresholds["abstain"] <= thresholds["hedge"] <= NEVER:
        raise ValueError(f"thresholds must satisfy 0 <= abstain <= hedge <= 1 (or NEVER); got {dict(thresholds)}.")
