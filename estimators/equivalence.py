"""When do two answers to one question say the same thing? Exact, embedding and entailment judges.

Every judge compares one anchor answer with many others in one call (``compare``), so that batching
judges (embeddings) embed once, and returns the cost of the LLM calls it made, so that estimators can
report it. ``equivalent`` is the convenience form for a single pair.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from estimators.base import LLM, Cost, Generation, total_cost
from estimators.p_true import read_yes_no
from estimators.text import complete_words, contains_span, normalize_answer
from retrieval.base import Embedder

__all__ = [
    "EQUIVALENCES",
    "EmbeddingMatch",
    "EntailmentMatch",
    "Equivalence",
    "ExactMatch",
    "make_equivalence",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Equivalence(Protocol):
    """Judges whether answers to the same question are equivalent."""

    name: str

    async def equivalent(self, question: str, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are equivalent answers to ``question``."""
        ...

    async def compare(self, question: str, anchor: str, others: Sequence[str]) -> tuple[list[bool], Cost]:
        """For each of ``others``, whether it is equivalent to ``anchor``; and the LLM cost of judging."""
        ...


class _PairFromBatch(ABC):
    """Derives the single-pair judgement from the batched one, so each judge writes its logic once."""

    @abstractmethod
    async def compare(self, question: str, anchor: str, others: Sequence[str]) -> tuple[list[bool], Cost]:
        """For each of ``others``, whether it is equivalent to ``anchor``; and the LLM cost of judging."""

    async def equivalent(self, question: str, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are equivalent answers to ``question``."""
        verdicts, _ = await self.compare(question, a, [b])
        return verdicts[0]


class ExactMatch(_PairFromBatch):
    """Equivalent when the normalised answers are equal, or the shorter is a whole-word span of the longer.

    Normalisation is SQuAD's (lowercase, no punctuation, no articles). The span rule makes "Paris" and
    "Paris, France" equivalent, which short factual answers need. It applies only when the shorter answer
    has at least ``min_span_fraction`` of the longer one's words: a base model often answers with a list
    ("A. Jane Austen B. Robert Greene C. ..."), which contains every answer it names and must not count
    as agreeing with each of them. An answer that normalises to nothing is equivalent to nothing.

    Parameters
    ----------
    min_span_fraction : float, default 0.5
        Smallest (shorter words) / (longer words) ratio for the span rule, in (0, 1]; 1.0 accepts only
        equal normal forms.

    Examples
    --------
    >>> import asyncio
    >>> asyncio.run(ExactMatch().equivalent("Capital of France?", "Paris", "Paris, France."))
    True
    >>> asyncio.run(ExactMatch().equivalent("Capital of France?", "Paris", "Lyon, Nice or Paris"))
    False
    """

    name = "exact"

    def __init__(self, *, min_span_fraction: float = 0.5) -> None:
        if not 0.0 < min_span_fraction <= 1.0:
            raise ValueError(f"min_span_fraction must lie in (0, 1], got {min_span_fraction!r}")
        self.min_span_fraction = min_span_fraction

    async def compare(self, question: str, anchor: str, others: Sequence[str]) -> tuple[list[bool], Cost]:
        """Judge each of ``others`` against ``anchor``; free (no LLM calls)."""
        return [self._match(anchor, other) for other in others], Cost()

    def could_agree(self, answer: str, partial: str) -> bool:
        """Whether some text that starts with ``partial`` could be equivalent to ``answer``.

        Only ``partial``'s complete words count (``estimators.text.complete_words``). ``False`` is certain: no
        continuation of ``partial`` agrees with ``answer``, so a sample judged against it may stop there. It is
        ``False`` when the words so far cannot begin ``answer``'s normal form nor a long enough span of it, and
        ``answer`` can no longer fit in a text short enough for the span rule (of at most ``len(answer) /
        min_span_fraction`` words) at any place that the words so far allow.
        """
        target, words = normalize_answer(answer).split(), complete_words(partial)
        n = len(target)
        if n == 0:
            return False  # an answer with no words agrees with nothing
        # The text ends no longer than the answer: it must equal it, or be a span of it long enough.
        for start in range(n - len(words) + 1):
            room = n - start  # the longest the text can grow from here, staying within the answer
            long_enough = start == 0 or room >= self.min_span_fraction * n  # from the start it may equal the answer
            if target[start : start + len(words)] == words and long_enough:
                return True
        # The text ends longer than the answer: the answer must be a span of it, found at ``offset``.
        for offset in range(len(words) + 1):
            overlap = words[offset : offset + n]
            shortest = max(len(words), offset + n, n + 1)
            if overlap == target[: len(overlap)] and n >= self.min_span_fraction * shortest:
                return True
        return False

    def _match(self, a: str, b: str) -> bool:
        short, long = sorted((normalize_answer(a), normalize_answer(b)), key=lambda text: len(text.split()))
        if not short:
            return False
        if short == long:
            return True
        close_in_length = len(short.split()) >= self.min_span_fraction * len(long.split())
        return close_in_length and contains_span(long, short)


class EmbeddingMatch(_PairFromBatch):
    """Equivalent when the cosine similarity of the answers' embeddings reaches ``threshold``.

    The anchor and all the others are embedded in one batch per ``compare`` call. No LLM calls, so the
    reported cost is zero (the embedder's time is not an LLM cost).

    Parameters
    ----------
    embedder : Embedder
        Gives unit-norm vectors (rows are normalised again here, so a slightly off embedder still
        gives cosines).
    threshold : float, default 0.85
        Cosine at or above which two answers count as equivalent, in [-1, 1].
    """

    name = "embedding"

    def __init__(self, embedder: Embedder, *, threshold: float = 0.85) -> None:
        if not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must implement retrieval.base.Embedder, got {type(embedder).__name__}")
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [-1, 1], got {threshold!r}")
        self.embedder = embedder
        self.threshold = threshold

    async def compare(self, question: str, anchor: str, others: Sequence[str]) -> tuple[list[bool], Cost]:
        """Judge each of ``others`` against ``anchor`` by cosine similarity."""
        if not others:
            return [], Cost()
        # The embedder is synchronous CPU work; keep it off the event loop that serves other requests.
        vectors = await asyncio.to_thread(self.embedder.embed, [anchor, *others])
        cosines = _cosines(np.asarray(vectors, dtype=np.float64))
        return [bool(c >= self.threshold) for c in cosines], Cost()


def _cosines(vectors: np.ndarray) -> np.ndarray:
    """Cosine of the first row with each later row; a zero row has cosine 0 with everything."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit[1:] @ unit[0]


_ENTAILMENT_EXAMPLES: tuple[tuple[str, str, str, str], ...] = (
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", "da Vinci", "Yes"),
    ("What is the largest ocean on Earth?", "The Atlantic", "The Pacific Ocean", "No"),
)


def entailment_prompt(question: str, premise: str, hypothesis: str) -> str:
    """A raw few-shot prompt asking whether answer 1 implies answer 2, ending where the verdict goes."""
    def item(q: str, a: str, b: str) -> str:
        q, a, b = (" ".join(s.split()) for s in (q, a, b))
        return f"Question: {q}\nAnswer 1: {a}\nAnswer 2: {b}\nIf answer 1 is true, must answer 2 be true? Yes or No:"

    blocks = [item(q, a, b) + f" {verdict}" for q, a, b, verdict in _ENTAILMENT_EXAMPLES]
    header = "For each pair of answers to a question, say whether the first one implies the second."
    return "\n\n".join([header, *blocks, item(question, premise, hypothesis)])


class EntailmentMatch(_PairFromBatch):
    """Equivalent when the model judges that each answer implies the other (bidirectional entailment).

    This is the semantic-entropy notion of "same meaning" (Farquhar et al.), judged by an LLM with a
    raw few-shot yes/no prompt at temperature 0. It is optional and costly: up to two LLM calls per pair
    (the reverse direction is skipped when the forward one already fails). A verdict that is neither
    yes nor no counts as "not implied", so an unclear judge splits answers rather than merging them.

    Parameters
    ----------
    llm : LLM
        The judge (it may differ from the answering model).
    max_tokens : int, default 2
        Tokens generated per verdict.
    """

    name = "entailment"

    def __init__(self, llm: LLM, *, max_tokens: int = 2) -> None:
        if not isinstance(llm, LLM):
            raise TypeError(f"llm must implement estimators.base.LLM, got {type(llm).__name__}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
        self.llm = llm
        self.max_tokens = max_tokens

    async def compare(self, question: str, anchor: str, others: Sequence[str]) -> tuple[list[bool], Cost]:
        """Judge each of ``others`` against ``anchor`` (pairs run concurrently)."""
        results = await asyncio.gather(*(self._pair(question, anchor, other) for other in others))
        return [verdict for verdict, _ in results], total_cost(cost for _, cost in results)

    async def _pair(self, question: str, a: str, b: str) -> tuple[bool, Cost]:
        spent: list[Generation] = []
        for premise, hypothesis in ((a, b), (b, a)):
            generations = await self.llm.generate(
                entailment_prompt(question, premise, hypothesis),
                n=1, temperature=0.0, max_tokens=self.max_tokens, stop=("\n",),
            )
            spent.extend(generations)
            text = generations[0].text if generations else ""
            if read_yes_no(text) is not True:
                logger.debug("entailment judge said %r for %r => %r", text, premise, hypothesis)
                return False, total_cost(spent)
        return True, total_cost(spent)


EQUIVALENCES: dict[str, type[ExactMatch] | type[EmbeddingMatch] | type[EntailmentMatch]] = {
    "exact": ExactMatch,
    "embedding": EmbeddingMatch,
    "entailment": EntailmentMatch,
}
"""Equivalence judges by name."""


def make_equivalence(name: str, *args: Any, **kwargs: Any) -> Equivalence:
    """Build the judge registered as ``name``; an unknown name is a ``ValueError`` listing the valid ones."""
    if name not in EQUIVALENCES:
        raise ValueError(f"Unknown equivalence {name!r}; valid: {sorted(EQUIVALENCES)}")
    return EQUIVALENCES[name](*args, **kwargs)
