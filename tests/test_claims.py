"""split_claims: exact sentences and spans for abbreviations, initials, decimals, quotes, lists, newlines."""

from __future__ import annotations

import pytest

from estimators.claims import Claim, split_claims


def texts(answer: str) -> list[str]:
    claims = split_claims(answer)
    for claim in claims:  # every span points exactly into the answer
        assert answer[claim.start : claim.end] == claim.text
    return [c.text for c in claims]


def test_spans_are_exact_offsets() -> None:
    answer = "  It rains. It pours.  "
    assert split_claims(answer) == [Claim("It rains.", 2, 11), Claim("It pours.", 12, 21)]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Dr. Smith met Mrs. Jones. They talked.", ["Dr. Smith met Mrs. Jones.", "They talked."]),
        ("He moved to the U.S. in 1990. He stayed.", ["He moved to the U.S. in 1990.", "He stayed."]),
        ("He served in the U.S. Army. Then he left.", ["He served in the U.S. Army.", "Then he left."]),
        ("He moved to the U.S. He stayed.", ["He moved to the U.S.", "He stayed."]),
        ("It weighs 3.5 kg. It costs 1,000.50 dollars.", ["It weighs 3.5 kg.", "It costs 1,000.50 dollars."]),
        ("J. K. Rowling wrote it. John F. Kennedy read it.", ["J. K. Rowling wrote it.", "John F. Kennedy read it."]),
        ("Born on Jan. 5, 1950 in St. Louis. Died in 2000.", ["Born on Jan. 5, 1950 in St. Louis.", "Died in 2000."]),
        (
            "Tools, e.g. hammers, etc. are sold. Acme Inc. The firm grew.",
            ["Tools, e.g. hammers, etc. are sold.", "Acme Inc.", "The firm grew."],
        ),
        ("He founded Nadiadwala Pvt. Ltd. in 2005.", ["He founded Nadiadwala Pvt. Ltd. in 2005."]),
        (
            "Miracle in Cell No. 7 aired. Scientist vs. Professor too.",
            ["Miracle in Cell No. 7 aired.", "Scientist vs. Professor too."],
        ),
        ("He joined Acme Inc. in 1990. He left.", ["He joined Acme Inc. in 1990.", "He left."]),
        ("She won approx. three medals. Great!", ["She won approx. three medals.", "Great!"]),
        ("Is it true? Yes! It is.", ["Is it true?", "Yes!", "It is."]),
        ("Wait... What happened? Nothing...", ["Wait...", "What happened?", "Nothing..."]),
    ],
)
def test_abbreviations_initials_decimals(answer: str, expected: list[str]) -> None:
    assert texts(answer) == expected


def test_quotes_close_the_sentence_they_end() -> None:
    answer = 'He said "Stop." Then he left. "Go!" she said. (It was late.) Everyone slept.'
    assert texts(answer) == ['He said "Stop."', "Then he left.", '"Go!" she said.', "(It was late.)", "Everyone slept."]


def test_bullet_and_numbered_lists_are_claims_without_their_markers() -> None:
    answer = "Facts:\n- Paris is in France\n* Rome is in Italy. It is old.\n1. Oslo\n2) Bern\n• Lima"
    assert texts(answer) == ["Facts:", "Paris is in France", "Rome is in Italy.", "It is old.", "Oslo", "Bern", "Lima"]
    first_item = split_claims(answer)[1]
    assert (first_item.start, first_item.end) == (9, 27)


def test_paragraphs_split_and_wrapped_lines_join() -> None:
    answer = "This sentence is wrapped\nacross two lines. Next.\n\nA heading\nNew paragraph here."
    assert texts(answer) == [
        "This sentence is wrapped\nacross two lines.",
        "Next.",
        "A heading",
        "New paragraph here.",
    ]


def test_empty_and_punctuation_only_give_no_claims() -> None:
    assert split_claims("") == []
    assert split_claims("   \n\n ") == []
    assert texts("- \n...\nOk.") == ["Ok."]


def test_text_without_final_punctuation_is_one_claim() -> None:
    assert texts("no punctuation at all") == ["no punctuation at all"]


def test_roman_empire_example_from_the_issue() -> None:
    answer = (
        "The Roman Empire was a great empire that stretched from the Mediterranean to the Black Sea. "
        "It was a great empire that was ruled by a king and a queen."
    )
    assert texts(answer) == [
        "The Roman Empire was a great empire that stretched from the Mediterranean to the Black Sea.",
        "It was a great empire that was ruled by a king and a queen.",
    ]


def test_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="str"):
        split_claims(None)  # type: ignore[arg-type]


def test_doctests_of_the_claim_modules_pass() -> None:
    import doctest

    from estimators import claim_consistency, claim_support, claims

    for module in (claims, claim_support, claim_consistency):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
