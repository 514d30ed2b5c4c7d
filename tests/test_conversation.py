"""Conversations: the question resolved against earlier turns, the signals' messages, references, and the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from estimators.base import Signal
from estimators.testing import Rule, ScriptedLLM
from gate.conversation import PASTED_WORDS, Conversation, message_text
from gate.pipeline import Gate
from gate.suite import SignalSpec

HAMLET_FOLLOW_UP = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Who wrote Hamlet?"},
    {"role": "assistant", "content": "William Shakespeare."},
    {"role": "user", "content": "And in which year was he born?"},
]


def test_a_follow_up_is_resolved_against_the_turns_before_it_and_the_system_prompt_is_not_the_question() -> None:
    conversation = Conversation.from_prompt(HAMLET_FOLLOW_UP)
    assert conversation.question == "And in which year was he born?"
    assert conversation.is_follow_up
    assert conversation.resolved_question() == "Who wrote Hamlet? William Shakespeare. And in which year was he born?"
    assert "terse" not in conversation.resolved_question()


def test_a_single_question_stands_alone() -> None:
    conversation = Conversation.from_prompt("Who wrote Hamlet?")
    assert not conversation.is_follow_up
    assert conversation.resolved_question() == "Who wrote Hamlet?"
    assert conversation.recent_messages() == [{"role": "user", "content": "Who wrote Hamlet?"}]


def test_the_budget_keeps_the_most_recent_turns_whole() -> None:
    old, recent = "Tell me about the Danube river. " * 20, "What about the Rhine?"
    messages = [
        {"role": "user", "content": old},
        {"role": "assistant", "content": "It flows east."},
        {"role": "user", "content": recent},
        {"role": "assistant", "content": "It flows north."},
        {"role": "user", "content": "Which one is longer?"},
    ]
    resolved = Conversation.from_prompt(messages).resolved_question(max_tokens=30)
    assert resolved == "It flows east. What about the Rhine? It flows north. Which one is longer?"
    assert "Danube" in Conversation.from_prompt(messages).resolved_question(max_tokens=1000)
    # the question itself is never cut, even when it alone is over the budget
    assert Conversation.from_prompt(messages).resolved_question(max_tokens=1) == "Which one is longer?"


def test_the_signals_messages_keep_the_system_prompt_and_end_with_the_question() -> None:
    messages = Conversation.from_prompt(HAMLET_FOLLOW_UP).recent_messages()
    assert messages[0] == {"role": "system", "content": "You are a terse assistant."}
    assert messages[-1] == {"role": "user", "content": "And in which year was he born?"}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_tool_results_and_pasted_passages_are_references_and_tool_turns_are_not_asked_again() -> None:
    passage = " ".join(["The Nile is about 6,650 km long."] * (PASTED_WORDS // 7 + 1))
    messages = [
        {"role": "user", "content": f"Here is a text: {passage}"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Paris: 18 C, light rain"},
    ]
    conversation = Conversation.from_prompt(messages)
    assert conversation.question == "What's the weather in Paris?"
    assert conversation.references == (f"Here is a text: {passage}", "Paris: 18 C, light rain")
    roles = [m["role"] for m in conversation.recent_messages(max_tokens=10_000)]
    assert roles == ["user", "assistant", "user"]


def test_content_parts_are_read_for_their_text() -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
    assert message_text(message) == "What is in this picture?"
    assert Conversation.from_prompt([message]).question == "What is in this picture?"


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("   ", "the question is empty"),
        ([{"role": "system", "content": "Be brief."}], "no non-empty user message"),
        ([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}], "last message must be"),
    ],
)
def test_requests_with_nothing_to_answer_are_refused_clearly(prompt: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Conversation.from_prompt(prompt)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReadConsistency:
    signals: tuple[str, ...] = ("consistency",)
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        value = values.get("consistency")
        return 0.5 if value is None else value


@dataclass(frozen=True)
class ConsistencyOnly:
    free: None = None
    full: ReadConsistency = ReadConsistency()
    precheck_threshold: float | None = None
    id: str = "test"


SUITE = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 2, "guesses": 1}),
    SignalSpec("consistency", "consistency", "full", {"n_samples": 3, "adaptive": False}),
)


async def test_the_pipeline_samples_in_the_conversation_and_finds_the_antecedent_concepts() -> None:
    # the model answers the follow-up only when it can see the turn that names Shakespeare
    llm = ScriptedLLM(
        rules=[
            Rule("William Shakespeare.\nuser: And in which year", "1564"),
            Rule("And in which year was he born?", "I do not know who you mean"),
        ],
        default="1564",
    )
    gate = Gate(llm, ConsistencyOnly(), suite=SUITE)
    result = await gate.assess(HAMLET_FOLLOW_UP, cascade=False)
    assert result.answer == "1564"
    assert result.signals["consistency"].confidence == 1.0  # the samples saw the same conversation
    assert result.question.startswith("Who wrote Hamlet? William Shakespeare.")
    concepts = [c["concept"] for c in result.signals["familiarity"].details["concepts"]]
    assert sorted(concepts) == ["Hamlet", "William Shakespeare"]  # the follow-up alone names none


class RecordingPace:
    """Stands in for PACE to record which references the pipeline hands it."""

    name = "pace"

    def __init__(self) -> None:
        self.references: list[object] = []

    async def score(self, question: str, answer: str, **context: object) -> Signal:
        self.references.append(context.get("references"))
        return Signal(name="pace", confidence=0.9)


@dataclass(frozen=True)
class ReadPace:
    signals: tuple[str, ...] = ("pace",)
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        return values.get("pace") or 0.5


@dataclass(frozen=True)
class PaceOnly:
    free: None = None
    full: ReadPace = ReadPace()
    precheck_threshold: float | None = None
    id: str = "test"


async def test_a_tool_result_is_the_reference_pace_grounds_the_final_answer_in() -> None:
    suite = (SignalSpec("pace", "pace", "full", {"use_llm_judgements": False}),)
    gate = Gate(ScriptedLLM(default="It is 18 C and raining in Paris."), PaceOnly(), suite=suite)
    pace = gate.estimators["pace"] = RecordingPace()  # type: ignore[assignment]
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Paris: 18 C, light rain"},
    ]
    result = await gate.assess(messages, cascade=False)
    assert pace.references == [["Paris: 18 C, light rain"]]
    assert result.answer == "It is 18 C and raining in Paris."
    assert result.probability == pytest.approx(0.9)
