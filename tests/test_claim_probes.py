"""P(True) and familiarity per claim: the short-answer estimators applied to each claim of a long answer."""

from __future__ import annotations

from estimators.claim_probes import claim_familiarity, claim_p_true
from estimators.claims import split_claims
from estimators.testing import Rule, ScriptedLLM
from gate.concept_cache import MemoryConceptCache

ANSWER = "Marie Curie won two Nobel Prizes. Marie Curie was born in Atlantis."


async def test_p_true_asks_about_each_claim_and_reads_the_verdict() -> None:
    llm = ScriptedLLM(
        rules=[
            Rule("Proposed answer: Marie Curie won two", "Yes", top=[("Yes", -0.1), ("No", -2.5)]),
            Rule("Proposed answer: Marie Curie was born", "No", top=[("No", -0.1), ("Yes", -2.5)]),
        ]
    )
    first, second = await claim_p_true(llm, "Tell me a bio of Marie Curie.", split_claims(ANSWER))
    assert first.name == second.name == "p_true"
    assert first.confidence > 0.8 > 0.2 > second.confidence
    assert len(llm.calls) == 2


class SurprisedLLM(ScriptedLLM):
    """A model that reads every concept with the same token log-probs (the surprise variant's one pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.forced: list[str] = []

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        self.forced.append(continuation.strip())
        return [-1.0] * len(continuation.split())


async def test_familiarity_scores_each_claims_concept_and_reuses_the_cache() -> None:
    llm = SurprisedLLM()
    cache = MemoryConceptCache()
    signals = await claim_familiarity(llm, split_claims(ANSWER), cache=cache)
    assert [s.name for s in signals] == ["familiarity", "familiarity"]
    assert all(s.confidence is not None and 0.0 <= s.confidence <= 1.0 for s in signals)
    assert len(llm.forced) == len(set(llm.forced))  # a concept named by both claims is read once
    forced = len(llm.forced)
    again = await claim_familiarity(llm, split_claims(ANSWER), cache=cache)
    assert len(llm.forced) == forced  # every concept came from the cache
    assert [s.confidence for s in again] == [s.confidence for s in signals]
