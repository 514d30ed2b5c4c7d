"""Claims released from a streamed answer: complete sentences only, and the same text as the whole answer's."""

from __future__ import annotations

import itertools
import re

import pytest

from estimators.claims import split_claims
from estimators.testing import Rule, ScriptedLLM
from gate.assessment import Assessment
from gate.claim_judge import ClaimJudge
from gate.claim_render import marked, struck
from gate.claim_stream import ClaimReady, ClaimRelease, CompleteClaims
from gate.claim_verdict import ClaimVerdict
from gate.pipeline import Gate
from tests.test_claims_gate import ANSWER, SAMPLE, SUITE, TOOL_TURNS, WholeAnswer, first_then

NOTE = "Note: {count} removed."
TEXTS = [
    "Rome was founded in 753 BC. It had a million cats. Augustus was its first emperor.",
    "Rome was founded in 753 BC.\n\nIt had a million cats. Augustus was its first emperor.\n\nIt fell in 476.",
    "Facts:\n- Rome was founded in 753 BC.\n- It had a million cats.\n- Augustus was its first emperor.",
    "He moved to the U.S. Army base in 1950. Dr. Smith met him there. They spoke for hours.",
]


def pieces(text: str) -> list[str]:
    """The text as a model streams it: a word (with the space before it) at a time."""
    return re.findall(r"\s*\S+", text)


def test_a_claim_is_complete_only_once_the_next_one_has_started() -> None:
    claims, seen = CompleteClaims(), []
    for piece in pieces("He moved to the U.S. Army base in 1950. Dr. Smith met him."):
        seen.append([c.text for c in claims.add(piece)])
    assert [c.text for c in claims.finish()] == ["Dr. Smith met him."]
    released = [texts for texts in seen if texts]
    assert released == [["He moved to the U.S. Army base in 1950."]]  # never cut at "U.S." before "Army"
    assert seen.index(released[0]) > 9  # released only after "Dr. Smith", not at "1950."


def verdicts(text: str, decisions: tuple[str, ...]) -> list[ClaimVerdict]:
    return [
        ClaimVerdict(
            text=c.text, start=c.start, end=c.end, probability=0.9 if d == "keep" else 0.1, decision=d, reason="r"
        )  # type: ignore[arg-type]
        for c, d in zip(split_claims(text), decisions, strict=True)
    ]


def released(text: str, judged: list[ClaimVerdict], policy: str) -> str:
    release, out, end = ClaimRelease(policy, "[unverified: {claim}]"), "", 0  # type: ignore[arg-type]
    for verdict in judged:
        out += release.add(ClaimReady(verdict, text[end : verdict.start]))
        end = verdict.end
    return out


@pytest.mark.parametrize("text", TEXTS)
def test_what_is_released_claim_by_claim_is_what_the_whole_answer_renders(text: str) -> None:
    n = len(split_claims(text))
    for decisions in itertools.product(("keep", "withhold"), repeat=n):
        judged = verdicts(text, decisions)
        whole = struck(text, judged, NOTE)
        streamed = released(text, judged, "strike")
        if whole is None:
            assert streamed == ""  # nothing kept: nothing went out before the abstention
        else:
            removed = decisions.count("withhold")
            assert streamed + (f"\n\n{NOTE.format(count=removed)}" if removed else "") == whole, decisions
        if "keep" in decisions:
            assert released(text, judged, "mark") == marked(text, judged, "[unverified: {claim}]")
            assert released(text, judged, "annotate") == text
        else:
            assert released(text, judged, "mark") == released(text, judged, "annotate") == ""


class StreamingLLM(ScriptedLLM):
    """The scripted model, streaming its answer a word at a time."""

    async def stream_text(self, prompt, *, temperature, max_tokens, options=None, logprobs=None):  # type: ignore[no-untyped-def]
        [generation] = await self.generate(
            prompt, n=1, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs
        )
        for piece in pieces(generation.text):
            yield piece
        yield generation


