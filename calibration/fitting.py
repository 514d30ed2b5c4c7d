"""Fit a gate from labelled signal rows: split, fuse, calibrate, choose thresholds, evaluate held out.

The thresholds are chosen on the ``threshold`` split and ``test`` is only ever scored (a peer fitted weights
and thresholds on the same rows and overfit). Fusion and calibrator share the ``fit`` and ``calibrate``
splits by cross-fitting: the calibrator learns from out-of-fold fusion scores (each row scored by a fusion
fitted without it), then the fusion is refitted on all those rows, as scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` does. With few correct answers (8% on the embedded model) this
gives both parts 60% of the rows instead of 40% and 20%: out-of-fold AUROC of the fused gate rose from
0.825 to 0.844 on the shipped cache (``benchmarks/results/quality.md``). The split of a row depends on its
id and the seed alone, so adding rows to a cache never moves an existing row to another split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from calibration.artifact import FittedStage
from calibration.calibrators import ORDER_PRESERVING, best_of, compare_calibrators, make_calibrator
from calibration.fusion import make_fusion
from calibration.fusion_selection import Candidate, choose_fusion
from calibration.metrics import auroc
from calibration.thresholds import DecisionThresholds, ThresholdResult, choose_thresholds, decisions

SPLITS = ("fit", "calibrate", "threshold", "test")
CROSS_FIT_FOLDS = 5
DEFAULT_FRACTIONS = (0.4, 0.2, 0.2, 0.2)


@dataclass(frozen=True)
class Target:
    """What the thresholds must satisfy: accuracy among answered (and among answered or hedged) rows."""

    answer_level: float = 0.8
    hedge_level: float = 0.6
    confidence_level: float = 0.9
    method: str = "ltt"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the artifact."""
        return {"answer_level": self.answer_level, "hedge_level": self.hedge_level,
                "confidence_level": self.confidence_level, "method": self.method}


def split_rows(ids: Sequence[str], *, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """The split name of each row, from a hash of (seed, id): stable as rows are added."""
    if len(fractions) != len(SPLITS) or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"fractions must be {len(SPLITS)} positive numbers summing to 1, got {list(fractions)}")
    edges = np.cumsum(fractions)
    names = []
    for row_id in ids:
        digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        names.append(SPLITS[int(np.searchsorted(edges, u, side="right"))])
    return np.array(names)


def fit_stage(
    values: np.ndarray,
    y_correct: np.ndarray,
    split: np.ndarray,
    *,
    signals: Sequence[str],
    fusion: str = "auto",
    calibrator: str = "auto",
    target: Target = Target(),
    costs: Mapping[str, float] | None = None,
) -> tuple[FittedStage, dict[str, Any]]:
    """Fit one stage on ``signals`` (columns of ``values``); returns it and what was chosen and why.

    ``fusion="auto"`` chooses the fusion and the signals it uses by cross-validation on the learning rows
    (:func:`calibration.fusion_selection.choose_fusion`: the cheapest candidate, by ``costs`` in LLM calls,
    within a tolerance of the best AUROC, single signals included), so the stage never ranks worse out of
    fold than its best member; the stage then reads only the chosen signals. A named kind uses them all.

    ``calibrator="auto"`` picks, among the order-preserving kinds (Platt, temperature: a step calibrator
    would merge distinct scores and lose ranking, see ``calibration.calibrators.ORDER_PRESERVING``), the one
    with the lowest cross-validated log-loss; every kind's loss is still reported in the returned info.
    """
    x = np.asarray(values, dtype=float)
    y = np.asarray(y_correct, dtype=bool)
    learn = (split == "fit") | (split == "calibrate")
    info: dict[str, Any] = {}
    if fusion == "auto":
        selection = choose_fusion(x[learn], y[learn], signals, costs=costs or {})
        chosen = selection.chosen
        info["fusion_candidates"] = [
            {"candidate": row["candidate"].label, "cv_auroc": round(row["cv_auroc"], 4), "calls": row["calls"],
             "monotone": row["monotone"], "chosen": row["candidate"] == chosen}
            for row in selection.table
        ]
    else:
        chosen = Candidate(fusion, tuple(signals), {})
    x = x[:, chosen.columns(signals)]
    cal_scores = cross_fitted_scores(chosen.fusion, x[learn], y[learn], signals=chosen.signals, params=chosen.params)
    comparison = compare_calibrators(cal_scores, y[learn])
    # the comparison above, not a second CV
    kind = best_of(comparison, among=ORDER_PRESERVING) if calibrator == "auto" else calibrator
    fitted_calibrator = make_calibrator(kind).fit(cal_scores, y[learn])
    fitted = make_fusion(chosen.fusion, **chosen.params).fit(x[learn], y[learn], feature_names=list(chosen.signals))
    held = split == "threshold"
    thresholds = choose_thresholds(
        fitted_calibrator.predict(fitted.predict_score(x[held])),
        y[held],
        answer_level=target.answer_level,
        hedge_level=target.hedge_level,
        confidence_level=target.confidence_level,
        method=target.method,  # type: ignore[arg-type]
    )
    stage = FittedStage(tuple(chosen.signals), fitted, fitted_calibrator, thresholds)
    info |= {"fusion": chosen.label, "calibrator": kind, "calibrator_cv_log_loss": comparison}
    return stage, info


