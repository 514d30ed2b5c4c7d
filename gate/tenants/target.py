"""A tenant's risk target: its own artifact file, or explicit thresholds on the server artifact's probability.

One fit can serve several targets: ``gate.offline.calibrate.retarget`` chooses thresholds for another target
from the same fitted stages. It needs the rows of the artifact's threshold split, though, and the artifact keeps
only where they came from (``data.signal_cache``, a path on the machine that fitted it), not the rows. So a
tenant cannot name a target level here; it names the artifact ``gate calibrate`` wrote for its target (same
model and signals as the server's, checked), or explicit thresholds chosen offline (``gate report`` shows the
trade-off between targets and the share answered).

Explicit thresholds apply to the full stage. The free stage's early exits were chosen for the artifact's own
thresholds, so under a tenant's thresholds they are not used: every assessed request runs the full stage
(more calls, never a looser decision). The familiarity precheck keeps the artifact's cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calibration.artifact import Artifact, load_artifact
from gate.config import TenantThresholds
from gate.pipeline import Calibration, Gate, StageScorer


@dataclass(frozen=True)
class Rethresholded:
    """A fitted stage's probability with other thresholds."""

    stage: StageScorer
    abstain: float
    hedge: float

    @property
    def signals(self) -> tuple[str, ...]:
        return self.stage.signals

    def probability(self, values: Mapping[str, float | None]) -> float:
        """The stage's own calibrated probability."""
        return self.stage.probability(values)


@dataclass(frozen=True)
class ThresholdedCalibration:
    """The server's calibration with a tenant's thresholds (see the module docstring for the free stage)."""

    base: Calibration
    thresholds: TenantThresholds

    @property
    def id(self) -> str:
        return f"{self.base.id}+thresholds(abstain={self.thresholds.abstain:g},hedge={self.thresholds.hedge:g})"

    @property
    def precheck_threshold(self) -> float | None:
        return self.base.precheck_threshold

    @property
    def free(self) -> StageScorer | None:
        return None

    @property
    def full(self) -> StageScorer:
        return Rethresholded(self.base.full, self.thresholds.abstain, self.thresholds.hedge)


@dataclass(frozen=True)
class RiskTarget:
    """What a tenant changes about the decision: nothing, its own artifact, or thresholds."""

    artifact: Artifact | None = None
    thresholds: TenantThresholds | None = None

    @classmethod
    def load(cls, artifact: Path | None, thresholds: TenantThresholds | None) -> RiskTarget:
        """Read the artifact now, so that a bad file refuses the configuration, not a request."""
        return cls(load_artifact(artifact) if artifact is not None else None, thresholds)

    def gate_for(self, gate: Gate, *, model: str) -> Gate:
        """``gate`` (serving ``model``) deciding with this target: the same signals and caches, another calibration.

        An artifact fitted for another model or signal configuration is refused (``ArtifactError``).
        """
        if self.artifact is None and self.thresholds is None:
            return gate
        calibration: Calibration
        if self.artifact is not None:
            self.artifact.check_applies_to(model, [spec.to_dict() for spec in gate.suite])
            calibration = self.artifact
        else:
            assert self.thresholds is not None
            calibration = ThresholdedCalibration(gate.calibration, self.thresholds)
        return gate.with_calibration(calibration)
