"""Token probability of each claim's own tokens: how sure the model was while it wrote that sentence.

The whole-answer token probability (``estimators.logprob``) mixes every sentence of a long answer: one
invented date is lost among fifty sure tokens. Read per claim, the least likely token of a sentence points at
the sentence the model was guessing in (the claim-level form of Manakul et al.'s and Fadeeva et al.'s
token-probability baselines).

Two ways to get the tokens:

- free: the answer's own tokens as the upstream returned them (``Generation.tokens``), assigned to claims by
  their character offsets; no call;
- forced: for an answer the model did not write (a log, another model's answer), one forced pass per claim
  (``LLM.continuation_logprobs``) of the claim after the question and the answer's preceding text; the
  same number of tokens as one pass over the whole answer, split at the claims.

``confidence`` of a claim is ``exp`` of its aggregated log-prob (``min`` by default, as for whole answers:
the least likely token is the one a guess shows in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

from estimators.base import TokenLogprob
from estimators.claims import Claim

__all__ = ["ClaimLogprobs", "aggregate", "claim_token_logprobs", "forced_claim_logprobs"]

Aggregate = Literal["min", "mean"]


class ClaimLogprobs(Protocol):
    """What the forced route needs of an LLM: the log-prob of each token of a continuation."""

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]: ...


def claim_token_logprobs(answer: str, tokens: Sequence[TokenLogprob], claims: Sequence[Claim]) -> list[list[float]]:
    """Each claim's log-probs from the answer's own tokens (a token belongs to the claim its text overlaps).

    The tokens' texts, joined, are the answer as generated; ``answer`` may be that text stripped (as the
    gate strips it), so the offsets are shifted by the leading white space the strip removed. A token that
    spans two claims (rare: a space or punctuation joined to the next word) counts for both.
    """
    generated = "".join(token.token for token in tokens)
    shift = generated.find(answer) if answer else 0
    shift = max(shift, 0)
    spans, position = [], -shift
    for token in tokens:
        spans.append((position, position + len(token.token), token.logprob))
        position += len(token.token)
    return [
        [logprob for start, end, logprob in spans if start < claim.end and end > claim.start and end > start]
        for claim in claims
    ]


async def forced_claim_logprobs(
    llm: ClaimLogprobs, question: str, answer: str, claims: Sequence[Claim]
) -> list[list[float]]:
    """Each claim's log-probs when the model is made to write ``answer`` after ``question``, claim by claim."""
    values = []
    for claim in claims:  # in order: each pass reads the answer up to its claim
        prompt = f"Question: {' '.join(question.split())}\nAnswer: {answer[: claim.start]}"
        values.append(await llm.continuation_logprobs(prompt, claim.text))
    return values


def aggregate(logprobs: Sequence[float], how: Aggregate = "min") -> float | None:
    """``exp`` of the claim's least likely (``min``) or mean token log-prob; ``None`` for a claim without tokens."""
    finite = [value for value in logprobs if math.isfinite(value)]
    if not finite:
        return None
    value = min(finite) if how == "min" else sum(finite) / len(finite)
    return math.exp(min(value, 0.0))
