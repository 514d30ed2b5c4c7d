"""What the gate concludes about one request: the answer, its signals, one probability and a decision."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from calibration.decision import Decision
from estimators.base import Cost, Signal, TokenLogprob, ToolCall
from gate.claim_verdict import ClaimVerdict
from gate.suite import StageName

__all__ = ["Assessment", "Decision", "RequestKindName", "Verdict"]

Verdict = Decision | Literal["not_assessed"]
"""What the gate concluded: one of the three decisions, or that it did not assess this request at all
(a request it cannot judge, such as creative writing or a tool call, passes unchanged, with the reason)."""

RequestKindName = Literal["factual", "grounded", "non_factual", "tool_call"]
"""What a request asks for; the gate assesses factual and grounded requests only (``gate.request_kind``)."""


class Assessment(BaseModel):
    """The gate's verdict on one request, with everything needed to explain and audit it.

    ``probability`` is the calibrated probability that ``answer`` is correct (``None`` only when no
    signal could be computed); ``stage`` says where the cost cascade stopped: ``"precheck"`` (abstained
    before generating, ``answer`` is ``None``), ``"free"`` (decided on the signals that cost nothing
    extra), ``"full"``, or ``"none"`` when the request was not assessed (``decision`` is
    ``"not_assessed"``, ``kind`` and ``reasons`` say why; the answer passes unchanged). ``tool_calls`` are
    the tool calls the model answered with (passed through, never assessed). ``answer_tokens`` are the
    answer's tokens and log-probs when the endpoint returned them (a client that asked gets them back).
    ``answer_cost`` is the primary generation, ``gate_cost`` the gate's own work. ``claims`` holds the
    verdict on each claim when a long answer was judged claim by claim (``gate.claim_judge``; ``claim_route`` says
    which signal judged them), and ``None`` when the answer was judged whole.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    answer: str | None
    finish_reason: str | None = None
    decision: Verdict
    kind: RequestKindName = "factual"
    tool_calls: tuple[ToolCall, ...] = ()
    answer_tokens: tuple[TokenLogprob, ...] | None = None
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    signals: dict[str, Signal] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    stage: StageName | Literal["none"] = "full"
    thresholds: dict[str, float] = Field(default_factory=dict)
    answer_cost: Cost = Field(default_factory=Cost)
    gate_cost: Cost = Field(default_factory=Cost)
    calibration: str = Field(description="the artifact id, or why the gate runs uncalibrated")
    skipped: dict[str, str] = Field(default_factory=dict, description="signal -> why it did not run")
    claims: tuple[ClaimVerdict, ...] | None = None
    claim_route: Literal["grounded", "closed"] | None = None

    @property
    def cost(self) -> Cost:
        """Everything this request cost: the answer and the gate's own LLM work."""
        return self.answer_cost + self.gate_cost

    def confidences(self) -> dict[str, float | None]:
        """Each computed signal's confidence (``None`` where it failed)."""
        return {key: signal.confidence for key, signal in self.signals.items()}

    def summary(self) -> dict[str, Any]:
        """A compact JSON-able view (the proxy's ``gate`` object and the audit log build on it)."""
        claims = (
            {}
            if self.claims is None
            else {
                "claims": [claim.as_dict() for claim in self.claims],
                "claim_route": self.claim_route,
            }
        )
        return {
            "decision": self.decision,
            "kind": self.kind,
            "probability": self.probability,
            "stage": self.stage,
            "signals": self.confidences(),
            "errors": {key: s.error for key, s in self.signals.items() if s.error},
            "skipped": dict(self.skipped),
            "reasons": list(self.reasons),
            "thresholds": dict(self.thresholds),
            "cost": self.cost.model_dump(),
            "gate_cost": self.gate_cost.model_dump(),
            "calibration": self.calibration,
            **claims,
        }
