"""The documented default when no artifact fits the model: an unweighted mean of the signals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

UNCALIBRATED_ABSTAIN = 0.3
UNCALIBRATED_HEDGE = 0.7


@dataclass(frozen=True)
class MeanScorer:
    """Mean of the available confidences: a ranking, not a calibrated probability."""

    signals: tuple[str, ...]
    abstain: float = UNCALIBRATED_ABSTAIN
    hedge: float = UNCALIBRATED_HEDGE

    def probability(self, values: Mapping[str, float | None]) -> float:
        present = [v for k, v in values.items() if v is not None and (not self.signals or k in self.signals)]
        return float(np.mean(present)) if present else 0.5


@dataclass(frozen=True)
class Uncalibrated:
    """No artifact: no precheck abstention, no early exit, fixed thresholds on the mean of the signals."""

    id: str = "uncalibrated: no artifact for this model; mean of the signals with thresholds 0.3 / 0.7"
    precheck_threshold: float | None = None
    free: MeanScorer | None = None
    full: MeanScorer = MeanScorer(signals=())
