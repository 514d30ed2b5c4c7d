"""Token probability per claim: the answer's own tokens split at the claims, or a forced pass per claim."""

from __future__ import annotations

import math

import pytest

from estimators.base import TokenLogprob
from estimators.claim_logprob import aggregate, claim_token_logprobs, forced_claim_logprobs
from estimators.claims import split_claims

ANSWER = "Rome was founded in 753 BC. It was ruled by a king."


def tokens(pieces: list[tuple[str, float]]) -> list[TokenLogprob]:
    return [TokenLogprob(token=text, logprob=logprob) for text, logprob in pieces]


def test_each_claim_gets_the_tokens_of_its_own_text_even_after_a_strip() -> None:
    first_sentence = [(" Rome", -0.1), (" was founded", -0.2), (" in 753", -2.5), (" BC.", -0.1)]
    second_sentence = [(" It", -0.3), (" was", -0.1), (" ruled by", -0.4), (" a king", -1.2), (".", -0.05)]
    generated = tokens([*first_sentence, *second_sentence])
    claims = split_claims(ANSWER)
    first, second = claim_token_logprobs(ANSWER, generated, claims)  # the gate strips the leading space
    assert first == [-0.1, -0.2, -2.5, -0.1]
    assert second == [-0.3, -0.1, -0.4, -1.2, -0.05]


def test_aggregate_reads_the_least_likely_or_the_mean_token() -> None:
    assert aggregate([-0.1, -2.0]) == pytest.approx(math.exp(-2.0))
    assert aggregate([-0.1, -2.0], "mean") == pytest.approx(math.exp(-1.05))
    assert aggregate([]) is None and aggregate([float("-inf")]) is None
    assert aggregate([1e-7]) == 1.0  # an endpoint's rounding above 0 is a certain token


class ForcedLLM:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        self.calls.append((prompt, continuation))
        return [-1.0] * len(continuation.split())


async def test_the_forced_route_reads_each_claim_after_the_answer_so_far() -> None:
    llm = ForcedLLM()
    claims = split_claims(ANSWER)
    values = await forced_claim_logprobs(llm, "Tell me about Rome.", ANSWER, claims)
    assert [len(v) for v in values] == [6, 6]
    assert llm.calls[0] == ("Question: Tell me about Rome.\nAnswer: ", "Rome was founded in 753 BC.")
    assert llm.calls[1] == (
        "Question: Tell me about Rome.\nAnswer: Rome was founded in 753 BC. ",
        "It was ruled by a king.",
    )
