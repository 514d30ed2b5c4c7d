"""Which signal judges a long answer's claims, through which calibration, and each claim's verdict.

Two routes. **Grounded**: the request brings references (tool results, pasted passages, ``references``
given to the library); each claim is scored by ``claim_support`` against them, with no LLM call.
**Closed-book**: no references; each claim is scored by ``claim_consistency`` against M answers sampled
from the model in one call (samples the caller already has are reused). Each route reads its own claim
artifact (a ``FittedStage`` whose signal is that route's support), or, when none is configured, the
explicit uncalibrated mapping below, which its reasons and calibration id say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from calibration.artifact import ArtifactError, load_artifact
from estimators.base import LLM, Generation, Message, Signal
from estimators.claim_consistency import ClaimConsistency
from estimators.claim_support import ClaimSupport
from gate.claim_verdict import ClaimVerdict, claim_decision
from gate.config import Settings
from gate.errors import UpstreamError
from gate.reasons import format_probability
from gate.uncalibrated import MeanScorer
from retrieval.base import Embedder

logger = logging.getLogger(__name__)

Route = Literal["grounded", "closed"]
SIGNALS: dict[Route, str] = {"grounded": "claim_support", "closed": "claim_consistency"}
"""The signal each route's claim artifact reads (per claim: that claim's support)."""
MIN_CLAIMS = 2
"""An answer with fewer claims is a short answer: it keeps the whole-answer path."""
UNCALIBRATED_WITHHOLD = 0.25
UNCALIBRATED_KEEP = 0.5
"""The uncalibrated claim thresholds on a claim's raw support. Lower than the whole-answer default (0.3 / 0.7)
because support is a word overlap: a faithful restatement of terse evidence (a tool's JSON, a sampled answer in
other words) finds half to two thirds of its content words there, while each number or name that the evidence
never mentions halves the support, so an invented detail falls below 0.5 and a weakly related one below 0.25."""
_WHAT = {"grounded": "support by the references", "closed": "agreement of the model's sampled answers"}
_DONE = {"keep": "kept", "flag": "flagged", "withhold": "withheld"}


class ClaimScorer(Protocol):
    """A calibrated map from one claim's support to the probability that the claim is right, with thresholds."""

    signals: tuple[str, ...]
    abstain: float
    hedge: float

    def probability(self, values: Mapping[str, float | None]) -> float:
        """P(claim supported) from the route's signal."""
        ...


@dataclass(frozen=True)
class RouteCalibration:
    """One route's scorer and what the ``gate`` object calls it (the artifact id, or why it is uncalibrated)."""

    scorer: ClaimScorer
    id: str

    @classmethod
    def uncalibrated(cls, route: Route) -> RouteCalibration:
        """The explicit fallback: the claim's raw support read as its probability, with fixed thresholds."""
        why = (
            f"uncalibrated: no claim artifact for the {route} route; a claim's {SIGNALS[route]} is read as its "
            f"probability, thresholds {UNCALIBRATED_WITHHOLD:g} / {UNCALIBRATED_KEEP:g}"
        )
        scorer = MeanScorer(signals=(SIGNALS[route],), abstain=UNCALIBRATED_WITHHOLD, hedge=UNCALIBRATED_KEEP)
        return cls(scorer, why)

    @classmethod
    def from_path(cls, path: Path | None, route: Route, *, model: str) -> RouteCalibration:
        """The artifact at ``path`` (fitted for ``model``, its full stage reading the route's signal), else the
        uncalibrated map."""
        if path is None:
            return cls.uncalibrated(route)
        artifact = load_artifact(path)
        stage = artifact.full
        if artifact.model != model:
            raise ArtifactError(
                f"the claim artifact {path} was fitted for model {artifact.model!r}, not {model!r}; fit one for "
                "this model or leave the setting unset (uncalibrated)"
            )
        if SIGNALS[route] not in stage.signals:
            raise ArtifactError(
                f"the claim artifact {path} reads {list(stage.signals)}; the {route} route needs one that reads "
                f"{SIGNALS[route]!r}"
            )
        return cls(stage, artifact.id)


@dataclass(frozen=True)
class ClaimJudgement:
    """The claims of one answer judged on one route: verdicts, the signal behind them, the calibration used."""

    route: Route
    signal: Signal
    calibration: RouteCalibration
    verdicts: tuple[ClaimVerdict, ...]


