"""The pipeline sorts requests by kind first: what it cannot judge passes as not_assessed, with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from estimators.base import Signal
from estimators.testing import Rule, ScriptedLLM
from gate.pipeline import Gate
from gate.suite import SignalSpec
from gate.uncalibrated import Uncalibrated

SUITE = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 1, "guesses": 1}),
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
)
PASSAGE = " ".join(["The Danube flows through ten countries and ends in the Black Sea."] * 6)


def scripted() -> ScriptedLLM:
    return ScriptedLLM(
        rules=[
            Rule("poem", "Leaves fall slow, / the year lets go."),
            Rule("Roman Empire", "Rome grew from a city state into an empire that lasted until 476."),
            Rule("Summarize", "The Danube ends in the Black Sea."),
        ],
        default="Paris",
    )


async def test_a_poem_passes_unassessed_with_the_reason_and_costs_the_gate_nothing() -> None:
    llm = scripted()
    result = await Gate(llm, Uncalibrated(), suite=SUITE).assess("Write a poem about autumn leaves.")
    assert result.decision == "not_assessed" and result.kind == "non_factual" and result.stage == "none"
    assert result.answer == "Leaves fall slow, / the year lets go."
    assert "creative" in result.reasons[0]
    assert result.signals == {} and result.gate_cost.calls == 0
    assert len(llm.calls) == 1  # the answer only: no precheck, no signal


async def test_an_expository_request_is_factual_and_assessed_not_abstained_on_its_verb() -> None:
    prompt = "Write a short paragraph about the history of the Roman Empire."
    result = await Gate(scripted(), Uncalibrated(), suite=SUITE).assess(prompt)
    assert result.decision != "not_assessed" and result.kind == "factual"
    assert "logprob_min" in result.signals
    concepts = [c["concept"] for c in result.signals["familiarity"].details["concepts"]]
    assert concepts == ["Roman Empire"]  # not the instruction verb "Write"


async def test_a_task_over_supplied_text_passes_unless_pace_can_check_it() -> None:
    prompt = f"Summarize this text: {PASSAGE}"
    result = await Gate(scripted(), Uncalibrated(), suite=SUITE).assess(prompt)
    assert result.decision == "not_assessed" and result.kind == "grounded"
    assert "supplied text" in result.reasons[0] and "pace" in result.reasons[0]


async def test_assess_all_judges_every_request_as_a_factual_question() -> None:
    gate = Gate(scripted(), Uncalibrated(), suite=SUITE, assess_all=True)
    result = await gate.assess("Write a poem about autumn leaves.")
    assert result.decision in ("answer", "hedge", "abstain") and result.kind == "factual"
    per_request = await Gate(scripted(), Uncalibrated(), suite=SUITE).assess("Write a poem.", assess_all=True)
    assert per_request.decision != "not_assessed"


async def test_a_question_after_an_unrelated_tool_result_is_still_judged_as_a_question() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Paris: 18 C, light rain"},
        {"role": "assistant", "content": "18 C and light rain."},
        {"role": "user", "content": "Thanks. What is the capital of France?"},
    ]
    result = await Gate(scripted(), Uncalibrated(), suite=SUITE).assess(messages)
    assert result.decision != "not_assessed" and result.answer == "Paris"


async def test_the_precheck_of_an_unassessed_request_computes_nothing() -> None:
    llm = scripted()
    precheck = await Gate(llm, Uncalibrated(), suite=SUITE).precheck("Write a poem about the sea.")
    assert precheck.signals == {} and precheck.abstain is None and llm.calls == []


class _RecordingPace:
    name = "pace"

    def __init__(self) -> None:
        self.references: list[object] = []

    async def score(self, question: str, answer: str, **context: object) -> Signal:
        self.references.append(context.get("references"))
        return Signal(name="pace", confidence=0.1)  # the answer contradicts the tool's result


@dataclass(frozen=True)
class _Stage:
    signals: tuple[str, ...]
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        return min(value for key, value in values.items() if key in self.signals and value is not None)


@dataclass(frozen=True)
class _ReadsPace:
    free: _Stage = _Stage(("logprob_min",))
    full: _Stage = _Stage(("logprob_min", "pace"))
    precheck_threshold: float | None = None
    id: str = "reads-pace"


async def test_an_answer_to_a_tool_result_is_grounded_on_it_when_pace_is_read_even_if_the_free_stage_is_sure() -> None:
    suite = (*SUITE[1:], SignalSpec("pace", "pace", "full", {"use_llm_judgements": False}))
    llm = ScriptedLLM(rules=[Rule("18 C", "It is 25 C and sunny in Paris.", logprob=-0.01)])
    gate = Gate(llm, _ReadsPace(), suite=suite)
    pace = gate.estimators["pace"] = _RecordingPace()  # type: ignore[assignment]
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Paris: 18 C, light rain"},
    ]
    result = await gate.assess(messages)
    assert pace.references == [["Paris: 18 C, light rain"]]
    assert result.kind == "grounded" and result.stage == "full" and result.decision == "abstain"
