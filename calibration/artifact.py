"""The calibration artifact: one versioned JSON file holding everything a fitted gate needs.

It records which model and which signal configuration it was fitted for, the fusion and calibrator of
each fitted cascade stage, the decision thresholds and the target they satisfy, the data it was fitted on
and its held-out metrics. Loading validates all of it and never runs code (JSON only, no pickle).

The cascade's stages are ``precheck`` (familiarity before generating: a threshold, not a fitted stage),
``free`` (signals that come with the answer) and ``full`` (every signal). The suite is kept as the file
records it, since the id hashes it: files written before these names were settled call the full stage
``"expensive"`` in their suite, and :attr:`Artifact.current_suite` reads them with today's names.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.calibrators import BaseCalibrator, calibrator_from_dict
from calibration.fusion import fusion_from_dict
from calibration.thresholds import DecisionThresholds

FORMAT = "llm-gate-calibration"
VERSION = 1
STAGE_NAMES = ("free", "full")
"""The fitted stages, the keys of ``stages``."""
FORMER_STAGE_NAMES: Mapping[str, str] = {"expensive": "full"}
"""Stage names older artifacts record in their suite, and the name each has now."""


class ArtifactError(ValueError):
    """An artifact that cannot be used: malformed, another version, or fitted for something else."""


@dataclass(frozen=True)
class FittedStage:
    """One fitted cascade stage: which signals it reads, how it fuses and calibrates them, and its thresholds.

    Parameters
    ----------
    signals : tuple of str
        Feature order of ``fusion``.
    fusion : fitted fusion model
        Anything with ``predict_score(X)`` and ``to_dict()`` (see :mod:`calibration.fusion`).
    calibrator : BaseCalibrator or None
        Maps the fused score to a probability; ``None`` when the fused score is used as it is.
    thresholds : DecisionThresholds
        Abstain below ``thresholds.abstain``, hedge below ``thresholds.hedge``, answer at or above.
    """

    signals: tuple[str, ...]
    fusion: Any
    calibrator: BaseCalibrator | None
    thresholds: DecisionThresholds

    @property
    def abstain(self) -> float:
        """Probability below which the gate abstains."""
        return float(self.thresholds.abstain)

    @property
    def hedge(self) -> float:
        """Probability at or above which the gate answers without hedging."""
        return float(self.thresholds.hedge)

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """Calibrated P(correct) for rows of signal confidences in ``signals`` order (NaN = missing)."""
        scores = self.fusion.predict_score(np.asarray(values, dtype=float))
        return scores if self.calibrator is None else self.calibrator.predict(scores)

    def probability(self, values: Mapping[str, float | None]) -> float:
        """Calibrated P(correct) for one request's confidences by signal name (absent = missing)."""
        row = [[_nan_if_none(values.get(name)) for name in self.signals]]
        return float(self.probabilities(np.asarray(row, dtype=float))[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "signals": list(self.signals),
            "fusion": self.fusion.to_dict(),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "thresholds": self.thresholds.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> FittedStage:
        """Validate and rebuild a stage; errors name the stage."""
        _require_keys(data, {"signals", "fusion", "calibrator", "thresholds"}, where)
        signals = data["signals"]
        if not isinstance(signals, list) or not signals or not all(isinstance(s, str) for s in signals):
            raise ArtifactError(f"{where}.signals must be a non-empty list of names, got {signals!r}")
        try:
            fusion = fusion_from_dict(data["fusion"])
            calibrator = None if data["calibrator"] is None else calibrator_from_dict(data["calibrator"])
            thresholds = DecisionThresholds.from_dict(data["thresholds"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ArtifactError(f"{where}: {exc}") from None
        names = getattr(fusion, "feature_names_in_", None)
        if names is not None and list(names) != signals:
            raise ArtifactError(f"{where}: fusion features {list(names)} differ from the stage's signals {signals}")
        return cls(tuple(signals), fusion, calibrator, thresholds)


@dataclass(frozen=True)
class Artifact:
    """A fitted gate for one model and one signal suite (see the module docstring for the JSON layout)."""

    model: str
    suite: list[dict[str, Any]]
    stages: dict[str, FittedStage]
    precheck_threshold: float | None = None
    target: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    signal_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = ""

    @property
    def free(self) -> FittedStage | None:
        """The early-exit stage on signals that cost nothing extra, when one was fitted."""
        return self.stages.get("free")

    @property
    def full(self) -> FittedStage:
        """The stage that reads every signal."""
        return self.stages["full"]

    @property
    def current_suite(self) -> list[dict[str, Any]]:
        """``suite`` with each signal's stage under its current name (see :data:`FORMER_STAGE_NAMES`)."""
        return [_current_names(spec) for spec in self.suite]

    @functools.cached_property
    def id(self) -> str:
        """Content hash: two artifacts with the same id decide identically."""
        body = {key: value for key, value in self.to_dict().items() if key != "id"}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.model}@v{VERSION}:{digest}"

    def to_dict(self) -> dict[str, Any]:
        """The artifact as JSON-able data (NaN written as ``None``)."""
        return _nan_to_none({
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "model": self.model,
            "suite": self.suite,
            "precheck": {"signal": "familiarity", "threshold": self.precheck_threshold},
            "stages": {name: stage.to_dict() for name, stage in self.stages.items()},
            "target": self.target,
            "data": self.data,
            "signal_costs": self.signal_costs,
            "metrics": self.metrics,
            "notes": self.notes,
        })

    def save(self, path: Path) -> Path:
        """Write the artifact as indented JSON (with its id) and return the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"id": self.id, **self.to_dict()}, indent=1) + "\n", encoding="utf-8")
        return path

    def check_applies_to(self, model: str, suite: Sequence[Mapping[str, Any]]) -> None:
        """Refuse to gate ``model`` with signals configured as ``suite`` unless this artifact was fitted so."""
        if model != self.model:
            raise ArtifactError(
                f"the calibration artifact was fitted for model {self.model!r}, not {model!r}; "
                "fit one for this model with `gate calibrate`"
            )
        if [_current_names(s) for s in suite] != self.current_suite:
            mine = [s["key"] for s in self.suite]
            theirs = [s.get("key") for s in suite]
            raise ArtifactError(
                f"the calibration artifact was fitted on signals {mine} with other settings than the configured "
                f"{theirs}; use the same signal configuration or refit with `gate calibrate`"
            )


def load_artifact(path: Path) -> Artifact:
    """Read and validate an artifact file; every problem is an :class:`ArtifactError` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read the calibration artifact {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return artifact_from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def artifact_from_dict(data: Any) -> Artifact:
    """Validate the JSON layout and version, then rebuild every fitted part."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"not an llm-gate calibration artifact (expected \"format\": {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ArtifactError(f"artifact version {data.get('version')!r} is not supported; this gate reads {VERSION}")
    _require_keys(data, {"model", "suite", "precheck", "stages"}, "artifact", exact=False)
    stages_data = data["stages"]
    if not isinstance(stages_data, dict) or "full" not in stages_data or set(stages_data) - set(STAGE_NAMES):
        raise ArtifactError(f"stages must hold 'full' and optionally 'free', got {stages_data!r:.80}")
    stages = {name: FittedStage.from_dict(value, where=f"stages.{name}") for name, value in stages_data.items()}
    threshold = data["precheck"].get("threshold") if isinstance(data["precheck"], dict) else "?"
    if threshold is not None and not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise ArtifactError(f"precheck.threshold must be null or a number in [0, 1], got {threshold!r}")
    if not isinstance(data["suite"], list) or not all(isinstance(s, dict) and "key" in s for s in data["suite"]):
        raise ArtifactError("suite must be a list of signal specs with a 'key' each")
    artifact = Artifact(
        model=str(data["model"]),
        suite=data["suite"],
        stages=stages,
        precheck_threshold=threshold,
        target=data.get("target", {}),
        data=data.get("data", {}),
        signal_costs=data.get("signal_costs", {}),
        metrics=data.get("metrics", {}),
        notes=list(data.get("notes", [])),
        created=str(data.get("created", "")),
    )
    if "id" in data and data["id"] != artifact.id:
        raise ArtifactError(f"id {data['id']!r} does not match the content ({artifact.id!r}): the file was edited")
    return artifact


def _require_keys(data: Any, keys: set[str], where: str, *, exact: bool = True) -> None:
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{where} must be an object, got {type(data).__name__}")
    missing = sorted(keys - set(data))
    if missing:
        raise ArtifactError(f"{where} is missing {missing}")
    extra = sorted(set(data) - keys) if exact else []
    if extra:
        raise ArtifactError(f"{where} has unknown keys {extra}")


def _current_names(spec: Mapping[str, Any]) -> dict[str, Any]:
    stage = spec.get("stage")
    renamed = isinstance(stage, str) and stage in FORMER_STAGE_NAMES
    return {**spec, "stage": FORMER_STAGE_NAMES[stage]} if renamed else dict(spec)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _nan_to_none(value: Any) -> Any:
    """Strict JSON has no NaN: metrics that are undefined on the data are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(item) for item in value]
    return value
