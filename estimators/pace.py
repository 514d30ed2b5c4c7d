"""PACE-style retrieval-grounded confidence: is this answer supported by reference passages?

After PACE-LM (Zhang et al., arXiv 2309.05833): the judge model rates, with a short chain of thought,
(1) the Confidence-of-Evaluation (COE), how well the references let one judge the question at all, and
(2) the answer's evaluation (RCE), how well the references support this answer; an "optimization
step" combines them. The paper's prompts, scale, sample count and combiner are not available (see
``reference/methods.md`` section 1); the prompts here are the project's own, on a 0-10 scale.

Small judge models rate noisily, so model-free grounding features sit beside the two ratings (the
order of ``PACE_FEATURES`` is the order of the feature vector a ``PaceCombiner`` is fitted on).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from estimators._checks import check_positive_int
from estimators.base import LLM, Generation, Message, Signal, total_cost
from estimators.pace_combiner import PaceCombiner
from estimators.score_parse import ParsedScore, parse_score
from estimators.text import contains_span, normalize_answer
from retrieval.base import Embedder, Searcher

logger = logging.getLogger(__name__)

__all__ = ["FIXED_WEIGHTS", "PACE_FEATURES", "Pace", "pace_feature_vector"]

PACE_FEATURES: tuple[str, ...] = (
    "rce",  # mean RCE rating, 0-10 (NaN when no sample parsed or judgements are off)
    "coe",  # mean COE rating, 0-10 (same)
    "rce_std",  # standard deviation of the parsed RCE ratings
    "coe_std",  # standard deviation of the parsed COE ratings
    "retrieval_max",  # best hit score; for given references, best question-reference cosine (NaN: no embedder)
    "answer_in_references",  # 1 if the normalised answer is a whole-word span of a reference, else 0
    "answer_sentence_similarity",  # max cosine of "question answer" to reference sentences naming an answer word
    "answer_overlap",  # fraction of the answer's content words found in the references
)
"""Names of the feature vector, in order."""

FIXED_WEIGHTS: dict[str, float] = {
    "rce": 0.35,
    "coe": 0.15,
    "answer_in_references": 0.3,
    "answer_sentence_similarity": 0.2,
}
"""The unfitted combination: a weighted mean of RCE/10, COE/10, containment and similarity (clipped to [0, 1]).

RCE carries most of the judge's weight because it is the answer-specific rating; COE is the same for
every answer to a question, so it only tempers the score when the references cannot ground a judgement.
Containment is the most reliable model-free evidence for short factual answers (a tiny judge's ratings
are noisy), and similarity catches paraphrases that containment misses. The weights sum to 1, so the
score is a convex combination; a missing term drops out and the others are renormalised.
"""

_STOPWORDS = frozenset(
    ["of", "in", "on", "at", "to", "and", "or", "for", "by", "with", "from", "as", "is", "are", "was", "were", "be"]
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOP = ("\n\n", "\nReferences:", "\nQuestion:")
_MAX_TOKENS = 96
_FOLLOW_UP_TOKENS = 4
_SCORE_LABEL = "Score:"
_MAX_SENTENCES = 64  # bounds the embedding work on long references

_EXAMPLE_REFERENCE = (
    "[1] The heart pumps blood around the body. It has four chambers: two atria on top and two ventricles below."
)
_COE_PROMPT = f"""Each case gives reference passages and a question. Judge how much the passages help to answer \
the question correctly: 0 means they are unrelated, 10 means they settle it. Reason in one sentence, then score.

References:
{_EXAMPLE_REFERENCE}
Question: How many chambers does the human heart have?
Reasoning: Passage 1 gives the number of chambers of the heart.
Score: 10

References:
[1] Mercury is the planet closest to the Sun and has almost no atmosphere.
Question: Which gas makes up most of the air on Earth?
Reasoning: The passage is about Mercury, not about the gases in Earth's air.
Score: 1

References:
{{references}}
Question: {{question}}
Reasoning:"""

_RCE_PROMPT = f"""Each case gives reference passages, a question and a proposed answer. Judge how well the passages \
support the proposed answer: 0 means they contradict it or never mention it, 10 means they state it. Reason in one \
sentence, then score.

References:
{_EXAMPLE_REFERENCE}
Question: How many chambers does the human heart have?
Proposed answer: two
Reasoning: Passage 1 says the heart has four chambers, which contradicts two.
Score: 0

