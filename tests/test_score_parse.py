"""The strict 0-10 rating parser: accepted forms, rejections with reasons, and that no text makes it raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimators.score_parse import ParsedScore, parse_score


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Score: 7", 7.0),
        ("Reasoning: the passage states it.\nScore: 9", 9.0),
        ("score:10", 10.0),
        ("SCORE: 0", 0.0),
        ("Score: 7.5", 7.5),
        ("Score: 8/10", 8.0),
        ("Score: 6.", 6.0),
        ("Score: **4**", 4.0),
        ("Score: 3 because the passage is vague", 3.0),
        ("Reasoning: x\nScore: 2\n\nReferences:\nScore: 9", 2.0),  # the first verdict counts
    ],
)
def test_accepts_plain_ratings(text: str, value: float) -> None:
    assert parse_score(text) == ParsedScore(value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no 'Score:'"),
        ("Reasoning: it is likely.", "no 'Score:'"),
        ("Subscore: 5", "no 'Score:'"),
        ("Score: high", "not a number"),
        ("Score: seven", "not a number"),
        ("Score: -1", "not a number"),
        ("Score: 7-8", "not a number"),
        ("Score: 7/5", "not a number"),
        ("Score: nan", "not a number"),
        ("Score: inf", "not a number"),
        ("Score:\n7", "not a number"),
        ("Score: 11", "outside [0, 10]"),
        ("Score: 10.5", "outside [0, 10]"),
        ("Score: 100/100", "not a number"),
    ],
)
def test_rejects_with_a_reason(text: str, reason: str) -> None:
    parsed = parse_score(text)
    assert parsed.value is None
    assert reason in parsed.error


def test_label_and_scale_are_options() -> None:
    assert parse_score("COE: 4", label="COE").value == 4.0
    assert parse_score("Score: 4", label="COE").value is None
    assert parse_score("Score: 80", high=100).value == 80.0


def test_non_text_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_score(7)  # type: ignore[arg-type]


@given(st.text())
def test_never_raises_and_stays_on_scale(text: str) -> None:
    parsed = parse_score(text)
    assert (parsed.value is None) != (parsed.error is None)
    if parsed.value is not None:
        assert 0.0 <= parsed.value <= 10.0


@given(st.text(alphabet=st.characters(blacklist_characters="sS")), st.integers(0, 10), st.sampled_from(["", "\n", " "]))
def test_round_trip_after_arbitrary_preamble(preamble: str, score: int, tail: str) -> None:
    assert parse_score(f"{preamble}\nScore: {score}{tail}").value == float(score)
