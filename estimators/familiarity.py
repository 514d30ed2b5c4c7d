"""Self-familiarity: a pre-generation check of whether the model knows the concepts a question is about.

After Luo et al., "Zero-Resource Hallucination Prevention for Large Language Models" (SELF-FAMILIARITY).
For each concept of the question (:mod:`estimators.concepts`, rarest first): (A) the model explains the
concept; (B) every surface form of the concept is masked out of the explanation; (C) the model is asked
what the masked text is about, and the concept's score is how likely the model is to name the concept
again. Low scores mean the model's own explanation does not lead back to the concept: it is unfamiliar,
so an answer would likely be invented.

The prompts and the masking live in :mod:`estimators.familiarity_prompts`, the threshold estimate in
:mod:`estimators.familiarity_threshold`; both are re-exported here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, TypeVar

from estimators._checks import check_positive_int
from estimators.base import LLM, Cost, Message, Signal, SupportsContinuationLogprobs, total_cost
from estimators.concepts import find_concepts
from estimators.familiarity_prompts import MASK, back_prompt, explain_prompt, mask_concept, surface_forms
from estimators.familiarity_surprise import surprise_score
from estimators.familiarity_threshold import ThresholdEstimate, estimate_threshold
from estimators.text import contains_span

__all__ = [
    "MASK",
    "METHODS",
    "ConceptCache",
    "ConceptFamiliarity",
    "Familiarity",
    "ThresholdEstimate",
    "aggregate_familiarity",
    "back_prompt",
    "estimate_threshold",
    "explain_prompt",
    "familiarity_weights",
    "mask_concept",
    "score_common_concepts",
    "surface_forms",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_GUESS_TOKENS = 16

METHODS = ("explain", "surprise")
"""``explain``: the paper's explain-mask-recover steps (about five calls a concept); ``surprise``: one
forward pass a concept (:mod:`estimators.familiarity_surprise`), white-box backends only."""


class ConceptCache(Protocol):
    """Where concept scores are kept between requests; a concept's familiarity does not depend on the
    question, so one score serves every question that names it. Keys already include the method."""

    def get(self, key: str) -> float | None:
        """The cached score, or ``None`` when absent."""
        ...

    def put(self, key: str, score: float) -> None:
        """Remember ``score`` under ``key``."""
        ...


def familiarity_weights(n: int) -> list[float]:
    """The paper's importance weights ``2^-i / sum_j 2^-j`` for ``n`` concepts in rarest-first order."""
    raw = [2.0**-i for i in range(n)]
    return [w / sum(raw) for w in raw]


def aggregate_familiarity(scores: Sequence[float]) -> dict[str, float]:
    """Combine per-concept scores (rarest first): ``weighted`` (the paper's main variant), ``min``, ``first``.

    Examples
    --------
    >>> aggregate_familiarity([0.2, 0.8])
    {'weighted': 0.4, 'min': 0.2, 'first': 0.2}
    """
    if not scores:
        raise ValueError("scores is empty; expected at least one concept score")
    weighted = sum(w * s for w, s in zip(familiarity_weights(len(scores)), scores, strict=True))
    return {"weighted": weighted, "min": min(scores), "first": scores[0]}


