"""Claim-level grounding: is each claim of a long answer supported by the references?

The answer is split into claims (``estimators.claims``); each claim is compared with the reference
sentences (given documents, earlier turns of the conversation, tool results), and with windows of two
adjacent sentences, since a claim often fuses two of them. The similarity is the best MiniLM cosine (or,
without an embedder, the share of the claim's content words found in the references). A cheap
contradiction cue is added: numbers and capitalised names that the claim states but no reference (nor the
question) mentions are typical of invented detail, and each one multiplies the support by
``1 - missing_penalty``.

No LLM call is made, so the signal is cheap enough to run on every long answer; it is uncalibrated
(``confidence`` is the aggregated support, to be calibrated by the fusion like any other signal).
The scoring core, :func:`score_claims`, takes groups of texts so that the consistency signal can reuse it
with one group per sampled answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from estimators.base import LLM, Cost, Message, Signal
from estimators.claims import Claim, split_claims
from estimators.text import normalize_answer
from retrieval.base import Embedder

__all__ = ["ClaimScore", "ClaimSupport", "conversation_references", "score_claims"]

Aggregate = Literal["min", "mean"]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A capitalised word (a name, a place, a title) or an acronym, as the claim writes it.
_NAME = re.compile(r"\b[A-Z][\w'’-]*")
_WORD = re.compile(r"\w+")
# Capitalised for grammar, not because they name anything.
_NOT_NAMES = frozenset(
    re.findall(
        r"\w+",
        "i a an the he she it they we you his her its their our this that these those there then in on at after "
        "before during however as but and also although while when since from by for with yes no not my your "
        "me us them if so or what who which where why how",
    )
)
_FUNCTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "of in on at to and or for by with from as is are was were be been has have had it its he she they his her "
        "their this that which who",
    )
)
_MAX_REFERENCE_CHARS = 200  # the best reference sentence is kept in the audit trail, clipped


@dataclass(frozen=True)
class ClaimScore:
    """How well one claim is supported.

    Attributes
    ----------
    claim : Claim
        The claim and its span in the answer.
    support : float
        In [0, 1]: the similarity times ``(1 - missing_penalty) ** len(missing)``, reduced over groups.
    similarity : float
        Best cosine to a reference unit (or content-word overlap without an embedder), reduced over groups.
    missing : tuple of str
        Numbers and names of the claim found in no text of a group (for several groups: in at least half).
    best_reference : str
        The reference unit most similar to the claim (first group with the best similarity).
    """

    claim: Claim
    support: float
    similarity: float
    missing: tuple[str, ...] = ()
    best_reference: str = ""
    reason: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready record for ``details["claims"]``."""
        return {
            "text": self.claim.text,
            "span": [self.claim.start, self.claim.end],
            "support": round(self.support, 4),
            "similarity": round(self.similarity, 4),
            "missing": list(self.missing),
            "best_reference": _clip(self.best_reference),
            "reason": self.reason,
        }


