"""Which signals the gate computes, in which cascade stage, with which estimator configuration.

The cascade has three stages: ``precheck`` (familiarity, before generating), ``free`` (signals that come
with the answer) and ``full`` (the signals that cost LLM calls, run only while the decision is open). The
same three names appear in the calibration artifact and in :attr:`gate.assessment.Assessment.stage`.

A suite is data (JSON-able), so the calibration artifact can record exactly the configuration its
fusion was fitted on and refuse to be applied to a different one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from estimators import ESTIMATOR_NAMES, make_estimator
from estimators.base import Estimator

StageName = Literal["precheck", "free", "full"]
STAGES: tuple[StageName, ...] = ("precheck", "free", "full")


@dataclass(frozen=True)
class SignalSpec:
    """One signal of the suite: its feature name, the estimator behind it, and that estimator's settings.

    ``key`` names the feature in fusion (two specs may share an estimator with different settings,
    e.g. mean and minimum token probability). ``stage`` places it in the cost cascade: the precheck runs
    before generation, free signals need no LLM call, full-stage ones run only when the decision is open.
    """

    key: str
    estimator: str
    stage: StageName
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key or not self.key.replace("_", "").isalnum():
            raise ValueError(f"signal key must be a non-empty identifier, got {self.key!r}")
        if self.estimator not in ESTIMATOR_NAMES:
            raise ValueError(f"unknown estimator {self.estimator!r} for {self.key!r}; valid: {list(ESTIMATOR_NAMES)}")
        if self.stage not in STAGES:
            raise ValueError(f"stage of {self.key!r} must be one of {list(STAGES)}, got {self.stage!r}")
        if self.stage == "precheck" and self.estimator != "familiarity":
            raise ValueError(f"only the familiarity estimator can run as the precheck, got {self.estimator!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in the calibration artifact."""
        return {"key": self.key, "estimator": self.estimator, "stage": self.stage, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys are a ``ValueError``."""
        expected = {"key", "estimator", "stage", "params"}
        if not isinstance(data, Mapping) or set(data) != expected:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"a signal spec needs exactly the keys {sorted(expected)}, got {got}")
        if not isinstance(data["params"], Mapping):
            raise ValueError(f"params of signal {data['key']!r} must be an object, got {data['params']!r}")
        return cls(key=data["key"], estimator=data["estimator"], stage=data["stage"], params=dict(data["params"]))


CANDIDATE_SUITE: tuple[SignalSpec, ...] = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 1, "method": "surprise"}),
    SignalSpec("logprob_mean", "logprob", "free", {"aggregate": "mean"}),
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
    SignalSpec("consistency", "consistency", "full", {"n_samples": 5, "temperature": 1.0, "adaptive": False}),
    SignalSpec("p_true", "p_true", "full"),
    SignalSpec("verbalized", "verbalized", "full", {"style": "self_probing"}),
    SignalSpec("pace", "pace", "full", {"n_samples": 1}),
)
"""Every signal family the gate can compute, each selectable by key (``signals:`` in the settings).

Familiarity is the one-pass ``surprise`` method on the rarest concept (one forced pass, cached across
requests; a second concept added nothing on the development rows, ``benchmarks/results/cost.md``);
consistency draws its five samples in one call. PACE scores only when references (given or retrieved) exist.
"""

DEFAULT_SUITE: tuple[SignalSpec, ...] = CANDIDATE_SUITE[:4]
"""What the gate computes unless told otherwise: the signals that paid for their calls on the embedded
model (``benchmarks/results/cost.md``). P(True) and verbalized confidence were at chance there for one
call or more each; PACE cost 3.4 calls and 20 s a question for 0.62 AUROC (``quality.md``, 279 questions
with passages), below the free token probability. All three stay available by name."""


def check_suite(suite: Sequence[SignalSpec]) -> None:
    """Reject an empty suite or duplicate keys, which would make fusion features ambiguous."""
    keys = [spec.key for spec in suite]
    if not keys:
        raise ValueError("the signal suite is empty; name at least one signal")
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate signal keys in the suite: {duplicates}")


def select(suite: Sequence[SignalSpec], keys: Sequence[str] | None) -> tuple[SignalSpec, ...]:
    """The specs named by ``keys`` (all when ``None``); an unknown key lists the valid ones."""
    if keys is None:
        return tuple(suite)
    known = {spec.key: spec for spec in suite}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"unknown signals {unknown}; valid: {list(known)}")
    return tuple(spec for spec in suite if spec.key in keys)


def without_precheck(suite: Sequence[SignalSpec]) -> tuple[SignalSpec, ...]:
    """The same signals with the precheck moved into the full stage (``precheck: false``)."""
    return tuple(replace(spec, stage="full") if spec.stage == "precheck" else spec for spec in suite)


def build_estimators(
    suite: Sequence[SignalSpec], *, concept_cache: object | None = None, **pace_resources: Any
) -> dict[str, Estimator]:
    """One estimator per spec; ``pace_resources`` (``searcher``, ``embedder``) go to PACE only, the
    ``concept_cache`` (scores kept across requests) to familiarity only."""
    check_suite(suite)
    estimators: dict[str, Estimator] = {}
    for spec in suite:
        extra = {k: v for k, v in pace_resources.items() if v is not None} if spec.estimator == "pace" else {}
        if spec.estimator == "familiarity" and concept_cache is not None:
            extra = {"cache": concept_cache}
        estimators[spec.key] = make_estimator(spec.estimator, **spec.params, **extra)
    return estimators