@dataclass(frozen=True)
class ConceptFamiliarity:
    """The familiarity of one concept: its score (``None`` when it could not be computed), cost and trail."""

    concept: str
    score: float | None
    cost: Cost = field(default_factory=Cost)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Familiarity:
    """SELF-FAMILIARITY precheck: how well the model can recover each concept of the question from its own
    explanation, with the concept masked out, before any answer is generated.

    With a white-box model (one implementing ``SupportsContinuationLogprobs``) the concept score is
    ``exp`` of the mean per-token log-prob of the concept forced as the continuation of the back-question,
    the best over its surface variants (as written, lower, Title; with and without a leading space). This
    approximates the paper's constrained beam search, whose score is the length-normalised log-prob of the
    best beam containing the concept (``method="forced_continuation"``). Otherwise the score is the
    fraction of ``guesses`` sampled answers that name the concept (``method="sampled_approximation"``,
    not the paper's method). Concept scores are combined rarest first with weights ``2^-i``.

    Parameters
    ----------
    threshold : float or None, default None
        Familiar iff the combined score is above it; ``None`` reports the score only. Estimate it per model
        and prompt format with :func:`estimate_threshold` on :func:`score_common_concepts`.
    max_concepts : int, default 3
        How many of the rarest concepts are checked.
    explain_tokens : int, default 60
        Token budget of each explanation (greedy).
    guesses : int, default 5
        Samples per concept for the sampling approximation.
    seed : int, default 0
        Seed of the sampled guesses.
    method : {"explain", "surprise"}, default "explain"
        How a concept is scored (:data:`METHODS`). ``surprise`` needs continuation log-probs; on another
        backend the signal reports an error and the precheck is skipped.
    cache : ConceptCache, optional
        Concept scores kept across requests (and processes, with a persistent cache); a cached concept
        costs no call. The caller scopes it to one model (scores of different models do not mix).

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import Rule, ScriptedLLM
    >>> llm = ScriptedLLM([
    ...     Rule('Explain "Paris"', "Paris is the capital of France."),
    ...     Rule('"___ is the capital of France."', ["Paris", "Lyon"]),
    ... ])
    >>> signal = asyncio.run(Familiarity(guesses=2, threshold=0.6).assess("Where is Paris?", llm=llm))
    >>> signal.confidence, signal.details["method"], signal.details["familiar"]
    (0.5, 'sampled_approximation', False)
    """

    name = "familiarity"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        max_concepts: int = 3,
        explain_tokens: int = 60,
        guesses: int = 5,
        seed: int = 0,
        method: str = "explain",
        cache: ConceptCache | None = None,
    ) -> None:
        self.threshold = threshold
        self.max_concepts = max_concepts
        self.explain_tokens = explain_tokens
        self.guesses = guesses
        self.seed = seed
        self.method = method
        self.cache = cache

    async def score(
        self,
        question: str,
        answer: str,
        *,
        llm: LLM,
        samples: Sequence[str] | None = None,
        references: Sequence[str] | None = None,
        logprobs: Sequence[float] | None = None,
        conversation: Sequence[Message] | None = None,
    ) -> Signal:
        """The estimator contract; familiarity runs before any answer exists, so only ``question`` is used."""
        return await self.assess(question, llm=llm)

    async def assess(self, question: str, *, llm: LLM) -> Signal:
        """Score the model's familiarity with the concepts of ``question``.

        Parameters
        ----------
        question : str
            The user's question or instruction.
        llm : LLM
            The answering model (its familiarity is what is measured).

        Returns
        -------
        Signal
            ``confidence`` and ``raw`` are the weighted familiarity; ``details`` hold ``method``,
            ``concepts`` (per concept: score, explanation, masked text, variant or guesses), ``aggregate``
            (weighted, min, first), ``weights`` and, with a threshold, ``familiar``, ``unfamiliar_concepts``
            and ``reason``. ``confidence`` is ``None`` with ``error="no concepts"`` when the question has
            none (skip the precheck then), or with an error when no concept could be scored.

        Raises
        ------
        TypeError, ValueError
            If ``question`` is not a string or the configuration is invalid.
        """
        self._check_config()
        concepts = find_concepts(question)[: self.max_concepts]
        if not concepts:
            return Signal(name=self.name, details={"concepts": []}, error="no concepts")
        if self.method == "surprise" and not _white_box(llm):
            return Signal(
                name=self.name,
                details={"concepts": [c.text for c in concepts]},
                error="the surprise method needs continuation log-probs, which this backend does not give",
            )
        factories = [functools.partial(self._cached_familiarity, c.text, llm=llm) for c in concepts]
        results = await _run_all(factories, concurrently=not _white_box(llm))
        return self._signal(results, [c.log_rarity for c in concepts], method=self._method_name(llm))

    async def _cached_familiarity(self, concept: str, *, llm: LLM) -> ConceptFamiliarity:
        """One concept's familiarity, from the cache when it holds it (no call), else computed and kept."""
        key = f"{self._method_name(llm)}|{concept}"
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return ConceptFamiliarity(concept, cached, Cost(), {"concept": concept, "score": cached, "cached": True})
        if self.method == "surprise" and _white_box(llm):
            score, cost, trail = await surprise_score(llm, concept)
            error = None if score is not None else "no usable log-probs for the concept"
            result = ConceptFamiliarity(concept, score, cost, trail, error)
        else:
            result = await self.concept_familiarity(concept, llm=llm)
        if self.cache is not None and result.score is not None:
            self.cache.put(key, result.score)
        return result

    def _method_name(self, llm: LLM) -> str:
        return "surprise" if self.method == "surprise" else _method(llm)

    async def concept_familiarity(self, concept: str, *, llm: LLM) -> ConceptFamiliarity:
        """Steps A-C for one concept: explain it, mask it, and score how well the model recovers it."""
        if not isinstance(concept, str) or not concept.strip():
            raise ValueError(f"concept must be a non-empty string, got {concept!r}")
        explained = await llm.generate(
            explain_prompt(concept), n=1, temperature=0.0, max_tokens=self.explain_tokens, stop=["\n"]
        )
        explanation = explained[0].text.strip() if explained else ""
        masked = mask_concept(explanation, concept)
        trail: dict[str, Any] = {"concept": concept, "explanation": explanation, "masked": masked}
        if not explanation:
            # The model could not explain it at all; the paper scores a failed concept 0.
            trail |= {"score": 0.0, "note": "empty explanation"}
            return ConceptFamiliarity(concept, 0.0, total_cost(explained), trail)
        if _white_box(llm):
            score, cost, found = await _forced_score(llm, back_prompt(masked, concept), concept)
        else:
            score, cost, found = await self._sampled_score(llm, back_prompt(masked, concept), concept)
        trail |= {"score": score, **found}
        error = None if score is not None else "no variant of the concept could be scored"
        return ConceptFamiliarity(concept, score, total_cost(explained) + cost, trail, error)

    async def _sampled_score(self, llm: LLM, prompt: str, concept: str) -> tuple[float, Cost, dict[str, Any]]:
        guesses = await llm.generate(
            prompt, n=self.guesses, temperature=1.0, max_tokens=_GUESS_TOKENS, stop=["\n"], seed=self.seed
        )
        texts = [g.text.strip() for g in guesses]
        hits = sum(contains_span(t, concept) for t in texts)
        return (hits / len(texts) if texts else 0.0), total_cost(guesses), {"guesses": texts}

    def _signal(self, results: list[ConceptFamiliarity], rarity: list[float], *, method: str) -> Signal:
        cost = total_cost(r.cost for r in results)
        scored = [r for r in results if r.score is not None]
        details: dict[str, Any] = {
            "method": method,
            "method_note": _METHOD_NOTES[method],
            "concepts": [
                {**r.details, "log_rarity": lr, "error": r.error} for r, lr in zip(results, rarity, strict=True)
            ],
        }
        if not scored:
            return Signal(name=self.name, cost=cost, details=details, error="no concept could be scored")
        scores = [float(r.score) for r in scored if r.score is not None]
        aggregate = aggregate_familiarity(scores)
        details |= {"aggregate": aggregate, "weights": familiarity_weights(len(scores))}
        if self.threshold is not None:
            details |= _decision(scored, aggregate["weighted"], self.threshold)
        value = min(1.0, max(0.0, aggregate["weighted"]))
        return Signal(name=self.name, confidence=value, raw=aggregate["weighted"], cost=cost, details=details)

    def _check_config(self) -> None:
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and 0.0 <= self.threshold <= 1.0
        ):
            raise ValueError(f"threshold must be None or a number in [0, 1], got {self.threshold!r}")
        for name in ("max_concepts", "explain_tokens", "guesses"):
            value = getattr(self, name)
            check_positive_int(name, value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")


def _decision(scored: list[ConceptFamiliarity], value: float, threshold: float) -> dict[str, Any]:
    """Familiar iff the combined score is above the threshold (the paper's ``F > tau``)."""
    unfamiliar = [r.concept for r in scored if r.score is not None and r.score <= threshold]
    familiar = value > threshold
    if familiar:
        reason = f"familiarity {value:.3f} is above the threshold {threshold:.3f}"
    else:
        names = ", ".join(repr(c) for c in unfamiliar) or "the question's concepts"
        reason = f"familiarity {value:.3f} is at or below the threshold {threshold:.3f}; unfamiliar: {names}"
    return {"threshold": threshold, "familiar": familiar, "unfamiliar_concepts": unfamiliar, "reason": reason}


def _white_box(llm: object) -> TypeGuard[SupportsContinuationLogprobs]:
    """Capability by protocol (the method exists), never guessed from names."""
    return isinstance(llm, SupportsContinuationLogprobs)


_METHOD_NOTES = {
    "surprise": "one forward pass a concept: exp(mean token log-prob) of the concept forced after a neutral "
    "encyclopedia-title context (not the paper's method)",
    "forced_continuation": "approximates the paper's constrained beam search: the best exp(mean token "
    "log-prob) of a surface form of the concept forced as the answer to the back-question",
    "sampled_approximation": "not the paper's method (no forced-continuation log-probs): the share of "
    "sampled guesses that name the concept",
}


def _method(llm: LLM) -> str:
    return "forced_continuation" if _white_box(llm) else "sampled_approximation"


async def _run_all(factories: Sequence[Callable[[], Awaitable[_T]]], *, concurrently: bool) -> list[_T]:
    """Run the coroutines concurrently, or one after another.

    A white-box model evaluates one prompt at a time and reuses its cached prompt prefix across the
    variants of one back-question; interleaving concepts would re-evaluate that prefix for every variant.
    """
    if concurrently:
        return list(await asyncio.gather(*(f() for f in factories)))
    return [await f() for f in factories]


def _continuation_variants(concept: str) -> list[str]:
    forms = dict.fromkeys((concept, concept.lower(), concept.title()))
    return [v for form in forms for v in (" " + form, form)]


async def _forced_score(
    llm: SupportsContinuationLogprobs, prompt: str, concept: str
) -> tuple[float | None, Cost, dict[str, Any]]:
    """The best ``exp(mean log-prob)`` of the concept forced after the back-question, over its variants."""
    best: tuple[float, str] | None = None
    calls, tokens, seconds = 0, 0, 0.0
    for variant in _continuation_variants(concept):
        started = time.perf_counter()
        values = await llm.continuation_logprobs(prompt, variant)
        seconds += time.perf_counter() - started
        calls, tokens = calls + 1, tokens + len(values)
        if not values or any(math.isnan(v) for v in values):
            logger.debug("no usable log-probs for variant %r: %r", variant, values)
            continue
        score = math.exp(sum(values) / len(values))
        if best is None or score > best[0]:
            best = (score, variant)
    # The protocol reports no prompt tokens for forced continuations; only the forced tokens are counted.
    cost = Cost(calls=calls, completion_tokens=tokens, seconds=seconds)
    return (None, cost, {}) if best is None else (best[0], cost, {"variant": best[1]})


async def score_common_concepts(llm: LLM, concepts: Sequence[str], estimator: Familiarity) -> list[float]:
    """Familiarity scores of bare, well-known ``concepts``, the input to :func:`estimate_threshold`.

    Parameters
    ----------
    llm : LLM
        The model whose threshold is estimated (with the same backend and prompt format as in use).
    concepts : sequence of str
        Concepts the model should know, e.g. :func:`estimators.concepts.load_common_concepts`.
    estimator : Familiarity
        Supplies the configuration (``explain_tokens``, ``guesses``, ``seed``); its threshold is ignored.

    Returns
    -------
    list of float
        One score per concept, in order; concepts that could not be scored are left out, with a warning.

    Raises
    ------
    ValueError
        If the estimator's configuration or a concept is invalid.
    """
    estimator._check_config()
    factories = [functools.partial(estimator.concept_familiarity, c, llm=llm) for c in concepts]
    results = await _run_all(factories, concurrently=not _white_box(llm))
    failed = [r.concept for r in results if r.score is None]
    if failed:
        logger.warning("no familiarity score for %d common concepts: %s", len(failed), failed)
    return [r.score for r in results if r.score is not None]
