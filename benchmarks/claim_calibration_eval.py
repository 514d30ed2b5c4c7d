"""Held-out evaluation of a claim-level stage: ranking, calibration, and the kept-claims guarantee.

Every interval is a 95% percentile bootstrap over *answers* (all claims of a resampled answer together,
``claim_calibration_fit.group_interval``), since claims of one answer share its evidence and are not
independent. Nothing here chooses anything: the stage and its thresholds come fitted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.claim_calibration_fit import group_interval
from benchmarks.claim_grounding import RESAMPLES, pairwise_accuracy, pooled_auroc
from benchmarks.claim_rows import ClaimRows
from calibration.artifact import FittedStage
from calibration.bootstrap import percentile_interval
from calibration.metrics import auprc_error, auroc, brier_score, ece, reliability_curve
from calibration.thresholds import choose_thresholds


def fmt(value: float, interval: tuple[float, float] | None = None, digits: int = 3) -> str:
    """``0.812 [0.790, 0.833]``; ``-`` for an undefined value."""
    if value is None or not np.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    return text if interval is None else f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _unsupported_among(p: np.ndarray, y: np.ndarray, threshold: float) -> float:
    kept = p >= threshold
    return float(1 - y[kept].mean()) if kept.any() else float("nan")


def _balanced_accuracy(y: np.ndarray, kept: np.ndarray) -> float:
    """Mean of the kept share of supported claims and the dropped share of unsupported ones."""
    if y.all() or not y.any():
        return float("nan")
    return float((kept[y].mean() + (~kept[~y]).mean()) / 2)


def with_ci(statistic: Callable[[np.ndarray], float], groups: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The statistic on all rows and its interval over answers."""
    return statistic(np.arange(len(groups))), group_interval(statistic, groups)


def claim_metrics(stage: FittedStage, rows: ClaimRows) -> dict[str, Any]:
    """Ranking, calibration and the guarantee check of ``stage`` on ``rows`` (the untouched test part)."""
    p = stage.probabilities(rows.value[:, None])
    y = rows.supported
    g = rows.group
    hedge, abstain = stage.thresholds.hedge, stage.thresholds.abstain
    out: dict[str, Any] = {
        "answers": len(np.unique(g)),
        "claims": len(y),
        "unsupported_share": float(1 - y.mean()),
    }
    for name, statistic in {
        "auroc": lambda r: auroc(y[r], p[r]),
        "auprc_unsupported": lambda r: auprc_error(y[r], p[r]),
        "ece": lambda r: ece(y[r], p[r], n_bins=10),
        "brier": lambda r: brier_score(y[r], p[r]),
        "kept_share": lambda r: float(np.mean(p[r] >= hedge)),
        "balanced_accuracy_kept": lambda r: _balanced_accuracy(y[r], p[r] >= hedge),
        "unsupported_among_kept": lambda r: _unsupported_among(p[r], y[r], hedge),
        "delivered_share": lambda r: float(np.mean(p[r] >= abstain)),
        "unsupported_among_delivered": lambda r: _unsupported_among(p[r], y[r], abstain),
    }.items():
        value, interval = with_ci(statistic, g)
        out[name] = value
        out[f"{name}_ci"] = interval
    if rows.length is not None:  # baseline: the shorter claim is the supported one
        out["length_auroc"], out["length_auroc_ci"] = with_ci(lambda r: auroc(y[r], -rows.length[r]), g)
    curve = reliability_curve(y, p, n_bins=10)
    out["reliability"] = [
        {"mean_p": float(c), "supported": float(a), "claims": int(n)}
        for c, a, n in zip(curve.mean_confidence, curve.accuracy, curve.count, strict=True)
    ]
    return out


