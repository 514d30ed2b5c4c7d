"""The strict verbalized-confidence parser: scales, rejections, labelled outputs, top-k lists, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.verbal_parse import (
    CONFIDENCE_WORDS,
    ParsedConfidence,
    parse_answer_and_confidence,
    parse_confidence,
    parse_top_k,
)


@pytest.mark.parametrize(
    ("text", "value", "scale", "matched"),
    [
        ("85%", 0.85, "percent", "85%"),
        ("85 %", 0.85, "percent", "85 %"),
        ("about 90 percent", 0.9, "percent", "90 percent"),
        ("12.5%", 0.125, "percent", "12.5%"),
        ("0.8%", 0.008, "percent", "0.8%"),
        ("100%", 1.0, "percent", "100%"),
        ("0%", 0.0, "percent", "0%"),
        ("85", 0.85, "0-100", "85"),
        ("80.", 0.8, "0-100", "80"),
        ("100", 1.0, "0-100", "100"),
        ("0", 0.0, "0-100", "0"),
        ("0.85", 0.85, "0-1", "0.85"),
        ("0.8", 0.8, "0-1", "0.8"),  # never 0.8% (the uqlm#468 bug)
        (".5", 0.5, "0-1", ".5"),
        ("1.0", 1.0, "0-1", "1.0"),
        ("+85%", 0.85, "percent", "+85%"),
        ("80% (high)", 0.8, "percent", "80%"),
        ("high", 0.8, "word", "high"),
        ("Very High confidence", 0.9, "word", "very high"),
        ("  unsure. ", 0.3, "word", "unsure"),
        ("Not sure", 0.3, "word", "not sure"),
        ("low", 0.2, "word", "low"),
    ],
)
def test_parse_confidence_reads_each_scale(text: str, value: float, scale: str, matched: str) -> None:
    assert parse_confidence(text) == ParsedConfidence(value, scale=scale, matched=matched)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "error_part"),
    [
        ("1", "ambiguous bare '1'"),
        ("1.5", "outside the 0-1 scale"),
        ("85.5", "outside the 0-1 scale"),
        ("150%", "outside the percent scale"),
        ("101", "outside the 0-100 scale"),
        ("-5", "negative"),
        ("-0.3", "negative"),
        ("−20%", "negative"),
        ("70-80%", "several numbers"),
        ("4/5", "several numbers"),
        ("nan", "no number or confidence word"),
        ("inf%", "no number or confidence word"),
        ("1e5", "no number or confidence word"),
        ("0.85x", "no number or confidence word"),
        ("not certain", "no number or confidence word"),
        ("", "empty"),
        ("   ", "empty"),
        ("9" * 400, "not a finite number"),
    ],
)
def test_parse_confidence_rejects_rather_than_clips(text: str, error_part: str) -> None:
    parsed = parse_confidence(text)
    assert parsed.value is None
    assert parsed.scale is None
    assert parsed.error is not None and error_part in parsed.error


def test_parse_confidence_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="text must be a str, got float"):
        parse_confidence(0.5)  # type: ignore[arg-type]


def test_confidence_words_lie_in_unit_interval() -> None:
    assert all(0.0 <= v <= 1.0 for v in CONFIDENCE_WORDS.values())
    assert all(parse_confidence(word).value == value for word, value in CONFIDENCE_WORDS.items())


def test_answer_and_confidence_on_two_lines() -> None:
    parsed = parse_answer_and_confidence("Answer: Paris\nConfidence: 90%")
    assert parsed.answer == "Paris"
    assert parsed.confidence == ParsedConfidence(0.9, scale="percent", matched="90%")
    assert parsed.error is None


def test_answer_and_confidence_on_one_line() -> None:
    parsed = parse_answer_and_confidence("Answer: Jane Austen, Confidence: 0.7")
    assert (parsed.answer, parsed.confidence.value, parsed.confidence.scale) == ("Jane Austen", 0.7, "0-1")


def test_last_label_wins() -> None:
    output = "Reasoning: it said Confidence: 100% and Answer: Lyon\nAnswer: Paris\nConfidence: 20%\n"
    parsed = parse_answer_and_confidence(output)
    assert (parsed.answer, parsed.confidence.value) == ("Paris", 0.2)


def test_value_runs_to_end_of_line_only() -> None:
    parsed = parse_answer_and_confidence("Answer: Paris\nConfidence:\n80%")
    assert parsed.answer == "Paris"
    assert parsed.confidence.value is None and parsed.confidence.error == "empty confidence"


def test_label_inside_a_word_is_not_a_label() -> None:
    parsed = parse_answer_and_confidence("Answers: Paris\nMyConfidence: 90%")
    assert parsed.answer is None
    assert parsed.confidence.error == "no 'Confidence:' label in the output"
    assert parsed.error == "no non-empty 'Answer:' in the output; no 'Confidence:' label in the output"


def test_missing_or_empty_answer_is_reported() -> None:
    parsed = parse_answer_and_confidence('Answer: ""\nConfidence: 60%')
    assert parsed.answer is None
    assert parsed.confidence.value == 0.6
    assert parsed.error == "no non-empty 'Answer:' in the output"


def test_bad_confidence_is_reported_with_answer_kept() -> None:
    parsed = parse_answer_and_confidence("Answer: Paris\nConfidence: 1")
    assert parsed.answer == "Paris"
    assert parsed.error is not None and "ambiguous bare '1'" in parsed.error


def test_top_k_lines_in_rank_order() -> None:
    output = "G2: Lyon\nP2: 30%\nG1: Paris\nP1: 0.6\ng3: Nice p3: 5\nG4: Lille\nP4: 5%"
    guesses = parse_top_k(output, k=3)
    assert [(g, c.value, c.scale) for g, c in guesses] == [
        ("Paris", 0.6, "0-1"),
        ("Lyon", 0.3, "percent"),
        ("Nice", 0.05, "0-100"),
    ]


def test_top_k_missing_probability_and_empty_guess() -> None:
    guesses = parse_top_k("G1: Paris\nG2:\nP2: 10%\nG3: Nice", k=3)
    assert [g for g, _ in guesses] == ["Paris", "Nice"]
    assert guesses[0][1].error == "no 'P1:' for guess G1"
    assert guesses[1][1].error == "no 'P3:' for guess G3"


def test_top_k_nothing_parsed() -> None:
    assert parse_top_k("I do not know", k=3) == []


@pytest.mark.parametrize("k", [0, -1, True, 2.0])
def test_top_k_rejects_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k must be a positive int"):
        parse_top_k("G1: a", k=k)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- properties


@settings(max_examples=300)
@given(st.text())
def test_any_text_parses_or_errors_never_raises(text: str) -> None:
    parsed = parse_confidence(text)
    assert (parsed.value is None) != (parsed.error is None)
    if parsed.value is not None:
        assert 0.0 <= parsed.value <= 1.0
        assert parsed.scale is not None and parsed.matched is not None


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from("0123456789.%-+ :\nAnswerConfidencGP1high")))
def test_number_heavy_text_stays_in_range(text: str) -> None:
    for parsed in (parse_confidence(text), parse_answer_and_confidence(text).confidence):
        assert parsed.value is None or 0.0 <= parsed.value <= 1.0
    for _, confidence in parse_top_k(text, k=3):
        assert confidence.value is None or 0.0 <= confidence.value <= 1.0


@given(st.integers(min_value=0, max_value=100))
def test_integer_percent_parses_to_fraction(x: int) -> None:
    assert parse_confidence(f"{x}%") == ParsedConfidence(x / 100, scale="percent", matched=f"{x}%")


@given(st.decimals(min_value=0, max_value=100, places=2))
def test_decimal_percent_parses_to_fraction(x: object) -> None:
    parsed = parse_confidence(f"Confidence: {x}%")
    assert parsed.scale == "percent"
    assert parsed.value == pytest.approx(float(str(x)) / 100)


@given(st.integers(min_value=0, max_value=10**6))
def test_zero_point_decimals_are_on_unit_scale(digits: int) -> None:
    text = f"0.{digits}"
    assert parse_confidence(text) == ParsedConfidence(float(text), scale="0-1", matched=text)


@given(st.text(), st.text())
def test_answer_and_top_k_parsers_never_raise(prefix: str, suffix: str) -> None:
    text = f"{prefix}Answer: {suffix}\nConfidence: {prefix}\nG1: {suffix} P1: {prefix}"
    parsed = parse_answer_and_confidence(text)
    assert parsed.confidence.value is None or 0.0 <= parsed.confidence.value <= 1.0
    assert all(g for g, _ in parse_top_k(text, k=2))
