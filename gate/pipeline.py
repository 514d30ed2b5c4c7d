"""One request end to end: precheck, answer, signals (cheap first), fused probability, decision, reasons.

The pipeline knows nothing about HTTP; the proxy and the CLI both call :meth:`Gate.assess`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from calibration.decision import Decision, decision_of
from estimators.base import LLM, Cost, Generation, Message, Prompt, Signal, total_cost
from estimators.claims import split_claims
from estimators.consistency import Consistency
from estimators.tool_agreement import ToolCallAgreement
from gate.assessment import Assessment, RequestKindName
from gate.claim_judge import MIN_CLAIMS, ClaimJudge
from gate.claim_route import StreamedClaims, claims_assessment
from gate.claim_stream import ClaimReady, StreamsText
from gate.conversation import DEFAULT_CONTEXT_TOKENS, Conversation
from gate.errors import UpstreamError
from gate.reasons import format_probability, precheck_reason, signal_reasons
from gate.request_kind import RequestKind, classify
from gate.suite import DEFAULT_SUITE, SignalSpec, StageName, build_estimators, check_suite, select
from gate.uncalibrated import UNCALIBRATED_ABSTAIN, UNCALIBRATED_HEDGE

logger = logging.getLogger(__name__)

_QUESTIONS_BESIDE_TEXT = frozenset({"context:question", "context:expository", "context:mixed", "context:fallback"})
"""Request kinds that are grounded only because earlier turns supplied text: the last turn is still a question
the model answers from what it knows ("Thanks. Who wrote Hamlet?" after a weather tool's result)."""

ANSWER_LOGPROBS = 5  # top alternatives asked with the answer; P(True)-style signals read them for free
TOOL_CALL_REASON = "the model called tools; tool calls are not assessed"
TOOL_CALL_THRESHOLDS = (UNCALIBRATED_ABSTAIN, UNCALIBRATED_HEDGE)
"""Abstain and hedge thresholds on the tool-call agreement rate: the uncalibrated default's (``gate.uncalibrated``)."""


class StageScorer(Protocol):
    """A calibrated model for one cascade stage: signals in, P(correct) out, with its two thresholds."""

    signals: tuple[str, ...]
    abstain: float
    hedge: float

    def probability(self, values: Mapping[str, float | None]) -> float:
        """Calibrated probability that the answer is correct, from the signals' confidences."""
        ...


class Calibration(Protocol):
    """What the pipeline needs from a calibration artifact."""

    id: str
    precheck_threshold: float | None
    free: StageScorer | None
    full: StageScorer


@dataclass(frozen=True)
class Precheck:
    """The precheck alone: the signals it computed, and the abstention when the question is unfamiliar."""

    signals: dict[str, Signal]
    abstain: Assessment | None


@dataclass(frozen=True)
class Budget:
    """Limits on the gate's own LLM work per request (the primary answer is not counted)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"budget {name} must be positive or None, got {value!r}")


class Gate:
    """Assess answers with the configured signals and turn them into answer / hedge / abstain.

    Parameters
    ----------
    llm : LLM
        The answering model; estimators use it too (its own familiarity and consistency are measured).
    calibration : Calibration
        The fitted artifact (or the documented uncalibrated default) that fuses signals into a probability.
    suite : sequence of SignalSpec
        Which signals exist and in which cascade stage; must match what ``calibration`` was fitted on.
    searcher, embedder : optional
        Retrieval for PACE when a request brings no references.
    answer_tokens : int
        Longest primary answer.
    concept_cache : ConceptCache, optional
        Familiarity scores kept across requests (``gate.concept_cache``); the familiarity precheck then
        costs no call for a concept already scored.
    context_tokens : int
        How much of a conversation the signals read: the question is the last user turn with the most recent
        earlier turns before it, within this many tokens (estimated; ``gate.conversation``).
    assess_all : bool
        Assess every request as a factual one. Off (the default), requests are first sorted by kind
        (``gate.request_kind``, no LLM call): creative writing, rewriting, code and chit-chat pass with the
        verdict ``not_assessed`` and the reason, and so do tasks over supplied text unless the suite has PACE
        to check the answer against that text.
    tool_calls : {"pass", "assess"}
        What happens to an answer that calls tools: passed on ``not_assessed`` (default), or assessed by how
        often samples make the same calls (``estimators.tool_agreement``, one more LLM call; uncalibrated:
        the agreement rate is read as the probability, with the uncalibrated default's thresholds).
    claims : ClaimJudge, optional
        Judges long answers claim by claim (``gate.claim_judge``): an answer of several sentences gets a verdict
        per claim instead of one for the paragraph, and a task over supplied text that the suite cannot ground
        (no PACE) is checked claim by claim against that text instead of passing ``not_assessed``.
        ``None``: every answer is judged whole, as before.
    concurrent_signals : bool
        Run a stage's signals concurrently (right for remote endpoints). Off, they run one after the
        other, which costs nothing on a backend that serves one call at a time anyway (the embedded model)
        and keeps each signal's measured seconds its own.
    """

    def __init__(
        self,
        llm: LLM,
        calibration: Calibration,
        *,
        suite: Sequence[SignalSpec] = DEFAULT_SUITE,
        searcher: object | None = None,
        embedder: object | None = None,
        answer_tokens: int = 64,
        concurrent_signals: bool = True,
        concept_cache: object | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        assess_all: bool = False,
        tool_calls: Literal["pass", "assess"] = "pass",
        claims: ClaimJudge | None = None,
    ) -> None:
        check_suite(suite)
        if context_tokens < 1:
            raise ValueError(f"context_tokens must be at least 1, got {context_tokens}")
        self.llm = llm
        self.calibration = calibration
        self.suite = tuple(suite)
        self.estimators = build_estimators(
            self.suite, concept_cache=concept_cache, searcher=searcher, embedder=embedder
        )
        self.has_searcher = searcher is not None
        self.answer_tokens = answer_tokens
        self.concurrent_signals = concurrent_signals
        self.context_tokens = context_tokens
        self.assess_all = assess_all
        self.tool_calls = tool_calls
        self.can_ground = _can_ground(calibration, self.suite)
        self.tool_agreement = ToolCallAgreement()
        self.claims = claims

    def with_calibration(self, calibration: Calibration) -> Gate:
        """This gate deciding with another calibration (a tenant's risk target): the same model, signals and
        caches (a shallow copy shares them), and what the gate derives from its calibration derived again."""
        other = copy.copy(self)
        other.calibration = calibration
        other.can_ground = _can_ground(calibration, other.suite)
        return other

    async def assess(
        self,
        prompt: Prompt,
        *,
        answer: str | None = None,
        logprobs: Sequence[float] | None = None,
        samples: Sequence[str] | None = None,
        references: Sequence[str] | None = None,
        signals: Sequence[str] | None = None,
        cascade: bool = True,
        precheck: bool = True,
        budget: Budget | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        known: Mapping[str, Signal] | None = None,
        options: Mapping[str, Any] | None = None,
        assess_all: bool | None = None,
        claims: bool = True,
    ) -> Assessment:
        """Assess one request; generates the answer unless ``answer`` is given.

        ``signals`` restricts which signals run (default: the whole suite); ``cascade=False`` runs every
        signal (what calibration needs); ``precheck=False`` never abstains before generating.
        ``temperature`` and ``max_tokens`` apply to the primary answer (a proxy passes the client's).
        ``known`` holds signals already computed for this question (e.g. by :meth:`precheck`), used as they are.
        ``options`` are the client's own request fields (tools, response_format...), sent with the primary
        answer only; an answer that calls tools is passed on unassessed (:func:`not_assessed`).
        ``assess_all`` overrides the gate's setting for this request (calibration data is factual by design).
        ``claims=False`` judges a long answer whole even when the gate has a claim judge (the ``off`` policy).
        """
        conversation = Conversation.from_prompt(prompt)
        messages = list(conversation.messages)
        kind = self._kind(conversation, assess_all)
        judge = self.claims if claims else None
        # a task over supplied text that only the claim route can check against that text
        by_claims = kind is not None and judge is not None and _over_supplied_text(kind) and not self.can_ground
        if kind is not None and not by_claims and (why := self._unassessable(kind)) is not None:
            reply = Generation(text=answer) if answer is not None else None
            return await self._passed_on(
                conversation, kind, why, reply, temperature=temperature, max_tokens=max_tokens, options=options
            )
        given_references = references  # the claim route reads only these, or the text a task is over
        if kind is not None and references is None:
            references = list(kind.references) or None
        wanted = set(signals) if signals is not None else None
        run = _Run(self, self._question(conversation), wanted, budget or Budget(), known, every_signal=not cascade)
        # the claim route over supplied text judges the answer by that text, not by what the model knows
        if not by_claims:
            await run.precheck()
        if precheck and not by_claims and (abstention := run.precheck_abstention()) is not None:
            return abstention
        answer_cost = Cost()
        finish_reason, tokens = None, None
        if answer is None:
            generation = await self._answer(
                messages, temperature=temperature, max_tokens=max_tokens, options=options, logprobs=ANSWER_LOGPROBS
            )
            answer_cost = generation.usage
            if generation.tool_calls and self.tool_calls == "assess":
                return await self._assess_tool_calls(generation, answer_cost, run, messages, options or {})
            if generation.tool_calls:
                return not_assessed(
                    run.question,
                    generation,
                    kind="tool_call",
                    reason=TOOL_CALL_REASON,
                    calibration=self.calibration.id,
                    answer_cost=answer_cost,
                    signals=run.signals,
                )
            answer, logprobs, finish_reason = generation.text.strip(), generation.logprobs, generation.finish_reason
            tokens = generation.tokens
        grounded = kind is not None and _over_supplied_text(kind)
        if judge is not None and (by_claims or len(split_claims(answer)) >= MIN_CLAIMS):
            given = given_references
            if given is None and grounded and kind is not None:
                given = list(kind.references)
            judgement = await judge.judge(
                run.question,
                answer,
                llm=self.llm,
                references=given,
                conversation=list(conversation.messages) if given else self._signal_messages(conversation),
                samples=samples,
                max_tokens=max_tokens or self.answer_tokens,
            )
            assessment = claims_assessment(run, answer, answer_cost, judgement)
            written_kind: RequestKindName = "grounded" if judgement.route == "grounded" else "factual"
            update = {"finish_reason": finish_reason, "answer_tokens": tokens, "kind": written_kind}
            return assessment.model_copy(update=update)
        context = {
            "samples": samples,
            "references": references if references is not None else (list(conversation.references) or None),
            "logprobs": logprobs,
            "conversation": self._signal_messages(conversation),
        }
        await run.score_stage("free", answer, context)
        # an answer over supplied text is judged against it: the free stage cannot end that assessment
        if cascade and not grounded and not run.full_stage_is_free(context) and run.free_stage_decides():
            assessment = run.finish(answer, answer_cost, stage="free")
        else:
            await run.score_stage("full", answer, context)
            assessment = run.finish(answer, answer_cost, stage="full")
        written: RequestKindName = "grounded" if grounded else "factual"
        return assessment.model_copy(update={"finish_reason": finish_reason, "answer_tokens": tokens, "kind": written})

    async def assess_streamed(
        self,
        prompt: Prompt,
        *,
        signals: Sequence[str] | None = None,
        cascade: bool = True,
        precheck: bool = True,
        budget: Budget | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ClaimReady | Assessment]:
        """:meth:`assess` for a reply streamed claim by claim: each claim as soon as it is complete and judged,
        then the assessment (always the last item).

        Only where a long answer is expected and the model can stream (:class:`~gate.claim_stream.StreamsText`,
        no tools offered): a task over supplied text that only the claim route can check (grounded: no call
        besides the answer, so a sentence goes as soon as it is complete) and an expository request (closed-book:
        the samples are drawn while the answer streams, and the first claim waits for them). Anything else, and
        an answer that turns out to be one sentence, is assessed whole as :meth:`assess` does (one item).
        """
        conversation = Conversation.from_prompt(prompt)
        kind, judge = self._kind(conversation, None), self.claims
        streams = judge is not None and isinstance(self.llm, StreamsText) and not (options or {}).get("tools")
        by_claims = kind is not None and _over_supplied_text(kind) and not self.can_ground
        if not streams or kind is None or judge is None or not (by_claims or kind.rule == "expository"):
            yield await self.assess(
                prompt,
                signals=signals,
                cascade=cascade,
                precheck=precheck,
                budget=budget,
                temperature=temperature,
                max_tokens=max_tokens,
                options=options,
            )
            return
        run = _Run(self, self._question(conversation), None if signals is None else set(signals), budget or Budget())
        if not by_claims:  # as in assess: an answer over supplied text is judged by that text
            await run.precheck()
        if precheck and not by_claims and (abstention := run.precheck_abstention()) is not None:
            yield abstention
            return
        context = list(conversation.messages) if by_claims else self._signal_messages(conversation)
        streamed = StreamedClaims(self, judge, run, conversation, kind, context=context, by_claims=by_claims)
        async for item in streamed.run(
            temperature=temperature,
            max_tokens=max_tokens or self.answer_tokens,
            options=options,
            logprobs=ANSWER_LOGPROBS,
            concurrent=self.concurrent_signals,
        ):
            yield item

    async def precheck(self, prompt: Prompt) -> Precheck:
        """Only the familiarity precheck, before any answer exists (a proxy's pre-call hook)."""
        conversation = Conversation.from_prompt(prompt)
        kind = self._kind(conversation, None)
        if kind is not None and self._unassessable(kind) is not None:
            return Precheck(signals={}, abstain=None)  # nothing to abstain on: the request passes unassessed
        run = _Run(self, self._question(conversation), None, Budget())
        await run.precheck()
        return Precheck(signals=dict(run.signals), abstain=run.precheck_abstention())

    async def _answer(
        self,
        messages: list[Message],
        *,
        temperature: float,
        max_tokens: int | None,
        options: Mapping[str, Any] | None,
        logprobs: int | None = None,
    ) -> Generation:
        """The primary answer, the client's own fields sent with it, its usage timed on the wall clock."""
        started = time.perf_counter()
        [generation] = await self.llm.generate(
            messages,
            n=1,
            temperature=temperature,
            max_tokens=max_tokens or self.answer_tokens,
            logprobs=logprobs,
            **({"options": options} if options else {}),  # an LLM written before options still serves
        )
        usage = generation.usage.model_copy(update={"seconds": time.perf_counter() - started})
        return generation.model_copy(update={"usage": usage})

    async def _passed_on(
        self,
        conversation: Conversation,
        kind: RequestKind,
        why: str,
        reply: Generation | None,
        *,
        temperature: float,
        max_tokens: int | None,
        options: Mapping[str, Any] | None,
    ) -> Assessment:
        """A request the signals cannot judge: the model answers (unless ``reply`` is given) and it passes."""
        if reply is None:
            reply = await self._answer(
                list(conversation.messages), temperature=temperature, max_tokens=max_tokens, options=options
            )
        called = bool(reply.tool_calls)
        # a text answer after a tool's result is an answer grounded on that result, not a tool call
        written = "grounded" if kind.kind == "tool_call" else kind.kind
        return not_assessed(
            conversation.question,
            reply,
            kind="tool_call" if called else written,
            reason=TOOL_CALL_REASON if called else why,
            calibration=self.calibration.id,
        )

    async def assess_tool_calls(
        self, prompt: Prompt, generation: Generation, *, options: Mapping[str, Any]
    ) -> Assessment:
        """Tool calls a model already made (a proxy's post-call hook), judged by agreement across samples.

        ``options`` are the request's own fields (``tools``, ``tool_choice``...): the samples are drawn with
        the same tools offered. The decision follows the uncalibrated thresholds ``TOOL_CALL_THRESHOLDS``.
        """
        conversation = Conversation.from_prompt(prompt)
        run = _Run(self, self._question(conversation), set(), Budget())
        return await self._assess_tool_calls(generation, Cost(), run, list(conversation.messages), options)

    async def _assess_tool_calls(
        self, generation: Generation, answer_cost: Cost, run: _Run, messages: list[Message], options: Mapping[str, Any]
    ) -> Assessment:
        """Tool calls judged by agreement across samples; below the abstain threshold they are withheld."""
        signal = await self.tool_agreement.score(
            generation.tool_calls, llm=self.llm, messages=messages, options=options
        )
        signals = {**run.signals, signal.name: signal}
        if signal.confidence is None:
            reason = f"tool calls could not be assessed ({signal.error}); they pass as the model made them"
            return not_assessed(
                run.question,
                generation,
                kind="tool_call",
                reason=reason,
                calibration=self.calibration.id,
                answer_cost=answer_cost,
                signals=signals,
            )
        agreeing = sum(signal.details["agree"])
        decision = decision_of(signal.confidence, abstain=TOOL_CALL_THRESHOLDS[0], hedge=TOOL_CALL_THRESHOLDS[1])
        return Assessment(
            question=run.question,
            answer=generation.text.strip(),
            finish_reason=generation.finish_reason,
            decision=decision,
            kind="tool_call",
            tool_calls=generation.tool_calls,
            probability=signal.confidence,
            signals=signals,
            reasons=[
                f"{agreeing} of {signal.details['n_samples']} samples made the same tool calls with the same "
                "arguments (uncalibrated: the agreement rate is the probability)"
            ],
            stage="full",
            thresholds=dict(zip(("abstain", "hedge"), TOOL_CALL_THRESHOLDS, strict=True)),
            answer_cost=answer_cost,
            gate_cost=total_cost(s.cost for s in signals.values()),
            calibration=f"uncalibrated tool-call agreement (artifact {self.calibration.id} judges text answers)",
            answer_tokens=generation.tokens,
        )

    def _kind(self, conversation: Conversation, assess_all: bool | None) -> RequestKind | None:
        """The request's kind, or ``None`` when every request is assessed as factual."""
        if self.assess_all if assess_all is None else assess_all:
            return None
        return classify(list(conversation.messages))

    def _unassessable(self, kind: RequestKind) -> str | None:
        """Why a request of this kind passes unassessed, or ``None`` when the signals can judge its answer."""
        if kind.kind == "non_factual":
            return kind.reason
        if _over_supplied_text(kind) and not self.can_ground:
            return (
                f"{kind.reason}; the configured signals judge an answer by the model's own knowledge and cannot "
                "check it against the supplied text (the pace signal does)"
            )
        return None

    def _question(self, conversation: Conversation) -> str:
        """What the signals reason about: the last user turn, resolved against the turns before it."""
        return conversation.resolved_question(self.context_tokens)

    def _signal_messages(self, conversation: Conversation) -> list[Message] | None:
        """Where signals that ask the model again ask it: the conversation, unless the question stands alone."""
        messages = conversation.recent_messages(self.context_tokens)
        return messages if len(messages) > 1 else None


class _Run:
    """The state of one ``assess`` call (kept off the shared ``Gate``: requests run concurrently)."""

    def __init__(
        self,
        gate: Gate,
        question: str,
        wanted: set[str] | None,
        budget: Budget,
        known: Mapping[str, Signal] | None = None,
        *,
        every_signal: bool = False,
    ) -> None:
        self.gate, self.question, self.budget = gate, question, budget
        self.calibration = gate.calibration
        self.skipped: dict[str, str] = {}
        self.specs = list(select(gate.suite, None if wanted is None else sorted(wanted)))
        unread = set() if every_signal else _unread(self.calibration, self.specs)
        self.skipped.update(dict.fromkeys(unread, "not read by the calibration artifact (it added nothing when fit)"))
        self.specs = [spec for spec in self.specs if spec.key not in unread]
        keys = {spec.key for spec in self.specs}
        self.signals: dict[str, Signal] = {key: signal for key, signal in (known or {}).items() if key in keys}
        self.deadline = None if budget.max_seconds is None else time.monotonic() + budget.max_seconds

    async def precheck(self) -> None:
        for spec in self._stage("precheck"):
            if spec.key not in self.signals:
                await self._score([spec], "", {})

    def precheck_abstention(self) -> Assessment | None:
        """The abstain assessment when the precheck found the question unfamiliar, else ``None``."""
        if not self.precheck_abstains():
            return None
        return self.finish(None, Cost(), stage="precheck", decision="abstain")

    def precheck_abstains(self) -> bool:
        threshold = self.calibration.precheck_threshold
        signal = self.signals.get("familiarity")
        return (
            threshold is not None
            and signal is not None
            and signal.confidence is not None
            and (signal.confidence < threshold)
        )

    async def score_stage(self, stage: StageName, answer: str, context: dict[str, object]) -> None:
        specs = [s for s in self._stage(stage) if s.key not in self.signals and s.key not in self.skipped]
        if not context.get("references") and not self.gate.has_searcher:
            for spec in [s for s in specs if s.estimator == "pace"]:
                self.skipped[spec.key] = "no references given and no index configured"
                specs.remove(spec)
        await self._score(self._within_budget(specs), answer, context)

    def full_stage_is_free(self, context: dict[str, object]) -> bool:
        """True when the full stage needs no LLM call: its signals are consistency, and the caller gave the samples.

        Stopping at the free stage saves calls; when there are none to save, the full stage (which reads more
        signals) decides. Each consistency estimator says itself whether it would draw (``Consistency.draws``).
        """
        done = self.signals.keys() | self.skipped.keys()
        pending = [self.gate.estimators[spec.key] for spec in self._stage("full") if spec.key not in done]
        samples = context.get("samples") or None  # an empty list gives consistency nothing to compare with
        return bool(pending) and all(
            isinstance(estimator, Consistency) and not estimator.draws(samples)  # type: ignore[arg-type]
            for estimator in pending
        )

    def free_stage_decides(self) -> bool:
        """True when the free stage's probability is already past one of its early-exit thresholds."""
        scorer = self.calibration.free
        if not self._stage("full"):
            return True
        if scorer is None:
            return False
        confidences = self._confidences()
        if all(confidences.get(key) is None for key in scorer.signals):
            return False  # nothing free was computed (e.g. no log-probs came with a given answer)
        return _decide(scorer.probability(confidences), scorer) != "hedge"

    def finish(
        self, answer: str | None, answer_cost: Cost, *, stage: StageName, decision: Decision | None = None
    ) -> Assessment:
        scorer = self.calibration.full if stage == "full" or self.calibration.free is None else self.calibration.free
        confidences = self._confidences()
        probability = None
        reasons: list[str] = []
        if stage == "precheck":
            familiarity = self.signals["familiarity"]
            reasons.append(precheck_reason(familiarity, self.calibration.precheck_threshold))
        elif any(value is not None for value in confidences.values()):
            probability = scorer.probability(confidences)
            decision = _decide(probability, scorer)
            # the specific reasons first: an abstain message quotes the first one to the user
            reasons += signal_reasons(self.signals, decision)
            reasons += _threshold_reason(probability, scorer, decision, stage)
        else:
            decision = "hedge"
            reasons.append("no signal could be computed, so the answer is hedged")
        reasons += [f"signal {key} failed: {signal.error}" for key, signal in self.signals.items() if signal.error]
        assert decision is not None
        return Assessment(
            question=self.question,
            answer=answer,
            decision=decision,
            probability=probability,
            signals=self.signals,
            reasons=reasons,
            stage=stage,
            thresholds={"abstain": scorer.abstain, "hedge": scorer.hedge},
            answer_cost=answer_cost,
            gate_cost=total_cost(s.cost for s in self.signals.values()),
            calibration=self.calibration.id,
            skipped=self.skipped,
        )

    def _stage(self, stage: StageName) -> list[SignalSpec]:
        return [spec for spec in self.specs if spec.stage == stage]

    def _confidences(self) -> dict[str, float | None]:
        return {key: signal.confidence for key, signal in self.signals.items()}

    def _within_budget(self, specs: list[SignalSpec]) -> list[SignalSpec]:
        """Drop signals once the calls or tokens already spent reach the budget (checked before each)."""
        spent = total_cost(s.cost for s in self.signals.values())
        kept = []
        for spec in specs:
            over = _over_budget(spent, self.budget, calls_needed=len(kept) + 1)
            if over:
                self.skipped[spec.key] = over
            else:
                kept.append(spec)
        return kept

    async def _score(self, specs: Sequence[SignalSpec], answer: str, context: dict[str, object]) -> None:
        if not specs:
            return
        if not self.gate.concurrent_signals and len(specs) > 1:
            for spec in specs:
                await self._score([spec], answer, context)
            return
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        tasks = {spec.key: asyncio.ensure_future(self._one(spec, answer, context)) for spec in specs}
        done, pending = await asyncio.wait(tasks.values(), timeout=remaining) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        for key, task in tasks.items():
            if task in done:
                self.signals[key] = task.result()
            else:
                self.skipped[key] = f"cut by the time budget of {self.budget.max_seconds:g} s"

    async def _one(self, spec: SignalSpec, answer: str, context: dict[str, object]) -> Signal:
        estimator = self.gate.estimators[spec.key]
        started = time.perf_counter()
        try:
            signal = await estimator.score(self.question, answer, llm=self.gate.llm, **context)  # type: ignore[arg-type]
        except UpstreamError as exc:
            # The endpoint failed while an estimator used it: the assessment loses one signal, the answer
            # path goes on (the primary answer's own upstream errors are not caught here).
            # the message may quote the upstream (and a key it echoed): log only what kind of failure it was
            logger.warning("signal %s lost to an upstream error (status %s)", spec.key, exc.status)
            return Signal(name=spec.estimator, error=f"upstream error: {exc}")
        if signal.cost.seconds == 0.0 and signal.cost.calls:  # a backend that books no time: use the wall clock
            seconds = time.perf_counter() - started
            signal = signal.model_copy(update={"cost": signal.cost.model_copy(update={"seconds": seconds})})
        return signal


def not_assessed(
    question: str,
    generation: Generation,
    *,
    kind: RequestKindName,
    reason: str,
    calibration: str,
    answer_cost: Cost | None = None,
    signals: Mapping[str, Signal] | None = None,
) -> Assessment:
    """``generation`` passed on as the model wrote it, with the verdict ``not_assessed`` and why.

    ``signals`` already computed for the request (a precheck) stay in the record, and their cost in ``gate_cost``.
    """
    signals = dict(signals or {})
    return Assessment(
        question=question,
        answer=generation.text.strip(),
        finish_reason=generation.finish_reason,
        decision="not_assessed",
        kind=kind,
        tool_calls=generation.tool_calls,
        signals=signals,
        reasons=[reason],
        stage="none",
        answer_cost=answer_cost or generation.usage,
        gate_cost=total_cost(signal.cost for signal in signals.values()),
        calibration=calibration,
        answer_tokens=generation.tokens,
    )


def _can_ground(calibration: Calibration, specs: Sequence[SignalSpec]) -> bool:
    """Whether an answer can be checked against supplied text: PACE runs and the calibration reads it."""
    unread = _unread(calibration, specs)
    return any(spec.estimator == "pace" and spec.key not in unread for spec in specs)


def _unread(calibration: Calibration, specs: Sequence[SignalSpec]) -> set[str]:
    """Signals the calibration never looks at: computing them would spend calls for nothing.

    A stage scorer that names no signals reads them all (the uncalibrated mean); familiarity is read when
    the artifact has a precheck cut or a stage fuses it.
    """
    stages = [stage for stage in (calibration.free, calibration.full) if stage is not None]
    if any(not stage.signals for stage in stages):
        return set()
    read = {key for stage in stages for key in stage.signals}
    if calibration.precheck_threshold is not None:
        read.add("familiarity")
    return {spec.key for spec in specs if spec.key not in read}


def _over_supplied_text(kind: RequestKind) -> bool:
    """A task over text the conversation supplies (not a question that merely follows such text)."""
    return kind.kind in ("grounded", "tool_call") and kind.rule not in _QUESTIONS_BESIDE_TEXT


def _over_budget(spent: Cost, budget: Budget, *, calls_needed: int) -> str | None:
    """Why another signal would break the budget, or ``None`` when it fits."""
    if budget.max_calls is not None and spent.calls + calls_needed > budget.max_calls:
        return f"budget: {spent.calls} of {budget.max_calls} LLM calls already spent"
    tokens = spent.prompt_tokens + spent.completion_tokens
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"budget: {tokens} of {budget.max_tokens} tokens already spent"
    return None


def _decide(probability: float, scorer: StageScorer) -> Decision:
    return decision_of(probability, abstain=scorer.abstain, hedge=scorer.hedge)


def _threshold_reason(probability: float, scorer: StageScorer, decision: Decision, stage: StageName) -> list[str]:
    where = " (decided on the free signals; the full stage was not needed)" if stage == "free" else ""
    shown, abstain, hedge = (format_probability(p) for p in (probability, scorer.abstain, scorer.hedge))
    if decision == "answer":
        text = f"probability correct {shown} is at or above the answer threshold {hedge}"
    elif decision == "hedge":
        text = f"probability correct {shown} is between {abstain} and {hedge}"
    else:
        text = f"probability correct {shown} is below the abstain threshold {abstain}"
    return [text + where]


__all__ = ["Budget", "Calibration", "Gate", "Precheck", "StageScorer", "not_assessed"]
