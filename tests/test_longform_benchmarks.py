"""The long-form benchmarks' helpers: section rewriting, pairwise accuracy with ties, the naive baseline."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.claim_grounding import pairwise_accuracy, pooled_auroc
from benchmarks.claims_split import content_words, naive_split
from benchmarks.longform_results import write_section


def test_write_section_replaces_its_own_section_and_keeps_the_others(tmp_path) -> None:
    path = tmp_path / "longform.md"
    write_section("Claims", "first", path)
    write_section("Grounding", "g1", path)
    write_section("Claims", "second", path)
    text = path.read_text()
    assert text.count("## Claims") == 1 and "second" in text and "first" not in text
    assert text.index("## Claims") < text.index("## Grounding") and "g1" in text


def test_pairwise_accuracy_counts_ties_as_half_and_missing_as_lowest() -> None:
    scores = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [np.nan, 0.3]])
    assert pairwise_accuracy(scores) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert pooled_auroc(np.array([[0.9, 0.1], [0.8, 0.2]])) == 1.0


def test_naive_split_and_content_words() -> None:
    assert naive_split("Dr. Who left. He came\nback!") == ["Dr.", "Who left.", "He came", "back!"]
    assert content_words("He was born in Paris[1].") == {"born", "paris"}