async def collect(gate: Gate, prompt: object) -> tuple[list[ClaimReady], Assessment]:
    items = [item async for item in gate.assess_streamed(prompt)]  # type: ignore[arg-type]
    assert isinstance(items[-1], Assessment)
    return items[:-1], items[-1]  # type: ignore[return-value]


async def test_an_expository_answer_streams_claim_by_claim_with_samples_drawn_alongside() -> None:
    llm = StreamingLLM(rules=[Rule("Ada", first_then(ANSWER, SAMPLE))])
    ready, result = await collect(
        Gate(llm, WholeAnswer(), suite=SUITE, claims=ClaimJudge()), "Tell me about Ada Lovelace."
    )
    assert [r.verdict.text for r in ready] == [c.text for c in result.claims or ()]
    assert [r.verdict.decision for r in ready] == ["keep", "keep", "withhold"]
    assert "".join(r.prefix + r.verdict.text for r in ready) == ANSWER == result.answer
    assert result.claim_route == "closed" and result.decision == "hedge"
    assert [call.n for call in llm.calls] == [5, 1] or [call.n for call in llm.calls] == [1, 5]  # one sampling call
    assert result.gate_cost.calls == 1  # the samples' call is the gate's own
    assert result.answer_cost.calls == 1 and result.answer_cost.completion_tokens == len(ANSWER.split())


async def test_a_grounded_answer_streams_without_any_call_but_the_answer() -> None:
    llm = StreamingLLM(rules=[Rule("temperature_c", "It is 18 degrees in Paris. Expect heavy snow in Lyon tomorrow.")])
    ready, result = await collect(Gate(llm, WholeAnswer(), suite=SUITE, claims=ClaimJudge()), TOOL_TURNS)
    assert [r.verdict.decision for r in ready] == ["keep", "withhold"] and len(llm.calls) == 1
    assert result.claim_route == "grounded" and result.kind == "grounded"


async def test_a_question_or_a_model_that_cannot_stream_is_assessed_whole() -> None:
    llm = StreamingLLM(rules=[Rule("Ada", "Ada Lovelace was a mathematician.", logprob=-0.01)])
    ready, result = await collect(Gate(llm, WholeAnswer(), suite=SUITE, claims=ClaimJudge()), "Who was Ada Lovelace?")
    assert ready == [] and result.claims is None and result.decision == "answer"
    plain = ScriptedLLM(rules=[Rule("Ada", first_then(ANSWER, SAMPLE))])
    ready, result = await collect(Gate(plain, WholeAnswer(), suite=SUITE, claims=ClaimJudge()), "Tell me about Ada.")
    assert ready == [] and result.claims is not None  # buffered, then judged claim by claim


async def test_an_expository_request_answered_in_one_sentence_is_judged_whole() -> None:
    llm = StreamingLLM(rules=[Rule("Ada", "Ada Lovelace was a mathematician.")])
    ready, result = await collect(Gate(llm, WholeAnswer(), suite=SUITE, claims=ClaimJudge()), "Tell me about Ada.")
    assert ready == [] and result.claims is None and "claim_consistency" not in result.signals


async def test_a_model_serving_one_call_at_a_time_samples_after_the_first_claim_and_never_for_a_short_answer() -> None:
    short = StreamingLLM(rules=[Rule("Ada", "Ada Lovelace was a mathematician.", logprob=-0.01)])
    gate = Gate(short, WholeAnswer(), suite=SUITE, claims=ClaimJudge(), concurrent_signals=False)
    ready, result = await collect(gate, "Tell me about Ada.")
    assert ready == [] and [call.n for call in short.calls] == [1]  # no samples drawn for nothing
    assert result.decision == "answer" and "logprob_min" in result.signals  # its log-probs came with the stream
    long = StreamingLLM(rules=[Rule("Ada", first_then(ANSWER, SAMPLE))])
    gate = Gate(long, WholeAnswer(), suite=SUITE, claims=ClaimJudge(), concurrent_signals=False)
    ready, result = await collect(gate, "Tell me about Ada.")
    assert [call.n for call in long.calls] == [1, 5] and len(ready) == 3 and result.claims is not None
