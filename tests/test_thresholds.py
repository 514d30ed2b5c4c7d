"""Decision thresholds: risk guarantees on fresh data, infeasibility, fixed-sequence testing, decisions."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.decision import decision_of, decisions_of
from calibration.thresholds import (
    NEVER,
    DecisionThresholds,
    ThresholdResult,
    balance_threshold,
    choose_thresholds,
    conformal_risk_control,
    decide,
    decisions,
    learn_then_test,
    minimum_abstention,
)


def _calibrated(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """p ~ U(0, 1), correct ~ Bernoulli(p): the error rate among p >= t is (1 - t) / 2."""
    p = rng.uniform(size=n)
    return p, (rng.uniform(size=n) < p).astype(int)


def _risk_among_answered(p: np.ndarray, y: np.ndarray, t: float) -> float:
    answered = p >= t
    return float(np.mean(1 - y[answered])) if answered.any() else 0.0


def _result(threshold: float | None = 0.5) -> ThresholdResult:
    return ThresholdResult(threshold, "ltt:binomial", 0.1, 0.1, threshold is not None, 0.05, 0.5, 100, "test")


@pytest.mark.parametrize("bound", ["binomial", "hoeffding_bentkus"])
def test_ltt_error_rate_on_fresh_data_is_controlled(bound: str) -> None:
    rng = np.random.default_rng(0)
    alpha, delta, repetitions = 0.1, 0.1, 60
    violations, infeasible, coverages = 0, 0, []
    for _ in range(repetitions):
        result = learn_then_test(*_calibrated(2000, rng), target_level=0.9, confidence_level=0.9, bound=bound)
        assert result.alpha == alpha
        fresh_p, fresh_y = _calibrated(20_000, rng)
        if not result.feasible:  # answers nothing: no error among answered, but counted below
            infeasible += 1
            continue
        violations += _risk_among_answered(fresh_p, fresh_y, result.threshold) > alpha
        coverages.append(result.coverage)
    assert violations <= delta * repetitions
    # Not vacuous: mostly feasible, and the threshold sits near the population boundary t = 0.8 (coverage 0.2).
    assert infeasible <= 0.2 * repetitions
    assert 0.1 < np.mean(coverages) < 0.2


def test_binomial_is_never_more_conservative_than_hoeffding_bentkus() -> None:
    rng = np.random.default_rng(1)
    for n in (200, 1000, 3000):
        p, y = _calibrated(n, rng)
        for level in (0.8, 0.9):
            exact = learn_then_test(p, y, target_level=level, bound="binomial")
            hb = learn_then_test(p, y, target_level=level, bound="hoeffding_bentkus")
            if hb.feasible:
                assert exact.feasible and exact.threshold <= hb.threshold
            assert exact.coverage >= hb.coverage


def test_infeasible_target_is_reported_with_the_minimum_abstention() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(2, dtype=int), np.zeros(18, dtype=int)]  # base error rate 0.9
    result = learn_then_test(rng.uniform(size=20), y, target_level=0.95)
    assert not result.feasible and result.threshold is None
    assert result.coverage == 0.0 and math.isnan(result.empirical_risk)
    assert result.alpha == 0.05 and result.delta == 0.1 and result.n == 20
    assert "infeasible" in result.message and "89.5%" in result.message and "0.895" in result.message
    assert minimum_abstention(0.9, 0.05) == pytest.approx(0.85 / 0.95)

    # Large n does not help when the scores carry no information: still infeasible, still explained.
    p = rng.uniform(size=3000)
    noise = (rng.uniform(size=3000) < 0.1).astype(int)
    big = learn_then_test(p, noise, target_level=0.95, bound="binomial")
    assert not big.feasible and "must abstain on at least" in big.message


def test_minimum_abstention_is_zero_when_the_base_rate_already_meets_the_target() -> None:
    assert minimum_abstention(0.05, 0.1) == 0.0
    assert minimum_abstention(1.0, 0.0) == 1.0
    with pytest.raises(ValueError, match=r"base_error must be a number in \[0, 1\]; got 1.2"):
        minimum_abstention(1.2, 0.1)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\); got 1.0"):
        minimum_abstention(0.5, 1.0)


def test_fixed_sequence_stops_at_the_first_non_rejection() -> None:
    # 100 clean rows at 0.95, 20 wrong rows at 0.7, 1000 clean rows at 0.4.
    p = np.r_[np.full(100, 0.95), np.full(20, 0.7), np.full(1000, 0.4)]
    y = np.r_[np.ones(100, dtype=int), np.zeros(20, dtype=int), np.ones(1000, dtype=int)]
    result = learn_then_test(p, y, target_level=0.9, grid=[0.3, 0.6, 0.9])
    # 0.9 is rejected (0/100 errors), 0.6 is not (20/120 > 0.1): the sequence stops there, so 0.3 is never
    # tested although on its own it would pass (20/1120).
    assert result.feasible and result.threshold == 0.9
    assert result.empirical_risk == 0.0 and result.coverage == pytest.approx(100 / 1120)
    alone = learn_then_test(p, y, target_level=0.9, grid=[0.3])
    assert alone.feasible and alone.threshold == 0.3


def test_sequence_starts_at_the_first_testable_threshold() -> None:
    # All correct: the top thresholds select 1, 2, ... rows and cannot be rejected yet, but they must not
    # end the sequence; every threshold down to 0 is then certified.
    p = np.linspace(0.5, 1.0, 300)
    result = learn_then_test(p, np.ones(300, dtype=int), target_level=0.9)
    assert result.feasible and result.threshold == 0.0 and result.coverage == 1.0


def test_ltt_with_too_few_rows_says_more_data_is_needed() -> None:
    # Even ten clean rows cannot pass at alpha = delta = 0.1: (1 - 0.1) ** 10 = 0.35 > 0.1.
    result = learn_then_test([0.9] * 10, [1] * 10, target_level=0.9, confidence_level=0.9)
    assert not result.feasible
    assert "more than the 10 rows given" in result.message and "must abstain" not in result.message


def test_min_answered_sets_where_the_sequence_starts() -> None:
    # 40 clean rows on top, one wrong row, then 960 clean rows.
    p = np.linspace(1.0, 0.0, 1001)
    y = np.ones(1001, dtype=int)
    y[40] = 0
    # Starting at 22 answered rows, the test at 41 rows (1 error) fails and ends the sequence at the clean top.
    early = learn_then_test(p, y, target_level=0.9, min_answered=22, grid=p)
    assert early.feasible and early.threshold == p[39] and early.coverage == pytest.approx(40 / 1001)
    # Starting later (explicitly, or by default at 94 rows) skips that fragile stretch and answers everything.
    for late in (learn_then_test(p, y, target_level=0.9, min_answered=500, grid=p), learn_then_test(p, y, grid=p)):
        assert late.feasible and late.threshold == 0.0
    with pytest.raises(ValueError, match="min_answered must be a positive integer or None; got 0"):
        learn_then_test(p, y, min_answered=0)


def test_crc_threshold_satisfies_the_corrected_risk_rule_and_is_the_most_permissive() -> None:
    rng = np.random.default_rng(3)
    p, y = _calibrated(1000, rng)
    grid = np.linspace(0, 1, 201)
    result = conformal_risk_control(p, y, target_level=0.9, grid=grid)
    n, alpha = p.size, 0.1

    def corrected(t: float) -> float:
        joint = np.mean((p >= t) & (y == 0))  # loss: answered and wrong, B = 1
        return n / (n + 1) * joint + 1 / (n + 1)

    assert result.feasible and result.delta is None and result.method == "crc"
    assert corrected(result.threshold) <= alpha
    assert corrected(grid[grid < result.threshold].max()) > alpha
    # The conditional rate among answered is reported and exceeds alpha: CRC bounds the joint rate.
    assert result.empirical_risk == pytest.approx(_risk_among_answered(p, y, result.threshold))
    assert result.empirical_risk > alpha


def test_crc_controls_the_expected_joint_rate_on_fresh_data() -> None:
    rng = np.random.default_rng(4)
    joint = []
    for _ in range(50):
        result = conformal_risk_control(*_calibrated(500, rng), target_level=0.9)
        fresh_p, fresh_y = _calibrated(20_000, rng)
        joint.append(np.mean((fresh_p >= result.threshold) & (fresh_y == 0)))
    # Expected joint risk <= alpha; CRC is tight, so the mean is close to alpha, not far below it.
    assert 0.09 < np.mean(joint) <= 0.1 + 0.003


def test_crc_is_infeasible_when_n_is_below_one_over_alpha() -> None:
    result = conformal_risk_control([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 1, 1, 1], target_level=0.9)
    assert not result.feasible and "n + 1 >= 1 / alpha" in result.message


def test_balance_zero_maximises_precision_and_one_answers_everything() -> None:
    rng = np.random.default_rng(5)
    p, y = _calibrated(800, rng)
    grid = np.linspace(0, 1, 101)
    precise = balance_threshold(p, y, balance=0.0, grid=grid)
    best_precision = max(1 - _risk_among_answered(p, y, t) for t in grid if (p >= t).any())
    assert 1 - precise.empirical_risk == pytest.approx(best_precision)
    assert precise.method == "balance" and math.isnan(precise.alpha)

    everything = balance_threshold(p, y, balance=1.0)
    assert everything.coverage == 1.0 and everything.threshold <= p.min()

    coverages = [balance_threshold(p, y, balance=lam, grid=grid).coverage for lam in (0, 0.25, 0.5, 0.75, 1)]
    assert coverages == sorted(coverages)  # more weight on answering never answers less


@pytest.mark.parametrize("method", ["ltt", "crc", "balance"])
def test_choose_thresholds_orders_the_boundaries_and_survives_json(method: str) -> None:
    rng = np.random.default_rng(6)
    for _ in range(3):
        p, y = _calibrated(1500, rng)
        thresholds = choose_thresholds(p, y, answer_level=0.9, hedge_level=0.7, method=method, balance=0.9)
        assert 0.0 <= thresholds.abstain <= thresholds.hedge <= NEVER
        saved = json.loads(json.dumps(thresholds.to_dict(), allow_nan=False))
        restored = DecisionThresholds.from_dict(saved)
        assert restored.to_dict() == thresholds.to_dict()
        assert np.array_equal(decisions(p, restored), decisions(p, thresholds))


def test_choose_thresholds_ltt_targets_each_tier() -> None:
    p, y = _calibrated(3000, np.random.default_rng(7))
    thresholds = choose_thresholds(p, y, answer_level=0.9, hedge_level=0.7)
    assert thresholds.answer_result.alpha == 0.1 and thresholds.hedge_result.alpha == pytest.approx(0.3)
    assert thresholds.hedge == thresholds.answer_result.threshold
    assert thresholds.abstain == thresholds.hedge_result.threshold
    # A rejection needs an empirical error rate below the target at the chosen boundary.
    assert thresholds.answer_result.empirical_risk < 0.1 and thresholds.hedge_result.empirical_risk < 0.3
    assert thresholds.abstain < thresholds.hedge


def test_balance_answer_tier_never_drops_below_the_certified_floor() -> None:
    p, y = _calibrated(1500, np.random.default_rng(8))
    thresholds = choose_thresholds(p, y, method="balance", balance=1.0, hedge_level=0.7)
    assert thresholds.answer_result.threshold < thresholds.hedge_result.threshold  # balance alone answers all
    assert thresholds.hedge == thresholds.abstain == thresholds.hedge_result.threshold


def test_infeasible_targets_fall_back_to_never(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(9)
    y = np.r_[np.ones(2, dtype=int), np.zeros(18, dtype=int)]
    thresholds = choose_thresholds(rng.uniform(size=20), y, answer_level=0.95, hedge_level=0.7)
    assert thresholds.hedge == thresholds.abstain == NEVER
    assert not thresholds.answer_result.feasible and not thresholds.hedge_result.feasible
    assert decide(1.0, thresholds) == "abstain"  # nothing reaches NEVER, not even p = 1
    assert "must abstain on at least" in caplog.text
    restored = DecisionThresholds.from_dict(json.loads(json.dumps(thresholds.to_dict(), allow_nan=False)))
    assert restored.hedge == NEVER

    # Only the answer tier infeasible: everything delivered is hedged.
    p = np.r_[np.full(200, 0.9), np.full(200, 0.2)]
    labels = np.r_[(np.arange(200) % 5 != 0).astype(int), np.zeros(200, dtype=int)]  # 80% right at 0.9
    hedge_only = choose_thresholds(p, labels, answer_level=0.95, hedge_level=0.7)
    assert hedge_only.hedge == NEVER and hedge_only.abstain <= 0.9
    assert set(decisions(p, hedge_only)) == {"hedge", "abstain"}


def test_decide_boundaries_are_inclusive() -> None:
    thresholds = DecisionThresholds(abstain=0.3, hedge=0.7, answer_result=_result(0.7), hedge_result=_result(0.3))
    assert decide(0.7, thresholds) == "answer"
    assert decide(math.nextafter(0.7, 0), thresholds) == "hedge"
    assert decide(0.3, thresholds) == "hedge"
    assert decide(math.nextafter(0.3, 0), thresholds) == "abstain"
    assert decide(np.float32(1.0), thresholds) == "answer"
    probs = [0.0, 0.29, 0.3, 0.5, 0.7, 1.0]
    assert decisions(probs, thresholds).tolist() == [decide(v, thresholds) for v in probs]
    for bad in (1.5, -0.1, float("nan"), None):
        with pytest.raises(ValueError, match="probabilit"):
            decide(bad, thresholds)  # type: ignore[arg-type]


def test_decide_and_decisions_apply_the_one_rule_of_calibration_decision() -> None:
    thresholds = DecisionThresholds(abstain=0.3, hedge=0.7, answer_result=_result(0.7), hedge_result=_result(0.3))
    probs = [0.0, math.nextafter(0.3, 0), 0.3, 0.5, math.nextafter(0.7, 0), 0.7, 1.0]
    rule = decisions_of(probs, abstain=0.3, hedge=0.7).tolist()
    assert rule == decisions(probs, thresholds).tolist() == [decision_of(v, abstain=0.3, hedge=0.7) for v in probs]
    assert rule == ["abstain", "abstain", "hedge", "hedge", "hedge", "answer", "answer"]
    assert decision_of(1.0, abstain=NEVER, hedge=NEVER) == "abstain"  # an infeasible tier is never reached
    assert decision_of(float("nan"), abstain=0.3, hedge=0.7) == "abstain"  # the rule checks nothing; decide does


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.lists(st.floats(0, 1), min_size=1, max_size=30),
)
def test_decisions_are_monotone_in_the_probability(a: float, b: float, probs: list[float]) -> None:
    thresholds = DecisionThresholds(abstain=min(a, b), hedge=max(a, b), answer_result=_result(), hedge_result=_result())
    rank = {"abstain": 0, "hedge": 1, "answer": 2}
    ordered = [rank[d] for d in decisions(sorted(probs), thresholds)]
    assert ordered == sorted(ordered)


def test_decision_thresholds_refuse_disorder() -> None:
    with pytest.raises(ValueError, match="0 <= abstain <= hedge <= NEVER"):
        DecisionThresholds(abstain=0.8, hedge=0.5, answer_result=_result(), hedge_result=_result())
    with pytest.raises(ValueError, match="exactly the keys"):
        DecisionThresholds.from_dict({"abstain": 0.1, "hedge": 0.2})
    with pytest.raises(ValueError, match="'threshold' must be a number or null"):
        ThresholdResult.from_dict({**_result().to_dict(), "threshold": "high"})


def test_threshold_result_to_dict_is_strict_json() -> None:
    rng = np.random.default_rng(10)
    result = balance_threshold(*_calibrated(100, rng))
    saved = result.to_dict()
    assert saved["alpha"] is None  # NaN has no strict-JSON form
    restored = ThresholdResult.from_dict(json.loads(json.dumps(saved, allow_nan=False)))
    assert math.isnan(restored.alpha) and restored.threshold == result.threshold


def test_levels_convert_exactly() -> None:
    p, y = _calibrated(500, np.random.default_rng(11))
    result = learn_then_test(p, y, target_level=0.9, confidence_level=0.95)
    assert result.alpha == 0.1 and result.delta == 0.05  # not 0.09999999999999998


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, float("nan"), True, "0.9"])
def test_levels_outside_the_open_unit_interval_are_refused(level: Any) -> None:
    p, y = [0.2, 0.8], [0, 1]
    with pytest.raises(ValueError, match=r"target_level must be a number in \(0, 1\); got "):
        learn_then_test(p, y, target_level=level)
    with pytest.raises(ValueError, match=r"confidence_level must be a number in \(0, 1\); got "):
        learn_then_test(p, y, confidence_level=level)
    with pytest.raises(ValueError, match="target_level"):
        conformal_risk_control(p, y, target_level=level)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: learn_then_test([0.2, 0.8, 0.5], [0, 1]), r"one label per score \(3\); got shape \(2,\)"),
        (lambda: conformal_risk_control([0.2, 1.2], [0, 1]), r"probabilities in \[0, 1\]; got range"),
        (lambda: learn_then_test([0.2, 0.8], [0, 1], bound="bernstein"), "bound must be one of"),
        (lambda: balance_threshold([0.2, 0.8], [0, 1], balance=1.5), r"balance must be a number in \[0, 1\]"),
        (lambda: choose_thresholds([0.2, 0.8], [0, 1], method="conformal"), "method must be one of"),
        (lambda: choose_thresholds([0.2, 0.8], [0, 1], answer_level=0.7, hedge_level=0.9), "must not exceed"),
        (lambda: choose_thresholds([0.2, 0.8], [0, 1], hedge_level=1.0), "target_level must be a number"),
        (lambda: learn_then_test([0.2, 0.8], [0, 3]), "must be binary"),
        (lambda: learn_then_test([], []), "non-empty"),
    ],
)
def test_invalid_inputs_are_refused_with_clear_messages(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
