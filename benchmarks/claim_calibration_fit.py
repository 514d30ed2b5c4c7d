"""Fit a claim-level gate stage: rows are claims, the label is "the claim is supported", the split is over answers.

The machinery is the answer-level one (``calibration.fitting.fit_stage``: fusion chosen by cross-validation,
here trivially one signal; calibrator chosen by cross-validated log-loss among the order-preserving kinds;
thresholds by Learn-then-Test on a split neither was fitted on). What is claim-specific:

- the split is drawn over *answers* (``split_rows`` on the answer ids, every claim of an answer in its answer's
  part), so claims of one answer, which share its evidence, never sit on both sides;
- the target alpha (allowed unsupported share among kept claims) is the smallest of :data:`ALPHAS` that the
  learning rows (fit + calibrate) support, i.e. for which Learn-then-Test on a threshold-split-sized
  subsample of them keeps at least :data:`MIN_KEPT` of the claims. It is chosen before the threshold split is
  read, so the threshold split's Learn-then-Test certificate keeps its meaning;
- whether the signal is informative at all is decided on the learning rows too: the 95% bootstrap interval
  (over answers) of the out-of-fold AUROC must lie above 0.5, and some alpha of :data:`ALPHAS` must be
  supported, or no stage is returned and no artifact is written. Nor is one written when the threshold
  part certifies no keep threshold at that alpha: the stage would drop every claim.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.claim_rows import ClaimRows
from calibration.artifact import Artifact, FittedStage
from calibration.bootstrap import percentile_interval
from calibration.fitting import Target, cross_fitted_scores, fit_stage, split_rows
from calibration.metrics import auroc
from calibration.thresholds import choose_thresholds, learn_then_test
from gate.suite import SignalSpec

MODEL = "local/gemma-3-270m"
ALPHAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
"""Candidate targets: allowed unsupported share among kept claims, strict to lax."""
MIN_KEPT = 0.1
HEDGE_MARGIN = 0.1
"""The hedge tier (kept with a caveat) allows ``alpha + HEDGE_MARGIN`` unsupported among kept or hedged claims."""
RESAMPLES = 2000


def answer_split(groups: np.ndarray, seed: int) -> np.ndarray:
    """The split name of each claim: its answer's, drawn by ``split_rows`` over the distinct answer ids."""
    unique = np.unique(groups)
    names = dict(zip(unique.tolist(), split_rows(unique.tolist(), seed=seed), strict=True))
    return np.array([names[g] for g in groups.tolist()])