References:
{_EXAMPLE_REFERENCE}
Question: How many chambers does the human heart have?
Proposed answer: four
Reasoning: Passage 1 says the heart has four chambers, which matches the answer.
Score: 10

References:
{{references}}
Question: {{question}}
Proposed answer: {{answer}}
Reasoning:"""


class Pace:
    """Retrieval-grounded confidence: COE and RCE ratings plus model-free grounding features.

    Parameters
    ----------
    searcher : Searcher or None, default=None
        Retrieves the top-``k`` references when the caller gives none; ``None`` means no retrieval.
    embedder : Embedder or None, default=None
        For ``retrieval_max`` on given references and ``answer_sentence_similarity``; both are NaN without it.
    k : int, default=3
        References retrieved per question.
    n_samples : int, default=3
        Ratings sampled per prompt (one call with ``n=n_samples``) and averaged; their spread is kept.
        A sample whose reasoning ends without a ``Score:`` line costs one more short greedy call.
    temperature : float, default=0.7
        Sampling temperature of the ratings.
    seed : int, default=0
        Seed passed to the judge.
    combiner : PaceCombiner or None, default=None
        A fitted combiner over ``PACE_FEATURES``; ``None`` uses ``FIXED_WEIGHTS``.
    use_llm_judgements : bool, default=True
        ``False`` skips the two rating calls (RCE and COE are then missing).
    max_reference_chars : int, default=600
        Each reference is cut to this length in the prompts (features use the full text).

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import Rule, ScriptedLLM
    >>> llm = ScriptedLLM([Rule("Proposed answer: Paris", "It is stated.\\nScore: 10")], default="Some.\\nScore: 5")
    >>> signal = asyncio.run(Pace().score(
    ...     "What is the capital of France?", "Paris", llm=llm, references=["Paris is the capital of France."]))
    >>> round(signal.confidence, 3)  # (0.35 * 10/10 + 0.15 * 5/10 + 0.3 * 1) / 0.8, no embedder
    0.906
    """

    name = "pace"

    def __init__(
        self,
        *,
        searcher: Searcher | None = None,
        embedder: Embedder | None = None,
        k: int = 3,
        n_samples: int = 3,
        temperature: float = 0.7,
        seed: int = 0,
        combiner: PaceCombiner | None = None,
        use_llm_judgements: bool = True,
        max_reference_chars: int = 600,
    ) -> None:
        self.searcher = searcher
        self.embedder = embedder
        self.k = k
        self.n_samples = n_samples
        self.temperature = temperature
        self.seed = seed
        self.combiner = combiner
        self.use_llm_judgements = use_llm_judgements
        self.max_reference_chars = max_reference_chars

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
        """Score ``answer`` against ``references`` (used as given) or the searcher's top-``k`` passages.

        ``samples`` and ``logprobs`` are not used. Returns ``confidence=None`` with an error for an
        empty answer or when there are no references; unparseable ratings leave RCE/COE missing and
        the grounding features still give a score (``details["notes"]`` says so).

        Raises
        ------
        TypeError, ValueError
            For arguments or configuration of the wrong type or range.
        """
        self._check_config()
        _check_inputs(question, answer, references)
        if not normalize_answer(answer):
            return Signal(name=self.name, error="empty answer", details={"answer": answer})
        refs, ref_details, hit_scores = await self._references(question, references)
        if not refs:
            return Signal(name=self.name, error="no references", details={"references": ref_details})
        judged = await self._judge(question, answer, refs, llm) if self.use_llm_judgements else {}
        grounding = await self._grounding(question, answer, refs, hit_scores)
        features = {**_rating_features(judged), **grounding}
        vector = np.array([features[name] for name in PACE_FEATURES], dtype=float)
        confidence, method = self._combine(vector, features)
        generations = [g for samples in judged.values() for sample in samples for g in sample.generations]
        details: dict[str, Any] = {
            "features": {name: _json_number(features[name]) for name in PACE_FEATURES},
            "combiner": method,
            "references": ref_details,
            "ratings": {kind: _rating_audit(samples) for kind, samples in judged.items()},
            "notes": _notes(judged, self.use_llm_judgements, self.embedder is not None),
        }
        return Signal(
            name=self.name,
            confidence=confidence,
            raw=_json_number(features["rce"]),
            cost=total_cost(generations),
            details=details,
        )

    def _check_config(self) -> None:
        for name in ("k", "n_samples", "max_reference_chars"):
            value = getattr(self, name)
            check_positive_int(name, value)
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must lie in [0, 2], got {self.temperature!r}")
        if self.searcher is not None and not isinstance(self.searcher, Searcher):
            raise TypeError(f"searcher must implement search(query, k), got {type(self.searcher).__name__}")
        if self.embedder is not None and not isinstance(self.embedder, Embedder):
            raise TypeError(
                f"embedder must implement name, dimension and embed(texts), got {type(self.embedder).__name__}"
            )
        if self.combiner is not None and not isinstance(self.combiner, PaceCombiner):
            raise TypeError(f"combiner must be a PaceCombiner, got {type(self.combiner).__name__}")

    async def _references(
        self, question: str, references: Sequence[str] | None
    ) -> tuple[list[str], dict[str, Any], list[float] | None]:
        """The passages, their audit record, and the hit scores (``None`` for given references)."""
        if references is not None:
            refs = [r for r in references if r.strip()]
            return refs, {"source": "given", "count": len(refs)}, None
        if self.searcher is None:
            return [], {"source": "none", "count": 0}, None
        hits = await asyncio.to_thread(self.searcher.search, question, k=self.k)
        hits = [h for h in hits if h.text.strip()]
        record = {
            "source": "retrieved",
            "count": len(hits),
            "ids": [h.id for h in hits],
            "scores": [h.score for h in hits],
        }
        return [h.text for h in hits], record, [float(h.score) for h in hits]

    async def _judge(self, question: str, answer: str, refs: list[str], llm: LLM) -> dict[str, list[_Sample]]:
        """Sample the COE and RCE ratings (one call each, ``n_samples`` ratings per call) and parse them."""
        block = "\n".join(
            f"[{i}] {_clip(' '.join(r.split()), self.max_reference_chars)}" for i, r in enumerate(refs, 1)
        )
        prompts = {
            "coe": _COE_PROMPT.format(references=block, question=_one_line(question)),
            "rce": _RCE_PROMPT.format(references=block, question=_one_line(question), answer=_one_line(answer)),
        }
        ratings = await asyncio.gather(*(self._rate(prompt, llm) for prompt in prompts.values()))
        return dict(zip(prompts, ratings, strict=True))

    async def _rate(self, prompt: str, llm: LLM) -> list[_Sample]:
        """Sample reasoned ratings; a sample that stopped before any ``Score:`` gets it asked for.

        The follow-up is zero-shot-CoT's second stage (Kojima et al., 2022): the prompt, the sample's own
        reasoning and ``Score:``, completed greedily with a few tokens. Small base models often end their
        reasoning without writing the rating line.
        """
        generations = await llm.generate(
            prompt, n=self.n_samples, temperature=self.temperature, max_tokens=_MAX_TOKENS, stop=_STOP, seed=self.seed
        )
        reasons = [g.text.rstrip() for g in generations]
        parsed = [parse_score(text) for text in reasons]
        unlabelled = [i for i, p in enumerate(parsed) if not p.has_label]
        if unlabelled:
            logger.debug("%d of %d ratings ended without a score line; asking for it", len(unlabelled), len(parsed))
        follow_ups = await asyncio.gather(
            *(
                llm.generate(
                    f"{prompt}{reasons[i]}\n{_SCORE_LABEL}",
                    temperature=0.0,
                    max_tokens=_FOLLOW_UP_TOKENS,
                    stop=("\n",),
                    seed=self.seed,
                )
                for i in unlabelled
            )
        )
        samples = [_Sample(text.lstrip(), p, (g,)) for text, p, g in zip(reasons, parsed, generations, strict=True)]
        for i, extra in zip(unlabelled, follow_ups, strict=True):
            text = f"{reasons[i].lstrip()}\n{_SCORE_LABEL}{extra[0].text}"
            samples[i] = _Sample(text, parse_score(text), (generations[i], *extra), asked_for_score=True)
        return samples

    async def _grounding(
        self, question: str, answer: str, refs: list[str], hit_scores: list[float] | None
    ) -> dict[str, float]:
        """The model-free features: containment, overlap, and (with an embedder) similarities."""
        words = _content_words(answer)
        ref_words = {w for r in refs for w in normalize_answer(r).split()}
        features = {
            "answer_in_references": float(any(contains_span(r, answer) for r in refs)),
            "answer_overlap": sum(w in ref_words for w in words) / len(words),
            "retrieval_max": max(hit_scores) if hit_scores else math.nan,
            "answer_sentence_similarity": math.nan,
        }
        if self.embedder is None:
            return features
        sentences = [s for r in refs for s in _SENTENCE_END.split(r) if set(normalize_answer(s).split()) & words]
        sentences = sentences[:_MAX_SENTENCES]
        given = refs if hit_scores is None else []
        texts = [question, f"{question} {answer}", *given, *sentences]
        vectors = await asyncio.to_thread(self.embedder.embed, texts)
        if given:
            features["retrieval_max"] = float(np.max(vectors[2 : 2 + len(given)] @ vectors[0]))
        similarity = vectors[2 + len(given) :] @ vectors[1]
        features["answer_sentence_similarity"] = float(np.max(similarity)) if sentences else 0.0
        return features

    def _combine(self, vector: np.ndarray, features: dict[str, float]) -> tuple[float, str]:
        """The fitted combiner's P(correct), or the fixed weighted mean of the available terms."""
        if self.combiner is not None:
            probability = float(self.combiner.predict_proba(vector[None, :])[0, 1])
            return probability, f"{self.combiner.method} (fitted)"
        terms = {
            "rce": features["rce"] / 10.0,
            "coe": features["coe"] / 10.0,
            "answer_in_references": features["answer_in_references"],
            "answer_sentence_similarity": min(max(features["answer_sentence_similarity"], 0.0), 1.0),
        }
        present = {name: value for name, value in terms.items() if not math.isnan(value)}
        weight = sum(FIXED_WEIGHTS[name] for name in present)  # containment is always present
        value = sum(FIXED_WEIGHTS[name] * v for name, v in present.items()) / weight
        return min(max(value, 0.0), 1.0), "fixed (unfitted)"


