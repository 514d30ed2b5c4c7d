"""Request kinds (gate.request_kind): which requests the gate can assess, with the rule and the reason."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.request_kind import RequestKind, classify

PASSAGE = (
    "The Amazon rainforest covers much of the Amazon basin of South America. The basin spans 7,000,000 square "
    "kilometres, of which 5,500,000 square kilometres are covered by the rainforest. The region includes "
    "territory belonging to nine nations, and the majority of the forest is contained within Brazil."
)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str | None) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def kind_of(text: str) -> RequestKind:
    return classify([user(text)])


# ------------------------------------------------------------------------------------------- factual


def test_the_roman_empire_paragraph_is_a_long_factual_request() -> None:
    # issue 16: this was abstained with "least familiar: 'Write'"; an expository request is factual.
    result = kind_of("Write a short paragraph about the history of the Roman Empire.")
    assert result.kind == "factual"
    assert result.rule == "expository"
    assert "'Write a short paragraph'" in result.reason
    assert result.references == ()


@pytest.mark.parametrize(
    "text",
    [
        "Who wrote Hamlet?",
        "What year did the Berlin Wall fall?",
        "Hi, who painted the Mona Lisa?",
        "Who wrote the poem 'The Raven'?",  # a question about a poem, not a request for one
        "What is a regular expression?",  # about code, but a question of fact
        "Should I take ibuprofen with alcohol?",  # advice-shaped, but a factual question
    ],
)
def test_short_questions_are_factual(text: str) -> None:
    result = kind_of(text)
    assert (result.kind, result.rule) == ("factual", "question")


@pytest.mark.parametrize(
    "text",
    [
        "Explain how vaccines work.",
        "Tell me a bio of Marie Curie.",
        "Summarize the plot of Hamlet.",  # no text supplied: the summary comes from the model's memory
        "Write an essay on the causes of World War I.",
        "Tell me the story of Apollo 13.",
    ],
)
def test_expository_requests_are_factual(text: str) -> None:
    assert (kind_of(text).kind, kind_of(text).rule) == ("factual", "expository")


def test_a_creative_request_with_a_factual_question_is_factual() -> None:
    result = kind_of("Write a haiku about Paris and tell me when the Eiffel Tower was built.")
    assert (result.kind, result.rule) == ("factual", "mixed")
    assert "when the Eiffel Tower was built" in result.reason
    assert "creative" in result.reason


def test_an_unrecognised_request_is_factual_by_default_and_says_so() -> None:
    result = kind_of("Recommend some books about the Napoleonic wars.")
    assert (result.kind, result.rule) == ("factual", "fallback")
    assert "by default" in result.reason


# --------------------------------------------------------------------------------------- non-factual


@pytest.mark.parametrize(
    ("text", "rule", "evidence"),
    [
        ("Write a poem about autumn leaves.", "creative", "Write a poem"),
        ("Tell me a joke about penguins.", "creative", "Tell me a joke"),
        ('Translate into French: "The cat is sleeping on the warm sofa."', "rewrite", "Translate"),
        ("Fix the grammar: me and him goes to the store yesterday.", "rewrite", "Fix the grammar"),
        ("Write a Python function that checks whether a number is prime.", "code", "Write a Python function"),
        ("How do I reverse a list in Python?", "code", "How do I reverse a list in Python"),
        ("thanks, that's great!", "chit_chat", "thanks, that's great!"),
        ("What do you think of jazz?", "opinion", "What do you think of"),
        ("Give me 5 tips for a first date.", "advice", "Give me 5 tips"),
    ],
)
def test_non_factual_requests_name_their_rule_and_words(text: str, rule: str, evidence: str) -> None:
    result = kind_of(text)
    assert (result.kind, result.rule) == ("non_factual", rule)
    assert evidence in result.reason


def test_pasted_code_is_code_even_with_a_question() -> None:
    result = kind_of("Why does this fail?\n\n```python\nxs = [1, 2, 3]\nprint(xs[3])\n```")
    assert (result.kind, result.rule) == ("non_factual", "code")
    assert result.reason == "code: the request contains code"


def test_a_translation_of_a_pasted_passage_is_a_rewrite_not_a_grounded_task() -> None:
    result = kind_of(f"Translate this into Spanish:\n\n{PASSAGE}")
    assert (result.kind, result.rule) == ("non_factual", "rewrite")
    assert result.references == ()


# ------------------------------------------------------------------------------------------ grounded


@pytest.mark.parametrize(
    "text",
    [
        f"Summarize the following article:\n\n{PASSAGE}",
        f"{PASSAGE}\n\nSummarize this in two sentences.",
        f"Passage: {PASSAGE}\nQuestion: Which country holds most of the forest?",
        f"<context>{PASSAGE}</context>\nAccording to the context, how many nations share the basin?",
    ],
)
def test_a_task_over_a_pasted_passage_is_grounded_on_it(text: str) -> None:
    result = kind_of(text)
    assert result.kind == "grounded"
    assert result.references == (PASSAGE,)
    assert f"{len(PASSAGE.split())} words of text" in result.reason


def test_a_question_after_a_passage_pasted_earlier_is_grounded_on_that_passage() -> None:
    messages = [user(f"Here is an article:\n\n{PASSAGE}"), assistant("Got it."), user("How big is the basin?")]
    result = classify(messages)
    assert (result.kind, result.rule) == ("grounded", "context:question")
    assert result.references == (PASSAGE,)
    assert "an earlier turn" in result.reason


def test_a_system_prompt_that_marks_a_document_grounds_the_question() -> None:
    messages = [system(f"Answer from the context below.\n\nContext:\n{PASSAGE}"), user("How big is the basin?")]
    result = classify(messages)
    assert result.kind == "grounded"
    assert result.references == (PASSAGE,)
    assert "the system prompt" in result.reason


# ------------------------------------------------------------------------------------- conversations


def test_a_follow_up_with_a_pronoun_is_factual() -> None:
    messages = [user("Who wrote Hamlet?"), assistant("William Shakespeare."), user("And when was he born?")]
    assert (classify(messages).kind, classify(messages).rule) == ("factual", "question")


def test_a_short_follow_up_takes_the_kind_of_the_request_it_continues() -> None:
    poem = [user("Write a poem about the sea."), assistant("The sea, the sea..."), user("Make it shorter.")]
    paragraph = [
        user("Write a short paragraph about the history of the Roman Empire."),
        assistant("Rome was founded..."),
        user("Make it shorter."),
    ]
    joke = [user("Tell me a joke."), assistant("..."), user("Another one!")]
    assert (classify(poem).kind, classify(poem).rule) == ("non_factual", "follow_up:creative")
    assert (classify(paragraph).kind, classify(paragraph).rule) == ("factual", "follow_up:expository")
    assert (classify(joke).kind, classify(joke).rule) == ("non_factual", "follow_up:creative")
    assert classify(poem).reason.startswith("follow-up ('Make it shorter') to an earlier request; creative")


def test_the_system_prompt_is_never_the_question() -> None:
    messages = [system("You are a poet. Write a poem whenever you can."), user("Who painted the Mona Lisa?")]
    result = classify(messages)
    assert (result.kind, result.rule, result.references) == ("factual", "question", ())
    # and a persona prompt with no marked context supplies no references
    long_persona = system("You are Max, a friendly support agent for ACME Corp. " * 12)
    assert classify([long_persona, user("Who founded ACME?")]).references == ()


def test_content_part_lists_are_read_and_non_text_parts_ignored() -> None:
    parts = [
        {"type": "text", "text": "Write a limerick"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "about a cat."},
    ]
    result = classify([{"role": "user", "content": parts}])
    assert (result.kind, result.rule) == ("non_factual", "creative")


# ---------------------------------------------------------------------------------------- tool calls

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_a_request_that_offers_tools_is_a_tool_call() -> None:
    result = classify([user("What's the weather in Paris?")], TOOLS, tool_choice="auto")
    assert (result.kind, result.rule) == ("tool_call", "tools_offered")
    assert "get_weather" in result.reason


def test_tool_choice_none_classifies_the_text() -> None:
    result = classify([user("Who wrote Hamlet?")], TOOLS, tool_choice="none")
    assert result.kind == "factual"


def test_a_tool_result_last_is_a_tool_call_grounded_on_the_result() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    result_text = json.dumps({"city": "Paris", "temperature_c": 18})
    messages = [
        user("What's the weather in Paris?"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result_text},
    ]
    result = classify(messages)  # some clients drop `tools` on the call that sends the result
    assert (result.kind, result.rule) == ("tool_call", "tool_result")
    assert result.references == (result_text,)
    # the user's next question is grounded on what the tool returned
    follow_up = classify([*messages, assistant("It is 18 C."), user("Is that warm for April?")])
    assert (follow_up.kind, follow_up.references) == ("grounded", (result_text,))


# ------------------------------------------------------------------------------------ input contract


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "messages is empty"),
        ("Who wrote Hamlet?", "must be a list of message dicts, got str"),
        ({"role": "user", "content": "hi"}, "must be a list of message dicts, got dict"),
        (["Who wrote Hamlet?"], "message 0 is a str"),
        ([{"role": "robot", "content": "hi"}], "role 'robot'; valid roles: system, developer, user"),
        ([system("Be brief.")], "no user message to classify"),
        ([user("   ")], "the last user message has no text"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "no text"),
        ([{"role": "user", "content": ["hi"]}], "content part 0"),
        ([{"role": "user", "content": 42}], "content is a int"),
    ],
)
def test_malformed_input_is_a_value_error_that_says_what_was_received(messages, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classify(messages)


def test_tools_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="tools must be a list"):
        classify([user("hi")], {"type": "function"})  # type: ignore[arg-type]


def test_the_result_is_frozen() -> None:
    result = kind_of("Who wrote Hamlet?")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kind = "non_factual"  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(str.strip))
def test_any_user_text_gets_a_kind_and_a_reason(text: str) -> None:
    result = kind_of(text)
    assert result.kind in ("factual", "grounded", "non_factual")
    assert result.reason and result.rule
    assert (result.kind == "grounded") == bool(result.references)


@pytest.mark.parametrize("text", ["a:", "Passage:", "Text:\n", "Context: \n Passage:"])
def test_a_bare_label_is_a_kind_not_a_crash(text: str) -> None:
    # Found by the property test above in CI: a lone label left no lines to read an instruction from.
    result = kind_of(text)
    assert result.kind in ("factual", "grounded", "non_factual")
    assert result.reason
