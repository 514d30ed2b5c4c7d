"""The engine's numpy side, exactly: log-probs from a position's scores, token draws, and batch padding."""

import numpy as np
import pytest

from gate.backends.embedded.engine import SamplingParams, Scores, _Padding, draw_token, top_k


def _scores(values) -> Scores:
    return Scores(np.asarray(values, dtype=np.float32))


def _log_softmax(values) -> np.ndarray:
    logits = np.asarray(values, dtype=np.float64)
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def test_log_probs_equal_a_float64_log_softmax_over_a_large_vocabulary():
    logits = np.random.default_rng(0).normal(0, 4, 262_144).astype(np.float32)
    scores, reference = Scores(logits), _log_softmax(logits)
    for token in (0, 17, int(np.argmax(logits)), int(np.argmin(logits))):
        assert scores.logprob(token) == pytest.approx(reference[token], abs=1e-6)


def test_likeliest_tokens_come_likeliest_first():
    scores = _scores([0.1, 3.0, -2.0, 2.5, 3.5])
    assert list(scores.likeliest(1)) == [4]
    assert list(scores.likeliest(3)) == [4, 1, 3]


def _sorted_reference(values, k) -> list[int]:
    """A full sort by (largest value, lowest index): what ``top_k`` must equal."""
    return sorted(range(len(values)), key=lambda index: (-values[index], index))[:k]


@pytest.mark.parametrize("size", [5, 639, 262_144, 262_145])
@pytest.mark.parametrize("k", [1, 2, 5, 40])
def test_top_k_equals_a_full_sort_ties_included(size, k):
    rng = np.random.default_rng(size + k)
    spread = rng.normal(0, 4, size).astype(np.float32)
    ties = rng.integers(0, 6, size).astype(np.float32)  # six distinct values: ties across every boundary
    peaked = np.where(rng.random(size) < 0.001, 30.0, -30.0).astype(np.float32)  # a few in one chunk, or none
    for values in (spread, ties, peaked):
        assert list(top_k(values, k)) == _sorted_reference(values.tolist(), k)


def test_likeliest_is_computed_once_per_position_and_read_only():
    scores = _scores(np.random.default_rng(2).normal(0, 3, 5000))
    first = scores.likeliest(40)
    assert scores.likeliest(40) is first
    assert not first.flags.writeable


def test_a_draw_is_greedy_at_temperature_zero_and_within_top_k_and_top_p_otherwise():
    scores = _scores([0.0, 5.0, 4.9, -3.0, 1.0])
    rng = np.random.default_rng(0)
    assert draw_token(scores, 0.0, rng, SamplingParams()) == 1
    top_two = {draw_token(scores, 1.0, rng, SamplingParams(top_k=2)) for _ in range(200)}
    assert top_two == {1, 2}
    # top-p 0.5 keeps the likeliest token alone (it holds about half the mass, so the cut falls after it)
    assert {draw_token(scores, 1.0, rng, SamplingParams(top_p=0.5)) for _ in range(50)} == {1}


def test_a_draw_does_not_depend_on_the_normaliser():
    logits = np.random.default_rng(1).normal(0, 3, 1000).astype(np.float32)
    draws = [
        [draw_token(_scores(logits + shift), 1.0, np.random.default_rng(5), SamplingParams()) for _ in range(3)]
        for shift in (0.0, 40.0)
    ]
    assert draws[0] == draws[1]


ROWS = [([0], 11, 7), ([1, 2], 12, 7), ([3], 13, 7)]


@pytest.mark.parametrize("count", [1, 2, 4])
def test_one_two_or_an_even_number_of_rows_are_not_padded(count):
    rows = (ROWS * 2)[:count]
    assert _Padding(5, 7).even(rows) == rows


def test_an_odd_number_of_rows_from_three_gets_one_throwaway_row_at_the_spare_sequences_next_position():
    padding = _Padding(5, 7)
    assert padding.even(ROWS) == [*ROWS, ([5], 13, 7)]
    five = [*ROWS, ([4], 14, 8), ([6], 15, 8)]
    assert padding.even(five) == [*five, ([5], 15, 8)]  # the spare sequence's positions follow on


def test_without_a_spare_sequence_nothing_is_padded():
    assert _Padding(None, 7).even(ROWS) == ROWS