def score_claims(
    claims: Sequence[Claim],
    groups: Sequence[Sequence[str]],
    *,
    embedder: Embedder | None,
    extra_vocabulary: str = "",
    missing_penalty: float = 0.5,
    window: int = 2,
    max_units: int = 256,
) -> list[ClaimScore]:
    """Support of each claim by each group of texts, averaged over the groups.

    Parameters
    ----------
    claims : sequence of Claim
        What to score.
    groups : sequence of sequence of str
        Evidence: one group for references (their union supports a claim), one group per sampled answer
        for consistency (the per-group supports are averaged, as SelfCheckGPT averages over samples).
    embedder : Embedder or None
        Sentence embedder for cosine similarity; ``None`` uses content-word overlap.
    extra_vocabulary : str, default=""
        Text whose words never count as missing (the question: a name the user gave is not invented).
    missing_penalty : float, default=0.5
        Each number or name missing from a group multiplies that group's support by ``1 - missing_penalty``.
    window : int, default=2
        Reference units are sentences and runs of up to ``window`` adjacent sentences.
    max_units : int, default=256
        At most this many units per group (the first ones), to bound the embedding work on long documents.

    Returns
    -------
    list of ClaimScore
        One per claim, in order.
    """
    if not 0.0 <= missing_penalty <= 1.0:
        raise ValueError(f"missing_penalty must lie in [0, 1], got {missing_penalty!r}")
    if window < 1 or max_units < 1:
        raise ValueError(f"window and max_units must be positive, got {window!r}, {max_units!r}")
    if not claims:
        return []
    units = [_units(group, window, max_units) for group in groups]
    vocabularies = [_vocabulary([*group, extra_vocabulary]) for group in groups]
    similarities = _similarities([c.text for c in claims], units, embedder)  # (groups, claims) best sim and index
    results = []
    for i, claim in enumerate(claims):
        cues = _cues(claim.text)
        per_group: list[tuple[float, float]] = []
        missing_counts: Counter[str] = Counter()
        for g, vocabulary in enumerate(vocabularies):
            missing = [cue for cue in cues if cue.lower() not in vocabulary]
            missing_counts.update(missing)
            similarity = similarities[g][0][i]
            per_group.append((max(similarity, 0.0) * (1.0 - missing_penalty) ** len(missing), similarity))
        support = float(np.mean([s for s, _ in per_group])) if per_group else 0.0
        similarity = float(np.mean([s for _, s in per_group])) if per_group else 0.0
        missing = tuple(cue for cue in cues if missing_counts[cue] and missing_counts[cue] * 2 >= len(groups))
        best_group = int(np.argmax([s for _, s in per_group])) if per_group else -1
        best = units[best_group][similarities[best_group][1][i]] if best_group >= 0 and units[best_group] else ""
        reason = f"best reference similarity {similarity:.2f}" + (
            f"; not in references: {', '.join(missing)}" if missing else ""
        )
        results.append(ClaimScore(claim, min(max(support, 0.0), 1.0), similarity, missing, best, reason))
    return results


def conversation_references(conversation: Sequence[Message] | None) -> list[str]:
    """Texts of the conversation that can ground an answer: system, user and tool turns (not the assistant's).

    Earlier assistant turns are the model's own words, so they are no evidence for what it says now.
    """
    texts = []
    for message in conversation or ():
        if message.get("role") not in ("system", "user", "tool"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):  # OpenAI content parts
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return [t for t in texts if t.strip()]


class ClaimSupport:
    """Grounding of a long answer claim by claim: embedding similarity to references plus missing-detail cues.

    Parameters
    ----------
    embedder : Embedder or None, default=None
        Sentence embedder (e.g. ``retrieval.MiniLMEmbedder()``); ``None`` scores by content-word overlap.
    aggregate : {"min", "mean"}, default="mean"
        How the answer-level confidence is made from the claims' supports: ``"min"`` is the weakest claim
        (one invented sentence sinks the answer), ``"mean"`` the average.
    missing_penalty : float, default=0.5
        Each number or name of a claim that no reference mentions multiplies its support by ``1 - missing_penalty``.
    window : int, default=2
        Reference units are sentences and runs of up to ``window`` adjacent sentences.
    use_conversation : bool, default=True
        Also use the system, user and tool turns of ``conversation`` as references.

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import ScriptedLLM
    >>> signal = asyncio.run(ClaimSupport().score(
    ...     "Summarise.", "Paris is in France. It has 90 million people.", llm=ScriptedLLM([]),
    ...     references=["Paris is the capital of France. It has 2 million people."]))
    >>> [c["missing"] for c in signal.details["claims"]]
    [[], ['90']]
    """

    name = "claim_support"

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        aggregate: Aggregate = "mean",
        missing_penalty: float = 0.5,
        window: int = 2,
        use_conversation: bool = True,
    ) -> None:
        self.embedder = embedder
        self.aggregate = aggregate
        self.missing_penalty = missing_penalty
        self.window = window
        self.use_conversation = use_conversation

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
        """Score each claim of ``answer`` against ``references`` (and the conversation's turns).

        ``llm``, ``samples`` and ``logprobs`` are not used. Returns ``confidence=None`` with an error when
        the answer has no claim or there is no reference text.

        Raises
        ------
        TypeError, ValueError
            For arguments or configuration of the wrong type or range.
        """
        if self.aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate must be 'min' or 'mean', got {self.aggregate!r}")
        _check_inputs(question, answer, references)
        started = time.perf_counter()
        claims = split_claims(answer)
        if not claims:
            return Signal(name=self.name, error="no claims in the answer", details={"claims": []})
        refs = [r for r in references or () if r.strip()]
        if self.use_conversation:
            refs += conversation_references(conversation)
        if not refs:
            return Signal(name=self.name, error="no references", details={"claims": [c.text for c in claims]})
        scores = await asyncio.to_thread(
            score_claims,
            claims,
            [refs],
            embedder=self.embedder,
            extra_vocabulary=question,
            missing_penalty=self.missing_penalty,
            window=self.window,
        )
        values = [s.support for s in scores]
        confidence = min(values) if self.aggregate == "min" else float(np.mean(values))
        weakest = min(scores, key=lambda s: s.support)
        return Signal(
            name=self.name,
            confidence=confidence,
            raw=confidence,
            cost=Cost(seconds=time.perf_counter() - started),
            details={
                "claims": [s.as_dict() for s in scores],
                "aggregate": self.aggregate,
                "weakest": weakest.claim.text,
                "references": {"count": len(refs)},
                "similarity": self.embedder.name if self.embedder is not None else "content-word overlap",
            },
        )