class ClaimJudge:
    """Judges the claims of long answers; holds configuration only (requests run concurrently).

    Parameters
    ----------
    grounded, closed : RouteCalibration
        Each route's calibration (default: the uncalibrated mapping).
    embedder : Embedder or None
        Sentence embedder of both claim signals; ``None`` scores by content-word overlap, and must then be
        what the claim artifacts were fitted with (a signal means at serving what it meant when fitted).
    n_samples : int
        Answers sampled for the closed-book route (one call).
    """

    def __init__(
        self,
        *,
        grounded: RouteCalibration | None = None,
        closed: RouteCalibration | None = None,
        embedder: Embedder | None = None,
        n_samples: int = 5,
    ) -> None:
        self.grounded = grounded or RouteCalibration.uncalibrated("grounded")
        self.closed = closed or RouteCalibration.uncalibrated("closed")
        self.embedder = embedder
        self.n_samples = n_samples

    def calibration(self, route: Route) -> RouteCalibration:
        """The calibration of ``route``."""
        return self.grounded if route == "grounded" else self.closed

    async def judge(
        self,
        question: str,
        answer: str,
        *,
        llm: LLM,
        references: Sequence[str] | None,
        conversation: Sequence[Message] | None,
        samples: Sequence[str] | None = None,
        max_tokens: int = 256,
    ) -> ClaimJudgement:
        """Score every claim of ``answer``: grounded when ``references`` are given, else closed-book.

        ``conversation`` is the request's turns: the grounded route also reads its system, user and tool
        turns as references, the closed-book route samples in it. ``samples``: answers already drawn.
        """
        route: Route = "grounded" if references else "closed"
        if route == "grounded":
            signal = await ClaimSupport(embedder=self.embedder).score(
                question, answer, llm=llm, references=references, conversation=conversation
            )
        else:
            estimator = self._consistency(max_tokens)
            try:
                signal = await estimator.score(question, answer, llm=llm, samples=samples, conversation=conversation)
            except UpstreamError as exc:  # the samples are lost, not the answer: it is hedged, with the reason
                logger.warning("claim samples lost to an upstream error (status %s)", exc.status)
                signal = Signal(name=estimator.name, error=f"upstream error: {exc}")
        calibration = self.calibration(route)
        return ClaimJudgement(route, signal, calibration, verdicts(signal, route, calibration.scorer))

    async def draw_samples(
        self, question: str, *, llm: LLM, conversation: Sequence[Message] | None, max_tokens: int
    ) -> list[Generation]:
        """The closed-book route's samples, drawn in one call as ``claim_consistency`` draws them (to be drawn
        while the primary answer streams, then passed to :meth:`judge` as ``samples``)."""
        estimator = self._consistency(max_tokens)
        return await llm.generate(
            list(conversation) if conversation else [{"role": "user", "content": question}],
            n=estimator.n_samples,
            temperature=estimator.temperature,
            max_tokens=estimator.max_tokens,
            seed=estimator.seed,
        )

    def _consistency(self, max_tokens: int) -> ClaimConsistency:
        """Samples as long as the answer may be: a claim missing from a cut sample would count as unsupported."""
        return ClaimConsistency(embedder=self.embedder, n_samples=self.n_samples, max_tokens=max_tokens)


def verdicts(signal: Signal, route: Route, scorer: ClaimScorer) -> tuple[ClaimVerdict, ...]:
    """Each scored claim of ``signal`` (``details["claims"]``) through ``scorer``; none when the signal failed."""
    if signal.confidence is None:
        return ()
    out = []
    for claim in signal.details["claims"]:
        probability = min(max(scorer.probability({SIGNALS[route]: claim["support"]}), 0.0), 1.0)
        decision = claim_decision(probability, abstain=scorer.abstain, hedge=scorer.hedge)
        start, end = claim["span"]
        out.append(
            ClaimVerdict(
                text=claim["text"],
                start=start,
                end=end,
                probability=probability,
                decision=decision,
                reason=_reason(claim, route, probability, decision, scorer),
                evidence=str(claim["reason"]),
            )
        )
    return tuple(out)


def _reason(claim: Mapping[str, object], route: Route, probability: float, decision: str, scorer: ClaimScorer) -> str:
    """E.g. "support by the references 0.17: probability 0.17, below the withhold threshold 0.25, so withheld"."""
    shown, abstain, hedge = (format_probability(p) for p in (probability, scorer.abstain, scorer.hedge))
    if decision == "keep":
        where = f"at or above the keep threshold {hedge}"
    elif decision == "flag":
        where = f"between {abstain} and {hedge}"
    else:
        where = f"below the withhold threshold {abstain}"
    support = format_probability(float(claim["support"]))  # type: ignore[arg-type]
    return f"{_WHAT[route]} {support}: probability {shown}, {where}, so {_DONE[decision]}"


SHIPPED_GROUNDED = Path(__file__).parent / "data" / "gemma-3-270m.claims-grounded.calibration.json"
"""The grounded route's claim artifact fitted for the embedded model (no closed-book one could be certified).
Not used unless configured (``claims_grounded_artifact``): it was fitted on HaluEval QA claims, where it holds
its guarantee, but on long answers it abstains on 65% of faithful summaries and 94% of faithful dialogue
responses, and the uncalibrated mapping separated faithful from hallucinated responses better on the dev pairs
(``benchmarks/claim_route_decisions.py``)."""


def claim_judge_from(settings: Settings) -> ClaimJudge | None:
    """The claim judge of ``settings`` (``None`` with ``claims: off``): configured artifacts, else the
    uncalibrated mapping (see :data:`SHIPPED_GROUNDED` for why the shipped one is opt-in); an artifact fitted for
    another model is refused."""
    if settings.claims == "off":
        return None
    routes: dict[Route, RouteCalibration] = {}
    for route, given in (("grounded", settings.claims_grounded_artifact), ("closed", settings.claims_closed_artifact)):
        routes[route] = RouteCalibration.from_path(given, route, model=settings.model)
    return ClaimJudge(grounded=routes["grounded"], closed=routes["closed"], n_samples=settings.claim_samples)


__all__ = [
    "MIN_CLAIMS",
    "SIGNALS",
    "ClaimJudge",
    "ClaimJudgement",
    "ClaimScorer",
    "RouteCalibration",
    "claim_judge_from",
    "verdicts",
]
