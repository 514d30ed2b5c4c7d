"""Reason sentences and the numbers in them: small probabilities stay readable."""

import math

from hypothesis import given
from hypothesis import strategies as st

from estimators.base import Signal
from gate.reasons import format_probability, precheck_reason, signal_reasons


def test_from_001_up_fixed_decimals_as_before_below_two_significant_digits():
    assert format_probability(0.8312) == "0.83"
    assert format_probability(0.01, 3) == "0.010"
    assert format_probability(0.0086) == "0.0086"
    assert format_probability(0.000628, 3) == "0.00063"
    assert format_probability(0.0000628) == "6.3e-05"
    assert format_probability(0.0) == "0"
    assert format_probability(None) == "n/a"


def test_percent_scales_the_value_but_keeps_the_cut_on_the_probability():
    assert format_probability(0.734, 0, percent=True) == "73%"
    assert format_probability(0.0063, 0, percent=True) == "0.63%"
    assert format_probability(0.0, 0, percent=True) == "0%"


def test_precheck_reason_shows_tiny_familiarity_and_threshold():
    concepts = [{"concept": "Zx", "score": 0.0}]
    familiarity = Signal(name="familiarity", confidence=0.0000628, details={"concepts": concepts})
    assert precheck_reason(familiarity, 0.00012) == (
        "unfamiliar concept: 'Zx' (familiarity 6.3e-05 is below the precheck threshold 0.00012);"
        " no answer was generated"
    )


def test_signal_reasons_use_the_readable_numbers():
    signals = {"pace": Signal(name="pace", confidence=0.0042), "verbalized": Signal(name="verbalized", confidence=0.3)}
    assert signal_reasons(signals, "abstain") == [
        "references do not support the answer (PACE 0.0042)",
        "the model states 30% confidence in its answer",
    ]


@given(st.floats(min_value=1e-12, max_value=0.0099), st.floats(min_value=1e-12, max_value=0.0099))
def test_small_values_that_differ_at_two_significant_digits_print_differently(a, b):
    def two_digits(x: float) -> float:
        return float(f"{x:.2g}")

    if two_digits(a) != two_digits(b):
        assert format_probability(a) != format_probability(b)
    assert math.isclose(float(format_probability(a)), a, rel_tol=0.05)
