"""Concept extraction, word ranks and rarity for the self-familiarity precheck."""

from __future__ import annotations

import math

import pytest

from estimators.concepts import (
    FREQUENT_RANK,
    UNLISTED_RANK,
    extract_concepts,
    find_concepts,
    load_common_concepts,
    log_rarity,
    word_ranks,
    word_tokens,
)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        # A multi-word name; "composer" is a frequent word and goes.
        ("Who was the composer of Easy Living?", ["Easy Living"]),
        # A connector inside a name; a possessive is cut off.
        ("Who is the father of Æthelburh of Wilton?", ["Æthelburh of Wilton"]),
        ("What is Michael Lynton's occupation?", ["Michael Lynton"]),
        # Adjacent pieces merge: a name followed by rare lower-case words.
        ("Who was the screenwriter for La rabbia?", ["La rabbia"]),
        ("Who is the father of Muiz ud din Qaiqabad?", ["Muiz ud din Qaiqabad"]),
        # A sentence-initial function word is no name; the frequent term "country" is dropped.
        ("In what country is Peru?", ["Peru"]),
        # A quoted term wins over the capitalised words inside it.
        ('Who wrote "Pride and Prejudice"?', ["Pride and Prejudice"]),
        ("Describe the 'bystander effect' in psychology.", ["bystander effect"]),
        # Lower-case terms; when every concept is a frequent word, they are all kept.
        ("What is photosynthesis?", ["photosynthesis"]),
        ("What is gravity?", ["gravity"]),
        # Rarest first: three capitalised words, then two, then an unlisted lower-case word.
        (
            'Lee Jun-fan played what character in "The Green Hornet" television series?',
            ["The Green Hornet", "Lee Jun-fan"],
        ),
        ("What nationality was James Henry Miller's wife?", ["James Henry Miller", "nationality"]),
        # Initials, a title with connectors and a place; ties keep the question's order.
        (
            "J. R. R. Tolkien wrote The Lord of the Rings in Oxford.",
            ["J. R. R. Tolkien", "The Lord of the Rings", "Oxford"],
        ),
        # A frequent sentence-initial word ("Musician") is not a name; a verb does not join a name.
        ("Musician and satirist Allie Goertz wrote a song about Milhouse.", ["Allie Goertz", "Milhouse"]),
        ("Joe Heck ran against Catherine Cortez Masto.", ["Catherine Cortez Masto", "Joe Heck"]),
        ("What did I say about Apollo 11?", ["Apollo 11"]),
    ],
)
def test_extract_concepts_exact(question: str, expected: list[str]) -> None:
    assert extract_concepts(question) == expected


def test_no_concepts_in_a_question_of_function_words() -> None:
    assert extract_concepts("What is it?") == []
    assert find_concepts("") == []


def test_limit_keeps_the_rarest() -> None:
    question = "J. R. R. Tolkien wrote The Lord of the Rings in Oxford."
    assert extract_concepts(question, limit=2) == ["J. R. R. Tolkien", "The Lord of the Rings"]


def test_spans_point_into_the_question() -> None:
    question = "Who was the director of The Cheyenne Social Club?"
    (concept,) = find_concepts(question)
    assert question[concept.start : concept.end] == concept.text == "The Cheyenne Social Club"
    assert concept.kind == "name"


def test_repeated_and_covered_concepts_are_dropped() -> None:
    question = 'Is "The Simpsons" older than Simpsons comics about Milhouse, and who drew Milhouse?'
    assert extract_concepts(question) == ["The Simpsons", "Milhouse"]


def test_non_string_question_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="question must be a str"):
        find_concepts(None)  # type: ignore[arg-type]


def test_word_ranks_skip_comments_and_start_at_one() -> None:
    ranks = word_ranks()
    assert ranks["the"] == 1
    assert len(ranks) == 20_000
    assert not any(word.startswith("#") for word in ranks)
    assert all(word == word.lower() for word in ranks)


def test_log_rarity_uses_the_paper_weights() -> None:
    ranks = word_ranks()
    # log r(w) = -rank / 100 for a listed lower-case word, -100000 / 100 otherwise.
    assert log_rarity("the", kind="term") == pytest.approx(-ranks["the"] / 100)
    assert log_rarity("city of", kind="term") == pytest.approx(-(ranks["city"] + ranks["of"]) / 100)
    assert log_rarity("Paris") == -UNLISTED_RANK / 100
    assert log_rarity("zzyzzyq", kind="term") == -UNLISTED_RANK / 100
    # A capital counts as rare in a name, not in a lower-case term that starts a sentence.
    assert log_rarity("Musician", kind="term") == pytest.approx(-ranks["musician"] / 100)
    assert math.exp(log_rarity("the", kind="term")) == pytest.approx(math.exp(-0.01))


def test_frequent_rank_is_the_papers_ten_thousand() -> None:
    assert FREQUENT_RANK == 10_000


def test_word_tokens_are_lower_case_letters() -> None:
    assert word_tokens("Arthur's Magazine (1844) was American.") == ["arthur", "s", "magazine", "was", "american"]


def test_common_concepts_are_about_a_hundred_distinct_concepts() -> None:
    concepts = load_common_concepts()
    assert 100 <= len(concepts) <= 150
    assert len(set(concepts)) == len(concepts)
    assert "Photosynthesis" in concepts
    # The worked examples of the familiarity prompts must not be among them.
    assert "Compass" not in concepts
    assert "Johann Sebastian Bach" not in concepts
