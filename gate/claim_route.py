"""The claim route of the pipeline: a long answer's assessment from its claims, whole or while it streams.

``claims_assessment`` turns a :class:`~gate.claim_judge.ClaimJudgement` into the answer's assessment (its
decision and probability follow from its claims, ``gate.claim_verdict``); :class:`StreamedClaims` runs
:meth:`gate.pipeline.Gate.assess_streamed` once a long answer is expected and the model streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, Protocol

from calibration.decision import Decision
from estimators.base import LLM, Cost, Generation, Message, Prompt, Signal, total_cost
from estimators.claims import Claim, split_claims
from gate.assessment import Assessment, RequestKindName
from gate.claim_judge import MIN_CLAIMS, ClaimJudge, ClaimJudgement
from gate.claim_stream import ClaimReady, CompleteClaims, StreamsText
from gate.claim_verdict import answer_decision, answer_probability
from gate.conversation import Conversation
from gate.errors import UpstreamError
from gate.request_kind import RequestKind

logger = logging.getLogger(__name__)


class RunState(Protocol):
    """What this module reads of the pipeline's per-request state (``gate.pipeline._Run``)."""

    question: str
    signals: dict[str, Signal]
    skipped: dict[str, str]


class AssessesWhole(Protocol):
    """What this module needs of the pipeline's ``Gate``: its model, and the whole-answer assessment."""

    llm: LLM

    async def assess(self, prompt: Prompt, **options: Any) -> Assessment:
        """The whole-answer assessment (a streamed answer that turned out short)."""
        ...


def claims_assessment(run: RunState, answer: str, answer_cost: Cost, judgement: ClaimJudgement) -> Assessment:
    """A long answer judged claim by claim: the answer's decision and probability follow from its claims."""
    signals = {**run.signals, judgement.signal.name: judgement.signal}
    scorer, claims = judgement.calibration.scorer, judgement.verdicts
    if not claims:
        decision: Decision = "hedge"
        reasons = [f"the claims could not be judged ({judgement.signal.error}), so the answer is hedged"]
    else:
        decision = answer_decision(claims)
        kept = sum(claim.supported for claim in claims)
        weakest = min(range(len(claims)), key=lambda index: claims[index].probability)
        reasons = [f"{kept} of {len(claims)} claims kept on the {judgement.route} route ({judgement.signal.name})"]
        if decision != "answer":  # first: the abstain message quotes it, so it names the claim, never its text
            reasons.insert(0, f"claim {weakest + 1} of {len(claims)}: {claims[weakest].reason}")
        reasons.append("the answer's probability is its weakest claim's")
    return Assessment(
        question=run.question,
        answer=answer,
        decision=decision,
        probability=answer_probability(claims),
        signals=signals,
        reasons=reasons,
        stage="full",
        thresholds={"abstain": scorer.abstain, "hedge": scorer.hedge},
        answer_cost=answer_cost,
        gate_cost=total_cost(s.cost for s in signals.values()),
        calibration=judgement.calibration.id,
        skipped=run.skipped,
        claims=claims,
        claim_route=judgement.route,
    )


