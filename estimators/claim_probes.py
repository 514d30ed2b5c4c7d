"""Two claim signals from the model itself, each the existing short-answer estimator applied to one claim.

- :func:`claim_p_true`: P(True) per claim (Kadavath et al., 2022): the model is asked whether the claim is a
  correct answer to the request, one forced read of the verdict token per claim (``estimators.p_true``).
- :func:`claim_familiarity`: how familiar the model is with the concepts the claim names (the default suite's
  one-pass surprise variant, ``estimators.familiarity``), scored on the claim's text; with a concept cache,
  a concept seen before (in this answer or another) costs nothing.

Both cost LLM calls per claim, unlike the grounded route's ``claim_support``; they are meant for upstreams
where the model's own verdict carries signal. ``benchmarks/claim_probes_factscore.py`` measures them on
FActScore sentences with the embedded model.
"""

from __future__ import annotations

from collections.abc import Sequence

from estimators.base import LLM, Signal
from estimators.claims import Claim
from estimators.familiarity import ConceptCache, Familiarity
from estimators.p_true import PTrue

__all__ = ["claim_familiarity", "claim_p_true"]


async def claim_p_true(llm: LLM, question: str, claims: Sequence[Claim]) -> list[Signal]:
    """P(True) of each claim as an answer to ``question`` (one call per claim, in order)."""
    estimator = PTrue()
    return [await estimator.score(question, claim.text, llm=llm) for claim in claims]


async def claim_familiarity(llm: LLM, claims: Sequence[Claim], *, cache: ConceptCache | None = None) -> list[Signal]:
    """Familiarity of each claim's concepts (its rarest one), the default suite's surprise variant."""
    estimator = Familiarity(max_concepts=1, method="surprise", cache=cache)
    return [await estimator.assess(claim.text, llm=llm) for claim in claims]
