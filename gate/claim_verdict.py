"""One claim's verdict (keep, flag or withhold, with its probability and reason) and the answer's decision.

A claim is kept at or above its stage's ``hedge`` threshold, flagged between ``abstain`` and ``hedge``, and
withheld below ``abstain``. Only kept claims count as supported: ``mark`` marks every other claim and
``strike`` removes it (``gate.claim_render``), so the claims a client reads unmarked are the ones the
risk-controlled ``hedge`` threshold vouches for. The whole answer follows from its claims: ``answer`` when
every claim is kept, ``abstain`` when none is, ``hedge`` in between; its probability is the weakest claim's
(the answer as written is right only if every one of its claims is).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from calibration.decision import Decision

ClaimDecision = Literal["keep", "flag", "withhold"]


class ClaimVerdict(BaseModel):
    """One claim of a long answer: where it is, how likely it is supported, and what the gate does with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    start: int = Field(ge=0, description="character offset of the claim in the answer")
    end: int = Field(ge=0, description="end offset (exclusive): text == answer[start:end]")
    probability: float = Field(ge=0.0, le=1.0)
    decision: ClaimDecision
    reason: str = Field(description="the probability against the thresholds; quotes nothing of the claim")
    evidence: str = Field(default="", description="what the signal found (may quote the claim's names and numbers)")

    @property
    def supported(self) -> bool:
        """Whether the claim goes out unmarked (kept)."""
        return self.decision == "keep"

    def as_dict(self) -> dict[str, Any]:
        """The JSON view in the ``gate`` object."""
        return {
            "text": self.text,
            "span": [self.start, self.end],
            "probability": round(self.probability, 4),
            "decision": self.decision,
            "reason": self.reason,
            "evidence": self.evidence,
        }

    def withheld_dict(self) -> dict[str, Any]:
        """The JSON view of a claim the client must not read (struck, or in an abstained answer): no text."""
        return {key: value for key, value in self.as_dict().items() if key not in ("text", "evidence")}


def claim_decision(probability: float, *, abstain: float, hedge: float) -> ClaimDecision:
    """Keep at or above ``hedge``, flag between the thresholds, withhold below ``abstain``."""
    if probability >= hedge:
        return "keep"
    return "flag" if probability >= abstain else "withhold"


def answer_decision(claims: Sequence[ClaimVerdict]) -> Decision:
    """The whole answer's decision: answer when every claim is kept, abstain when none is, else hedge."""
    kept = sum(claim.supported for claim in claims)
    if claims and kept == len(claims):
        return "answer"
    return "hedge" if kept else "abstain"


def answer_probability(claims: Sequence[ClaimVerdict]) -> float | None:
    """The weakest claim's probability (``None`` without claims)."""
    return min((claim.probability for claim in claims), default=None)
