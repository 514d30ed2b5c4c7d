"""Risk-controlled thresholds: Learn-then-Test and conformal risk control.

Both choose one boundary ``t`` (rows with ``p >= t`` are "answered") on a labelled split that neither
the fusion nor the calibrator was fitted on:

- :func:`learn_then_test` (Angelopoulos et al., Learn then Test): with probability at least
  ``confidence_level`` over the calibration draw, the error rate among answered requests is at most
  ``1 - target_level``. Binomial or Hoeffding-Bentkus p-values, fixed-sequence testing.
- :func:`conformal_risk_control` (Angelopoulos et al., Conformal Risk Control): in expectation,
  ``P(answered and wrong) <= 1 - target_level``.

The fixed sequence of Learn-then-Test runs from strict to permissive and starts at the strictest candidate
that answers at least ``min_answered`` rows; stricter ones answer too few rows for a test to pass, and one
chance error there would end the whole sequence (Angelopoulos and Bates' selective-classification example
keeps candidates with at least 30 rows for the same reason). The start depends on the probabilities only,
never on the labels, so the guarantee holds. Even so, one unlucky error early in the sequence ends it: on
2000 calibrated rows with ``p ~ U(0, 1)`` and the defaults, 7.5% of 4000 draws came out infeasible (2.4%
with the binomial bound).

Why not MAPIE's ``mapie.risk_control`` (read at 1.6.0, compared on its source)? Its
``BinaryClassificationController(risk=precision, fwer_method="fixed_sequence")`` is Learn-then-Test for
one boundary (positive = answered, label = correct; a second controller would give the other), and
passing it only the candidates that answer at least ``min_answered`` rows reproduces our sequence. It
still cannot replace this module:

- bounds: the controller always calls its Hoeffding-Bentkus p-value with ``binary=True`` (no Bentkus
  factor ``e``), so the default ``"hoeffding_bentkus"`` bound here, the paper's bound for any loss in
  [0, 1] and the one the shipped artifacts were fitted with, is not available;
- the binomial bound: it recounts errors as ``ceil(n * (1 - precision))``, one too many whenever the
  float product lands just above the integer (15,700 of the 80,199 pairs (n, errors) with n < 400; 32
  errors in 408 rows give p = 0.112 instead of 0.082). On 300 draws of 600 or 2000 rows (target 0.9,
  confidence 0.9, the same candidates), of the 184 where the binomial bound here certifies a threshold,
  MAPIE answered fewer rows in 141 and certified none in 21; with exact counts it answered the same rows
  in all 184, picking another point between the same two probabilities on ties;
- conformal risk control exists there only inside the multi-label controller (recall), not for the
  joint "answered and wrong" loss of one probability.

So adopting it would change the shipped thresholds and lose the default bound, to save about twenty lines
of p-values whose guarantee ``tests/test_thresholds.py`` checks on fresh draws.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy
from scipy.stats import binom

from calibration._candidates import (
    FloatArray,
    ThresholdResult,
    candidates,
    check_data,
    feasible,
    infeasible,
    risk_levels,
)
from calibration._validation import check_int

__all__ = ["Bound", "conformal_risk_control", "learn_then_test"]

Bound = Literal["binomial", "hoeffding_bentkus"]
BOUNDS: tuple[Bound, ...] = ("binomial", "hoeffding_bentkus")


def learn_then_test(
    probs: ArrayLike,
    y_correct: ArrayLike,
    *,
    target_level: float = 0.9,
    confidence_level: float = 0.9,
    grid: ArrayLike | None = None,
    bound: Bound = "hoeffding_bentkus",
    min_answered: int | None = None,
) -> ThresholdResult:
    """The most permissive threshold whose error rate among answered is certified by Learn-then-Test.

    Each candidate ``t`` tests "error rate among rows with ``p >= t`` exceeds alpha", in a fixed sequence
    from strict to permissive (no multiplicity correction: the order is fixed before the labels are seen;
    where it starts is in the module docstring). The last rejection before the first non-rejection is the
    answer: with probability at least ``confidence_level``, the population error rate among requests with
    ``p >= threshold`` is at most ``1 - target_level``.

    Parameters
    ----------
    probs : array-like of shape (n_samples,)
        Calibrated probabilities in [0, 1] of a held-out labelled split.
    y_correct : array-like of shape (n_samples,)
        1 where the answer was correct.
    target_level : float, default=0.9
        Wanted accuracy among answered, ``1 - alpha``, in (0, 1).
    confidence_level : float, default=0.9
        Probability of the guarantee, ``1 - delta``, in (0, 1).
    grid : array-like, optional
        Candidate thresholds; default: every observed probability plus 1001 evenly spaced points in [0, 1].
    bound : {"hoeffding_bentkus", "binomial"}
        ``"binomial"``: the exact binomial tail ``P(Binom(n, alpha) <= errors)``, valid for this 0/1 loss
        and the least conservative. ``"hoeffding_bentkus"``: the minimum of the Hoeffding and Bentkus
        p-values (Bates et al.; Bentkus with its factor ``e``), the Learn-then-Test paper's bound for any
        loss in [0, 1]; never below the binomial p-value, so its threshold is never lower.
    min_answered : int, optional
        Rows a candidate must answer to be tested. Default: the smallest count at which the
        Hoeffding-Bentkus test would reject an error rate of alpha / 2 (too few rows: zero errors), for
        either ``bound``, so that both test the same sequence.

    Returns
    -------
    ThresholdResult
        ``feasible=False`` and ``threshold=None`` when no candidate is rejected.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> result = learn_then_test(p, rng.uniform(size=2000) < p, target_level=0.9)
    >>> result.feasible and 0.8 < result.threshold < 0.95
    True
    """
    alpha, delta = risk_levels(target_level, confidence_level)
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {list(BOUNDS)}; got {bound!r}")
    check_int(min_answered, "min_answered", allow_none=True)
    p, err = check_data(probs, y_correct)
    start = _start_count(p.size, alpha, delta) if min_answered is None else int(min_answered)
    return _fixed_sequence(p, err, candidates(p, err, grid), alpha=alpha, delta=delta, bound=bound, start=start)


def conformal_risk_control(
    probs: ArrayLike, y_correct: ArrayLike, *, target_level: float = 0.9, grid: ArrayLike | None = None
) -> ThresholdResult:
    """The most permissive threshold for which conformal risk control bounds ``P(answered and wrong)``.

    The loss of a calibration row at threshold ``t`` is ``1`` when it is answered (``p >= t``) and wrong,
    else 0: bounded by ``B = 1`` and non-increasing in ``t``, as conformal risk control requires. The
    chosen threshold is the smallest candidate with ``n / (n + 1) * Rhat(t) + B / (n + 1) <= alpha``, and
    for a new exchangeable request ``E[loss] = P(answered and wrong) <= alpha = 1 - target_level``.

    This is the **joint** rate, not the error rate among answered requests (which equals the joint rate
    divided by the answer rate, so it can exceed alpha); the conditional loss is not monotone in ``t``,
    so conformal risk control does not apply to it. Use :func:`learn_then_test` to bound the error rate
    among answered. The result's ``empirical_risk`` still reports that conditional rate on these rows.

    Parameters
    ----------
    probs, y_correct : array-like of shape (n_samples,)
    target_level : float, default=0.9
        ``1 - alpha``, in (0, 1).
    grid : array-like, optional
        Candidate thresholds; default as in :func:`learn_then_test`.

    Returns
    -------
    ThresholdResult
        Infeasible only when even a threshold that answers nothing fails, i.e. ``n + 1 < 1 / alpha``.
    """
    alpha, _ = risk_levels(target_level)
    p, err = check_data(probs, y_correct)
    thresholds, _, n_err = candidates(p, err, grid)
    corrected = (n_err + 1.0) / (p.size + 1.0)
    # n_err only grows as t falls, so the passing candidates are a prefix of the strict-to-permissive grid.
    n_pass = int(np.count_nonzero(corrected <= alpha))
    if n_pass == 0:
        reason = (
            f"the corrected risk at the strictest threshold {thresholds[0]:.4g} is {corrected[0]:.3g} > alpha "
            f"{alpha:.3g}; conformal risk control needs n + 1 >= 1 / alpha rows at the least (got n = {p.size})."
        )
        return infeasible(err, method="crc", alpha=alpha, delta=None, reason=reason, among_answered=False)
    last = n_pass - 1
    message = (
        f"Conformal risk control: answer when p >= {thresholds[last]:.4g}; expected rate of answered-and-wrong "
        f"requests <= {alpha:.3g} (corrected empirical {corrected[last]:.3g})."
    )
    return feasible(thresholds[last], p, err, method="crc", alpha=alpha, delta=None, message=message)


def _p_values(n_err: NDArray, n_sel: NDArray, alpha: float, bound: str) -> FloatArray:
    """p-values of H0: risk > alpha, from ``n_err`` errors among ``n_sel`` answered rows (``n_sel > 0``)."""
    binomial = binom.cdf(n_err, n_sel, alpha)
    if bound == "binomial":
        return binomial
    # Hoeffding-Bentkus (Bates et al.): min of the Hoeffding tail and e times the binomial tail.
    rate = np.minimum(n_err / n_sel, alpha)
    kl = xlogy(rate, rate / alpha) + xlogy(1.0 - rate, (1.0 - rate) / (1.0 - alpha))
    return np.minimum(np.minimum(np.exp(-n_sel * kl), math.e * binomial), 1.0)


def _start_count(n_rows: int, alpha: float, delta: float) -> int | None:
    """Rows a candidate must answer before the test sequence starts; depends on no label.

    The count at which an error rate of alpha / 2 would already be rejected; failing that (too few rows),
    the count at which zero errors would be; None when not even that is reachable. Always computed with
    the Hoeffding-Bentkus p-value, so both bounds test the same sequence and the binomial one, whose
    p-values are never larger, rejects at least as far.
    """
    counts = np.arange(1, n_rows + 1)
    for rate in (alpha / 2, 0.0):
        passing = np.flatnonzero(_p_values(np.floor(counts * rate), counts, alpha, "hoeffding_bentkus") <= delta)
        if passing.size:
            return int(counts[passing[0]])
    return None


def _fixed_sequence(
    p: FloatArray,
    err: NDArray,
    grid: tuple[FloatArray, NDArray, NDArray],
    *,
    alpha: float,
    delta: float,
    bound: str,
    start: int | None,
) -> ThresholdResult:
    """Test the candidates of ``grid`` (thresholds, answered, errors) that answer at least ``start`` rows, in
    order; the result is the last one rejected."""
    tested = grid[1] >= (start or math.inf)
    thresholds, n_sel, n_err = (column[tested] for column in grid)
    method = f"ltt:{bound}"
    if thresholds.size == 0:
        needed = f"at least {start} answered rows" if start else f"more than the {p.size} rows given"
        reason = (
            f"No threshold answers enough rows for the {bound} test at confidence {1 - delta:.3g} to pass "
            f"({needed}); more calibration data is needed."
        )
        return infeasible(err, method=method, alpha=alpha, delta=delta, reason=reason)
    p_values = _p_values(n_err, n_sel, alpha, bound)
    not_rejected = np.flatnonzero(p_values > delta)
    n_rejected = int(not_rejected[0]) if not_rejected.size else thresholds.size
    if n_rejected == 0:
        reason = (
            f"The strictest testable threshold {thresholds[0]:.4g} ({n_err[0]} errors among {n_sel[0]} answered) "
            f"was not rejected: p-value {p_values[0]:.3g} > delta {delta:.3g}."
        )
        return infeasible(err, method=method, alpha=alpha, delta=delta, reason=reason)
    last = n_rejected - 1
    message = (
        f"Learn-then-Test ({bound}): answer when p >= {thresholds[last]:.4g}; with probability >= {1 - delta:.3g} "
        f"the error rate among answered is <= {alpha:.3g} ({n_err[last]} errors among {n_sel[last]} of {p.size} "
        "rows here)."
    )
    return feasible(thresholds[last], p, err, method=method, alpha=alpha, delta=delta, message=message)
