"""Chat messages rendered into the base model's few-shot Q/A format."""

import pytest

from gate.backends.embedded.prompt_format import DEFAULT_PREAMBLE, FEW_SHOT_EXAMPLES, render_chat


def test_single_question_ends_with_answer_slot():
    prompt = render_chat([{"role": "user", "content": "Who wrote Hamlet?"}])
    assert prompt.startswith(DEFAULT_PREAMBLE)
    assert prompt.endswith("Q: Who wrote Hamlet?\nA:")
    for question, answer in FEW_SHOT_EXAMPLES:
        assert f"Q: {question}\nA: {answer}" in prompt


def test_system_message_becomes_preamble_and_history_is_kept():
    prompt = render_chat(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First?"},
            {"role": "assistant", "content": "One"},
            {"role": "user", "content": "Second?\n  really"},
        ]
    )
    assert prompt.startswith("Be brief.\n")
    assert DEFAULT_PREAMBLE not in prompt
    assert prompt.endswith("Q: First?\nA: One\nQ: Second? really\nA:")


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "empty"),
        ([{"role": "tool", "content": "x"}], "role='tool'"),
        ([{"role": "user", "content": 3}], "content type int"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "last message"),
    ],
)
def test_bad_messages_are_rejected_with_a_clear_message(messages, match):
    with pytest.raises(ValueError, match=match):
        render_chat(messages)