def guarantee_draws(
    stage: FittedStage, rows: ClaimRows, *, alpha: float, hedge_alpha: float, delta: float, draws: int, seed: int
) -> dict[str, float]:
    """Learn-then-Test re-run on random halves (by answer) of ``rows``, judged on the other half.

    How often the realised unsupported share among kept claims exceeds alpha over calibration draws; the
    guarantee says at most ``delta`` (up to the noise of a finite evaluation half). The fitted fusion and
    calibrator are kept; only the thresholds are re-chosen per draw.
    """
    p, y = stage.probabilities(rows.value[:, None]), rows.supported
    answers = np.unique(rows.group)
    rng = np.random.default_rng(seed)
    exceed, infeasible, kept, realised = 0, 0, [], []
    for _ in range(draws):
        calibration = np.isin(rows.group, rng.choice(answers, size=len(answers) // 2, replace=False))
        thresholds = choose_thresholds(
            p[calibration],
            y[calibration],
            answer_level=1 - alpha,
            hedge_level=1 - hedge_alpha,
            confidence_level=1 - delta,
        )
        if not thresholds.answer_result.feasible:
            infeasible += 1  # keeps nothing: no unsupported claim is kept, the bound holds trivially
            continue
        held_p, held_y = p[~calibration], y[~calibration]
        share = _unsupported_among(held_p, held_y, thresholds.hedge)
        kept.append(float(np.mean(held_p >= thresholds.hedge)))
        if np.isfinite(share):
            realised.append(share)
            exceed += share > alpha
    return {
        "draws": draws,
        "exceeded": exceed / draws,
        "infeasible": infeasible / draws,
        "mean_kept": float(np.mean(kept)) if kept else float("nan"),
        "mean_unsupported_among_kept": float(np.mean(realised)) if realised else float("nan"),
        "max_unsupported_among_kept": float(np.max(realised)) if realised else float("nan"),
    }


def response_scores(
    stage: FittedStage, pairs: Sequence[tuple[Sequence[float], Sequence[float]]]
) -> dict[str, np.ndarray]:
    """Per pair (faithful, hallucinated): the calibrated claim probabilities reduced by min and mean, the raw
    mean support (the uncalibrated signal's own confidence), and the share of claims kept."""
    out = {name: np.full((len(pairs), 2), np.nan) for name in ("min p", "mean p", "raw mean support", "kept share")}
    for i, pair in enumerate(pairs):
        for j, values in enumerate(pair):
            if not values:
                continue  # no claim: the signal gives no confidence (NaN ranks last, as in the Grounding section)
            v = np.asarray(values, dtype=float)
            p = stage.probabilities(v[:, None])
            out["min p"][i, j] = p.min()
            out["mean p"][i, j] = p.mean()
            out["raw mean support"][i, j] = v.mean()
            out["kept share"][i, j] = float(np.mean(p >= stage.thresholds.hedge))
    return out


def pair_metric(metric: Callable[[np.ndarray], float], scores: np.ndarray) -> tuple[float, tuple[float, float]]:
    """A pairwise metric and its interval over pairs (as in the Grounding section)."""
    interval = percentile_interval(lambda r: metric(scores[r]), len(scores), n_resamples=RESAMPLES, seed=0)
    return metric(scores), interval


PAIR_METRICS = {"pairwise accuracy": pairwise_accuracy, "AUROC": pooled_auroc}


def segment_metrics(stage: FittedStage, rows: ClaimRows) -> dict[str, Any]:
    """Claim-level AUROC / AUC-PR and response-level AUROC (all segments true vs not, by min probability)."""
    p, y, g = stage.probabilities(rows.value[:, None]), rows.supported, rows.group
    out: dict[str, Any] = {"answers": len(np.unique(g)), "claims": len(y), "unsupported_share": float(1 - y.mean())}
    out["auroc"], out["auroc_ci"] = with_ci(lambda r: auroc(y[r], p[r]), g)
    out["auprc_unsupported"], out["auprc_unsupported_ci"] = with_ci(lambda r: auprc_error(y[r], p[r]), g)
    out["unsupported_among_kept"] = _unsupported_among(p, y, stage.thresholds.hedge)
    out["kept_share"] = float(np.mean(p >= stage.thresholds.hedge))
    answers = np.unique(g)
    all_true = np.array([y[g == a].all() for a in answers])
    lowest = np.array([p[g == a].min() for a in answers])
    out["response_auroc"] = float(auroc(all_true, lowest)) if 0 < all_true.sum() < len(all_true) else float("nan")
    out["responses_all_true"] = float(all_true.mean())
    return out


def raw_metrics(rows: ClaimRows) -> dict[str, Any] | None:
    """AUROC and AUC-PR of the uncalibrated value itself (for a route that ships no stage)."""
    rows = rows.subset(~np.isnan(rows.value))
    y, v, g = rows.supported, rows.value, rows.group
    if not 0 < y.sum() < len(y):
        return None
    out: dict[str, Any] = {"answers": len(np.unique(g)), "claims": len(y), "unsupported_share": float(1 - y.mean())}
    out["auroc"], out["auroc_ci"] = with_ci(lambda r: auroc(y[r], v[r]), g)
    out["auprc_unsupported"], out["auprc_unsupported_ci"] = with_ci(lambda r: auprc_error(y[r], v[r]), g)
    return out