class StreamedClaims:
    """One streamed answer judged claim by claim (see :meth:`Gate.assess_streamed`)."""

    def __init__(
        self,
        gate: AssessesWhole,
        judge: ClaimJudge,
        run: RunState,
        conversation: Conversation,
        kind: RequestKind,
        *,
        context: list[Message] | None,
        by_claims: bool,
    ) -> None:
        self.gate, self.judge, self.signals_run, self.by_claims = gate, judge, run, by_claims
        self.conversation = conversation
        self.references = list(kind.references) if by_claims else None
        self.context = context  # where the samples are drawn and the references read
        self.samples: list[Generation] | None = None
        self.sampling: asyncio.Future[list[Generation]] | None = None
        self.max_tokens = 0  # set by run: the answer's limit, also the samples'
        self.previous_end = 0  # where the last claim handed on ended

    async def run(
        self,
        *,
        temperature: float,
        max_tokens: int,
        options: Mapping[str, Any] | None,
        logprobs: int | None,
        concurrent: bool,
    ) -> AsyncIterator[ClaimReady | Assessment]:
        """Stream the answer, hand on each claim judged, then the assessment.

        ``concurrent``: the model serves calls side by side, so the closed-book route's samples are drawn while
        the answer streams. A model that serves one call at a time would answer after the samples instead, so
        there they are drawn once the first claim is complete (never for an answer that turns out short).
        ``logprobs``: asked with the answer, for an answer judged whole after all.
        """
        llm = self.gate.llm
        assert isinstance(llm, StreamsText)
        self.max_tokens = max_tokens
        if concurrent and not self.references:
            self._start_sampling()
        claims, final, started = CompleteClaims(), None, time.perf_counter()
        try:
            stream = llm.stream_text(
                list(self.conversation.messages),
                temperature=temperature,
                max_tokens=max_tokens,
                options=options,
                logprobs=logprobs,
            )
            async for piece in stream:
                if isinstance(piece, Generation):
                    final = piece  # the whole answer, last: its usage and (where the model gives them) log-probs
                    continue
                for claim in claims.add(piece):
                    if (ready := await self._judged(claim, claims.answer)) is not None:
                        yield ready
            answer = claims.answer
            usage = final.usage if final is not None else Cost(calls=1)
            answer_cost = usage.model_copy(update={"seconds": time.perf_counter() - started})
            if not self.by_claims and claims.handed_on == 0 and len(split_claims(answer)) < MIN_CLAIMS:
                # a short answer after all: judged whole, as if it had not streamed
                assessment = await self.gate.assess(
                    self.conversation.messages,
                    answer=answer,
                    logprobs=None if final is None else final.logprobs,
                    known=self.signals_run.signals,
                    precheck=False,
                    claims=False,
                )
                yield assessment.model_copy(update={"answer_cost": answer_cost})
                return
            for claim in claims.finish():
                if (ready := await self._judged(claim, answer)) is not None:
                    yield ready
            yield await self._assessment(answer, answer_cost)
        finally:
            if self.sampling is not None and not self.sampling.done():
                self.sampling.cancel()

    def _start_sampling(self) -> None:
        self.sampling = asyncio.ensure_future(
            self.judge.draw_samples(
                self.signals_run.question, llm=self.gate.llm, conversation=self.context, max_tokens=self.max_tokens
            )
        )

    async def _sample_texts(self) -> list[str] | None:
        """The drawn samples' texts (``None`` on the grounded route; none when drawing them failed)."""
        if self.references:
            return None
        if self.sampling is None:
            self._start_sampling()
        assert self.sampling is not None
        if self.samples is None:
            try:
                self.samples = await self.sampling
            except UpstreamError as exc:
                logger.warning("claim samples lost to an upstream error (status %s)", exc.status)
                self.samples = []
        return [g.text for g in self.samples]

    async def _judged(self, claim: Claim, answer: str) -> ClaimReady | None:
        """``claim`` judged on its own (a claim's support does not depend on the others), placed in the answer."""
        judgement = await self.judge.judge(
            self.signals_run.question,
            claim.text,
            llm=self.gate.llm,
            references=self.references,
            conversation=self.context,
            samples=await self._sample_texts(),
            max_tokens=self.max_tokens,
        )
        if not judgement.verdicts:
            return None  # the route failed: nothing is released, the assessment says why
        verdict = judgement.verdicts[0]
        placed = verdict.model_copy(update={"start": claim.start, "end": claim.end, "text": claim.text})
        prefix, self.previous_end = answer[self.previous_end : claim.start], claim.end
        return ClaimReady(placed, prefix)

    async def _assessment(self, answer: str, answer_cost: Cost) -> Assessment:
        judgement = await self.judge.judge(
            self.signals_run.question,
            answer,
            llm=self.gate.llm,
            references=self.references,
            conversation=self.context,
            samples=await self._sample_texts(),
            max_tokens=self.max_tokens,
        )
        drawn = total_cost(self.samples or ())
        signal = judgement.signal.model_copy(update={"cost": judgement.signal.cost + drawn})
        judgement = replace(judgement, signal=signal)
        kind: RequestKindName = "grounded" if judgement.route == "grounded" else "factual"
        return claims_assessment(self.signals_run, answer, answer_cost, judgement).model_copy(update={"kind": kind})


__all__ = ["StreamedClaims", "claims_assessment"]