def pace_feature_vector(signal: Signal) -> np.ndarray:
    """The ``PACE_FEATURES`` vector recorded in a Pace signal (NaN for missing), e.g. to fit a combiner.

    Raises
    ------
    ValueError
        If the signal carries no PACE features (it failed, or came from another estimator).
    """
    features = signal.details.get("features")
    if signal.name != Pace.name or not isinstance(features, dict):
        raise ValueError(f"signal {signal.name!r} has no PACE features (error: {signal.error!r})")
    return np.array([math.nan if features[n] is None else features[n] for n in PACE_FEATURES], dtype=float)


def _check_inputs(question: Any, answer: Any, references: Any) -> None:
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TypeError(f"question and answer must be str, got {type(question).__name__}, {type(answer).__name__}")
    if references is not None and (isinstance(references, str) or not all(isinstance(r, str) for r in references)):
        raise TypeError("references must be a sequence of str passages (not a single str)")


@dataclass(frozen=True)
class _Sample:
    """One rating: the reasoning and score text, its parse, and the generations it took."""

    text: str
    parsed: ParsedScore
    generations: tuple[Generation, ...]
    asked_for_score: bool = False


def _mean_std(samples: list[_Sample]) -> tuple[float, float]:
    values = [s.parsed.value for s in samples if s.parsed.value is not None]
    return (float(np.mean(values)), float(np.std(values))) if values else (math.nan, math.nan)