def cross_fitted_scores(
    fusion: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    signals: Sequence[str],
    folds: int = CROSS_FIT_FOLDS,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Out-of-fold fusion scores: each row scored by a fusion fitted on the other folds (stratified by label)."""
    n_splits = max(2, min(folds, int(y.sum()), int((~y).sum())))
    scores = np.empty(len(y))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, held in splitter.split(x, y):
        fitted = make_fusion(fusion, **(params or {})).fit(x[train], y[train], feature_names=list(signals))
        scores[held] = fitted.predict_score(x[held])
    return scores


def precheck_threshold(familiarity: np.ndarray, y_correct: np.ndarray, *, max_lost: float = 0.05) -> float | None:
    """The highest familiarity below which abstaining loses at most ``max_lost`` of the correct answers
    and the rows withheld are right at most half as often as average; ``None`` when no cut qualifies.

    The precheck saves the cost of generating, but every correct answer it withholds is a real loss, so
    it only abstains where the data show the model is clearly out of its depth.
    """
    f = np.asarray(familiarity, dtype=float)
    y = np.asarray(y_correct, dtype=bool)
    seen = ~np.isnan(f)
    f, y = f[seen], y[seen]
    if y.sum() == 0 or len(f) == 0:
        return None
    best = None
    for cut in np.unique(f)[1:]:  # abstain on f < cut
        below = f < cut
        lost = y[below].sum() / y.sum()
        if lost <= max_lost and y[below].mean() <= y.mean() / 2:
            best = float(cut)
    return best


def early_exit_thresholds(
    free: FittedStage,
    p_free: np.ndarray,
    p_full: np.ndarray,
    y_correct: np.ndarray,
    *,
    full_decisions: np.ndarray,
    max_lost: float = 0.05,
    keep_auroc: float = 0.97,
) -> DecisionThresholds:
    """The free stage's thresholds as a cascade's early exits, from rows neither stage was fitted on.

    Above its own answer threshold (Learn-then-Test, unchanged) the free stage answers without the full
    stage: that threshold certifies the error rate among what it answers. Below the returned abstain
    threshold it abstains without the full stage. That cut is the highest at which, on these rows, (1) the
    early abstentions withhold at most ``max_lost`` of the rows the full stage delivers (answers or
    hedges), and (2) the cascade's probability (the free stage's below the cut, the full stage's above)
    keeps ``keep_auroc`` of the full stage's AUROC. In between, the full stage runs: the next signal is paid
    for only where it can change the decision or the ranking. Choosing the cut by the free stage's own hedge
    target instead abstained on nearly every request the full stage would have answered (1 of 180
    answered on held-out questions, issue "earn every call").
    """
    p, q = np.asarray(p_free, dtype=float), np.asarray(p_full, dtype=float)
    y = np.asarray(y_correct, dtype=bool)
    delivered = np.asarray(full_decisions) != "abstain"
    answer_at = free.thresholds.hedge
    full_auroc = _auroc_or_nan(y, q)
    cut = 0.0
    for candidate in np.unique(p):
        if candidate > answer_at:
            break
        below = p < candidate
        if (delivered & below).sum() > max_lost * delivered.sum():
            break
        cascade = _auroc_or_nan(y, np.where(below, p, q))
        if not np.isnan(full_auroc) and cascade < keep_auroc * full_auroc:
            break
        cut = float(candidate)
    lost = int((delivered & (p < cut)).sum())
    kept = _auroc_or_nan(y, np.where(p < cut, p, q)) / full_auroc if full_auroc else float("nan")
    message = (
        f"early exit: the free stage abstains without the full stage when p < {cut:.4g}; on the threshold split "
        f"that withholds {lost} of the {int(delivered.sum())} rows the full stage answers or hedges (at most "
        f"{max_lost:.0%} allowed), keeps {kept:.1%} of its AUROC (at least {keep_auroc:.0%}) and saves the full "
        f"stage on {float((p < cut).mean()):.1%} of requests"
    )
    result = ThresholdResult(
        cut, "early_exit", max_lost, None, True, lost / max(1, int(delivered.sum())), float((p < cut).mean()),
        int(p.size), message,
    )
    return DecisionThresholds(
        abstain=cut, hedge=answer_at, answer_result=free.thresholds.answer_result, hedge_result=result
    )


def _auroc_or_nan(y: np.ndarray, scores: np.ndarray) -> float:
    return float(auroc(y, scores)) if 0 < y.sum() < len(y) else float("nan")


def precheck_pays(
    familiarity: np.ndarray, threshold: float | None, *, precheck_calls: float, saved_calls: float
) -> bool:
    """Whether abstaining below ``threshold`` saves at least the calls the precheck costs on every request.

    ``saved_calls`` is what a request costs after the precheck (the answer and the signals computed on it).
    """
    if threshold is None:
        return False
    f = np.asarray(familiarity, dtype=float)
    abstains = float(np.mean(np.nan_to_num(f, nan=1.0) < threshold))
    return abstains * saved_calls >= precheck_calls


def cascade_outcome(
    free: FittedStage,
    full: FittedStage,
    values_free: np.ndarray,
    values_full: np.ndarray,
    precheck_abstains: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the probability the cascade reports, its decision, and the stage that decided.

    Precheck abstentions report probability 0 (nothing was generated); rows the free stage decides report
    its probability; the rest go to the full stage.
    """
    p_free = free.probabilities(values_free)
    p_full = full.probabilities(values_full)
    decided_free = decisions(p_free, free.thresholds)
    early = decided_free != "hedge"  # past either threshold of the free stage: decided without the full stage
    probability = np.where(early, p_free, p_full)
    decision = np.where(early, decided_free, decisions(p_full, full.thresholds))
    stage = np.where(early, "free", "full")
    probability = np.where(precheck_abstains, 0.0, probability)
    decision = np.where(precheck_abstains, "abstain", decision)
    stage = np.where(precheck_abstains, "precheck", stage)
    return probability, decision, stage


def cascade_mix(decision: np.ndarray, y_correct: np.ndarray) -> dict[str, float]:
    """Answer / hedge / abstain rates of already-made decisions (the cascade's, which mix two stages' thresholds)
    and the error rates among answered and among delivered rows."""
    y = np.asarray(y_correct, dtype=bool)
    answered = decision == "answer"
    delivered = answered | (decision == "hedge")
    return {
        "answer": float(answered.mean()),
        "hedge": float((decision == "hedge").mean()),
        "abstain": float((decision == "abstain").mean()),
        "error_among_answered": float(1 - y[answered].mean()) if answered.any() else float("nan"),
        "error_among_delivered": float(1 - y[delivered].mean()) if delivered.any() else float("nan"),
        "ungated_error": float(1 - y.mean()),
        "correct_answered_share": float((answered & y).sum() / y.sum()) if y.any() else float("nan"),
    }
