"""Split a sentence claim into atomic facts with the upstream model (FActScore's step, Min et al., 2023).

The deterministic splitter (:mod:`estimators.claims`) gives sentences, about four of people's atomic facts
each on FActScore's biographies: a sentence that mixes a right and a wrong fact is judged as one. A capable
upstream can break it further: the model reads a few demonstrations of a sentence followed by its facts, one
per line, then the sentence at hand, and lists its facts. One call per sentence, all of an answer's
sentences at once (the LLM protocol runs them concurrently).

The facts are not substrings of the answer: each keeps its sentence's span, so acting on a fact (mark,
strike) acts on the sentence that states it. A reply that lists nothing usable (a small model may repeat the
prompt or ramble) leaves the sentence as its own single fact, and the result says so (``decomposed``).

The demonstrations are written here, not drawn from FActScore, so that the benchmark on FActScore's human
facts (``benchmarks/claim_decomposer.py``) measures a prompt that never saw its data.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from estimators._checks import check_positive_int
from estimators.base import LLM, Cost, total_cost
from estimators.claims import Claim

__all__ = ["AtomicFact", "ClaimDecomposer", "Decomposition", "decomposer_prompt", "parse_facts"]

_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Marie Lindqvist is a Swedish architect who designed the Malmo harbour library in 1998.",
        (
            "Marie Lindqvist is Swedish.",
            "Marie Lindqvist is an architect.",
            "Marie Lindqvist designed the Malmo harbour library.",
            "The Malmo harbour library was designed in 1998.",
        ),
    ),
    (
        "After retiring from football, he coached the youth team of his hometown club for ten years.",
        (
            "He retired from football.",
            "He coached the youth team of his hometown club.",
            "He coached that team for ten years.",
        ),
    ),
)
_HEADER = "Each sentence below is broken into independent facts, one short sentence per line."
_STOP: tuple[str, ...] = ("\n\n", "Sentence:")
# A listed fact: an optional "-", "*", "1." or "1)" marker, then the fact.
_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])?\s*(.+?)\s*$")
_MIN_WORDS = 2  # "Yes." or a lone name is not a fact


@dataclass(frozen=True)
class AtomicFact:
    """One fact of a claim: its text (the model's words) and the span of the sentence that states it."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Decomposition:
    """The facts of one claim; ``decomposed`` is False when the sentence stands as its own single fact."""

    claim: Claim
    facts: tuple[AtomicFact, ...]
    decomposed: bool
    cost: Cost


def decomposer_prompt(sentence: str) -> str:
    """The raw completion prompt that asks for ``sentence``'s facts (the reply continues the "- " list)."""
    blocks = [f"Sentence: {text}\nFacts:\n" + "\n".join(f"- {fact}" for fact in facts) for text, facts in _EXAMPLES]
    blocks.append(f"Sentence: {' '.join(sentence.split())}\nFacts:\n-")
    return "\n\n".join([_HEADER, *blocks])


def parse_facts(reply: str, *, max_facts: int) -> list[str]:
    """The facts a reply lists (the prompt's first "- " is already written), in order, without repeats."""
    facts: list[str] = []
    for line in reply.splitlines():
        match = _ITEM.match(line)
        fact = match.group(1) if match else ""
        if len(fact.split()) >= _MIN_WORDS and fact not in facts:
            facts.append(fact)
        if len(facts) == max_facts:
            break
    return facts


class ClaimDecomposer:
    """Atomic facts of each claim, by a few-shot prompt to the upstream model (one call per claim).

    Parameters
    ----------
    max_facts : int, default=8
        At most this many facts per claim (a sentence rarely holds more; a rambling reply is cut here).
    max_tokens : int, default=160
        Reply length per claim.
    """

    def __init__(self, max_facts: int = 8, max_tokens: int = 160) -> None:
        self.max_facts = max_facts
        self.max_tokens = max_tokens

    async def decompose(self, claims: Sequence[Claim], *, llm: LLM) -> list[Decomposition]:
        """Each claim's facts (greedy decoding, so the same answer always splits the same way)."""
        check_positive_int("max_facts", self.max_facts)
        check_positive_int("max_tokens", self.max_tokens)
        return list(await asyncio.gather(*(self._one(claim, llm) for claim in claims)))

    async def _one(self, claim: Claim, llm: LLM) -> Decomposition:
        [reply] = await llm.generate(
            decomposer_prompt(claim.text), n=1, temperature=0.0, max_tokens=self.max_tokens, stop=_STOP
        )
        texts = parse_facts(reply.text, max_facts=self.max_facts)
        cost = total_cost([reply])
        if not texts:
            return Decomposition(claim, (AtomicFact(claim.text, claim.start, claim.end),), False, cost)
        facts = tuple(AtomicFact(text, claim.start, claim.end) for text in texts)
        return Decomposition(claim, facts, True, cost)