def group_interval(
    statistic: Callable[[np.ndarray], float], groups: np.ndarray, *, seed: int = 0, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """95% percentile bootstrap of ``statistic(row indices)``, resampling whole answers (their claims together)."""
    _, inverse = np.unique(groups, return_inverse=True)
    rows = np.arange(len(groups))
    n_groups = int(inverse.max()) + 1

    def resampled(picked: np.ndarray) -> float:
        # each row repeated as often as its answer was drawn (row order is irrelevant to these statistics)
        return statistic(np.repeat(rows, np.bincount(picked, minlength=n_groups)[inverse]))

    return percentile_interval(resampled, n_groups, n_resamples=resamples, seed=seed)


@dataclass(frozen=True)
class RouteFit:
    """What fitting one route produced: the stage (None when not informative) and how each choice was made."""

    stage: FittedStage | None
    split: np.ndarray
    alpha: float | None
    hedge_alpha: float | None
    delta: float
    info: dict[str, Any]


def informative(rows: ClaimRows, split: np.ndarray, signal: str, *, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Out-of-fold AUROC of the one-signal fusion on the learning rows, with its interval over answers."""
    learn = np.isin(split, ("fit", "calibrate")) & ~np.isnan(rows.value)
    x, y = rows.value[learn, None], rows.supported[learn]
    scores = cross_fitted_scores("logistic", x, y, signals=[signal])
    low, high = group_interval(lambda r: auroc(y[r], scores[r]), rows.group[learn], resamples=resamples)
    value = float(auroc(y, scores))
    return {"oof_auroc": round(value, 4), "oof_auroc_ci": [round(low, 4), round(high, 4)], "informative": low > 0.5}


def choose_alpha(p: np.ndarray, y: np.ndarray, *, n_threshold: int, delta: float, seed: int) -> float | None:
    """The smallest alpha in :data:`ALPHAS` that a threshold-split-sized subsample of the learning rows supports."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(p), size=min(n_threshold, len(p)), replace=False)
    for alpha in ALPHAS:
        result = learn_then_test(p[picked], y[picked], target_level=1 - alpha, confidence_level=1 - delta)
        if result.feasible and result.coverage >= MIN_KEPT:
            return alpha
    return None


def fit_route(rows: ClaimRows, signal: str, *, seed: int, delta: float, resamples: int = RESAMPLES) -> RouteFit:
    """Fit the stage of one route on its fit/calibrate parts and certify its thresholds on the threshold part."""
    rows = rows.subset(~np.isnan(rows.value))  # no value (e.g. no sample had text): the gate has nothing to fuse
    split = answer_split(rows.group, seed)
    info: dict[str, Any] = informative(rows, split, signal, resamples=resamples)
    if not info["informative"]:
        info["not_shipped"] = "the out-of-fold AUROC interval on the learning rows includes 0.5"
        return RouteFit(None, split, None, None, delta, info)
    x = rows.value[:, None]
    # fit_stage also picks thresholds; they are replaced below once alpha is chosen, so its target is a lax one
    provisional = Target(answer_level=0.5, hedge_level=0.5, confidence_level=1 - delta)
    stage, fitted = fit_stage(x, rows.supported, split, signals=[signal], target=provisional)
    learn = np.isin(split, ("fit", "calibrate"))
    held = split == "threshold"
    alpha = choose_alpha(
        stage.probabilities(x[learn]), rows.supported[learn], n_threshold=int(held.sum()), delta=delta, seed=seed
    )
    info |= {"fit": fitted, "alpha_supported_by_learning_rows": alpha}
    if alpha is None:  # a stage that can keep nothing with a guarantee would only look like a gate
        info["not_shipped"] = f"no alpha up to {ALPHAS[-1]} keeps {MIN_KEPT:.0%} of the learning rows"
        return RouteFit(None, split, None, None, delta, info)
    hedge_alpha = round(alpha + HEDGE_MARGIN, 2)
    thresholds = choose_thresholds(
        stage.probabilities(x[held]),
        rows.supported[held],
        answer_level=1 - alpha,
        hedge_level=1 - hedge_alpha,
        confidence_level=1 - delta,
        method="ltt",
    )
    if not thresholds.answer_result.feasible:  # it would keep no claim: a gate that drops everything
        info["not_shipped"] = (
            f"Learn-then-Test on the threshold part certified no keep threshold at alpha {alpha} "
            f"({thresholds.answer_result.message})"
        )
        return RouteFit(None, split, alpha, hedge_alpha, delta, info)
    return RouteFit(dataclasses.replace(stage, thresholds=thresholds), split, alpha, hedge_alpha, delta, info)


def build_artifact(
    fit: RouteFit,
    rows: ClaimRows,
    spec: SignalSpec,
    *,
    seed: int,
    datasets: Mapping[str, int],
    metrics: Mapping[str, Any],
    notes: Sequence[str],
) -> Artifact:
    """The standard calibration artifact for a claim route; its one stage is ``full``, its rows are claims."""
    assert fit.stage is not None and fit.alpha is not None and fit.hedge_alpha is not None
    rows = rows.subset(~np.isnan(rows.value))
    counts = {name: int((fit.split == name).sum()) for name in ("fit", "calibrate", "threshold", "test")}
    groups = {name: len(np.unique(rows.group[fit.split == name])) for name in counts}
    target = Target(
        answer_level=round(1 - fit.alpha, 4),
        hedge_level=round(1 - fit.hedge_alpha, 4),
        confidence_level=round(1 - fit.delta, 4),
        method="ltt",
    )
    stage_notes = [
        f"full stage: {r.message}" for r in (fit.stage.thresholds.answer_result, fit.stage.thresholds.hedge_result)
    ]
    return Artifact(
        model=MODEL,
        suite=[spec.to_dict()],
        stages={"full": fit.stage},
        precheck_threshold=None,
        target={
            **target.to_dict(),
            "unit": "claim",
            "alpha": fit.alpha,
            "hedge_alpha": fit.hedge_alpha,
            "delta": fit.delta,
            "bound": "hoeffding_bentkus",
        },
        data={
            "unit": "claim",
            "datasets": dict(datasets),
            "split_seed": seed,
            "split_over": "answers (the group of each claim: a HaluEval QA item, a FActScore topic)",
            "splits": counts,
            "groups": groups,
            "accuracy": float(rows.supported.mean()),
            "rows": len(rows),
            "choices": {k: v for k, v in fit.info.items() if k != "fit"},
            "fit": {"full": fit.info["fit"]},
        },
        metrics=dict(metrics),
        notes=[*notes, *stage_notes],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