def _rating_features(judged: dict[str, list[_Sample]]) -> dict[str, float]:
    features = {}
    for kind in ("rce", "coe"):
        mean, std = _mean_std(judged[kind]) if kind in judged else (math.nan, math.nan)
        features[kind], features[f"{kind}_std"] = mean, std
    return features


def _rating_audit(samples: list[_Sample]) -> dict[str, Any]:
    mean, std = _mean_std(samples)
    return {
        "mean": _json_number(mean),
        "std": _json_number(std),
        "parsed": sum(s.parsed.value is not None for s in samples),
        "samples": [
            {"text": s.text, "score": s.parsed.value, "error": s.parsed.error, "asked_for_score": s.asked_for_score}
            for s in samples
        ],
    }


def _notes(judged: dict[str, list[_Sample]], use_llm: bool, has_embedder: bool) -> list[str]:
    notes = [] if use_llm else ["LLM judgements disabled; RCE and COE are missing"]
    for kind, samples in judged.items():
        if all(s.parsed.value is None for s in samples):
            notes.append(f"no {kind.upper()} rating parsed; {kind} is missing")
    if not has_embedder:
        notes.append("no embedder; similarity features are missing")
    return notes


def _content_words(answer: str) -> set[str]:
    """The answer's normalised words without function words (all of them if nothing else is left)."""
    words = set(normalize_answer(answer).split())
    return words - _STOPWORDS or words


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value