def _units(texts: Sequence[str], window: int, max_units: int) -> list[str]:
    """Sentences of each text and runs of up to ``window`` adjacent ones, at most ``max_units``."""
    units: list[str] = []
    for text in texts:
        sentences = split_claims(text)
        for i in range(len(sentences)):
            for size in range(1, window + 1):
                if i + size <= len(sentences):
                    units.append(text[sentences[i].start : sentences[i + size - 1].end])
    return units[:max_units]


def _vocabulary(texts: Sequence[str]) -> set[str]:
    """Lower-cased words and comma-free numbers of ``texts``."""
    words: set[str] = set()
    for text in texts:
        words.update(w.lower() for w in _WORD.findall(text))
        words.update(n.replace(",", "") for n in _NUMBER.findall(text))
    return words


def _cues(claim: str) -> list[str]:
    """Numbers and capitalised names of a claim (the first word only if it is not a common word)."""
    cues = [n.replace(",", "") for n in _NUMBER.findall(claim)]
    for match in _NAME.finditer(claim):
        word = match.group().rstrip("'’-")
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        if word.lower() not in _NOT_NAMES and word not in cues:
            cues.append(word)
    return list(dict.fromkeys(cues))


def _similarities(
    claims: list[str], units: list[list[str]], embedder: Embedder | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per group: the best similarity of each claim to the group's units, and the index of that unit."""
    if embedder is None:
        return [_overlaps(claims, group) for group in units]
    flat = [u for group in units for u in group]
    vectors = embedder.embed([*claims, *flat]) if flat or claims else np.zeros((0, 1))
    claim_vectors, offset, out = vectors[: len(claims)], len(claims), []
    for group in units:
        if not group:
            out.append((np.zeros(len(claims)), np.zeros(len(claims), dtype=int)))
            continue
        sims = claim_vectors @ vectors[offset : offset + len(group)].T
        offset += len(group)
        out.append((sims.max(axis=1), sims.argmax(axis=1)))
    return out


def _overlaps(claims: list[str], group: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Share of each claim's content words found in a unit: the best unit and its index."""
    if not group:
        return np.zeros(len(claims)), np.zeros(len(claims), dtype=int)
    unit_words = [set(normalize_answer(u).split()) for u in group]
    best, index = np.zeros(len(claims)), np.zeros(len(claims), dtype=int)
    for i, claim in enumerate(claims):
        words = set(normalize_answer(claim).split())
        words = words - _FUNCTION_WORDS or words
        if not words:
            continue
        shares = [len(words & u) / len(words) for u in unit_words]
        index[i] = int(np.argmax(shares))
        best[i] = shares[index[i]]
    return best, index


def _check_inputs(question: Any, answer: Any, references: Any) -> None:
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TypeError(f"question and answer must be str, got {type(question).__name__}, {type(answer).__name__}")
    if references is not None and (isinstance(references, str) or not all(isinstance(r, str) for r in references)):
        raise TypeError("references must be a sequence of str passages (not a single str)")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REFERENCE_CHARS else text[: _MAX_REFERENCE_CHARS - 3].rstrip() + "..."
