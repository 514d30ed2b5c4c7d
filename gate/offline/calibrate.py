"""From cached, graded signals to a calibration artifact and its report (the offline half of the gate)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.artifact import Artifact, FittedStage
from calibration.fitting import (
    Target,
    cascade_mix,
    cascade_outcome,
    early_exit_thresholds,
    fit_stage,
    precheck_pays,
    precheck_threshold,
    split_rows,
)
from calibration.fusion import LogisticFusion, coefficients_table
from calibration.report import ReportData, report_metrics
from calibration.thresholds import choose_thresholds, decisions
from estimators.base import Cost, total_cost
from gate.offline.signal_cache import CachedRow
from gate.suite import SignalSpec

MIN_ROWS_PER_CLASS = 2  # per split: the least that lets each part be fitted at all; far more make it useful
FITTED_ON = "fitted on (the artifact's data)"
"""Summary line of a report: the datasets the artifact was fitted on, their counts and its split."""
EVALUATED_ON = "evaluated on (the rows in this report)"
"""Summary line of a report: which rows it evaluates (held-out split or new data), per dataset."""


@dataclass(frozen=True)
class FitOptions:
    """How ``gate calibrate`` fits: the split seed, the models, and the target of the thresholds."""

    seed: int = 0
    fusion: str = "auto"
    calibrator: str = "auto"
    target: Target = field(default_factory=Target)
    n_resamples: int = 1000


def matrix(rows: Sequence[CachedRow], names: Sequence[str]) -> np.ndarray:
    """Signal confidences as an (n_rows, n_signals) array, NaN where a signal is missing."""
    return np.array([[row.confidence(name) for name in names] for row in rows], dtype=float).reshape(len(rows), -1)


def fit_artifact(
    rows: Sequence[CachedRow], *, model: str, suite: Sequence[SignalSpec], options: FitOptions = FitOptions()
) -> Artifact:
    """Fit the free and full stages, the precheck threshold and the thresholds; score the test split."""
    split = split_rows([row.id for row in rows], seed=options.seed)
    y = np.array([row.correct for row in rows])
    _check_enough(y, split)
    keys = [spec.key for spec in suite]
    free_keys = [spec.key for spec in suite if spec.stage != "full"]
    costs = {key: cost["calls"] for key, cost in signal_costs(rows, keys).items()}
    kwargs = {"fusion": options.fusion, "calibrator": options.calibrator, "target": options.target, "costs": costs}
    full, full_info = fit_stage(matrix(rows, keys), y, split, signals=keys, **kwargs)
    stages: dict[str, FittedStage] = {"full": full}
    infos = {"full": full_info}
    if free_keys and len(free_keys) < len(keys):
        free, infos["free"] = fit_stage(matrix(rows, free_keys), y, split, signals=free_keys, **kwargs)
        held = split == "threshold"
        p_free = free.probabilities(matrix(rows, free.signals)[held])
        p_full = full.probabilities(matrix(rows, full.signals)[held])
        decided = decisions(p_full, full.thresholds)
        exits = early_exit_thresholds(free, p_free, p_full, y[held], full_decisions=decided)
        stages["free"] = dataclasses.replace(free, thresholds=exits)
    threshold = None  # without a precheck stage, familiarity is one more full-stage signal
    if any(spec.stage == "precheck" for spec in suite):
        familiarity = matrix(rows, ["familiarity"])[:, 0]
        held = split == "threshold"
        threshold = precheck_threshold(familiarity[held], y[held])
        # a precheck that does not save the calls it costs is turned off ("earn every call")
        precheck_calls = costs.get("familiarity", 0.0)
        after = 1.0 + sum(cost for key, cost in costs.items() if key != "familiarity" and key in stages["full"].signals)
        if not precheck_pays(familiarity[held], threshold, precheck_calls=precheck_calls, saved_calls=after):
            threshold = None
    artifact = Artifact(
        model=model,
        suite=[spec.to_dict() for spec in suite],
        stages=stages,
        precheck_threshold=threshold,
        target=options.target.to_dict(),
        data={**_data_summary(rows, split, options.seed), "fit": infos},
        signal_costs=signal_costs(rows, keys),
        notes=_threshold_notes(stages),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    held_out = report_data(artifact, rows)
    metrics = report_metrics(held_out, n_resamples=options.n_resamples, seed=options.seed)
    return dataclasses.replace(artifact, metrics={key: metrics[key] for key in _ARTIFACT_METRICS})


def retarget(artifact: Artifact, rows: Sequence[CachedRow], target: Target) -> Artifact:
    """The same fitted stages with thresholds (and early exits) chosen for another ``target``.

    Only the artifact's threshold split of ``rows`` (the rows it was fitted on) is read, as in
    :func:`fit_artifact`; fusion, calibrator and precheck cut are kept. One fit serves several risk targets.
    """
    split = split_rows([row.id for row in rows], seed=artifact.data.get("split_seed", 0))
    held = [row for row, part in zip(rows, split, strict=True) if part == "threshold"]
    y = np.array([row.correct for row in held])
    levels = {"answer_level": target.answer_level, "hedge_level": target.hedge_level,
              "confidence_level": target.confidence_level, "method": target.method}
    full = artifact.full
    p_full = full.probabilities(matrix(held, full.signals))
    full = dataclasses.replace(full, thresholds=choose_thresholds(p_full, y, **levels))
    stages = {"full": full}
    if artifact.free is not None:
        free = artifact.free
        p_free = free.probabilities(matrix(held, free.signals))
        free = dataclasses.replace(free, thresholds=choose_thresholds(p_free, y, **levels))
        exits = early_exit_thresholds(free, p_free, p_full, y, full_decisions=decisions(p_full, full.thresholds))
        stages = {"full": full, "free": dataclasses.replace(free, thresholds=exits)}
    return dataclasses.replace(
        artifact, stages=stages, target=target.to_dict(), notes=_threshold_notes(stages), metrics={}
    )


TRADEOFF_LEVELS = (0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)
"""Accuracy wanted among answered requests (1 - allowed error), loose to strict, for the trade-off table."""


def answered_by_target(
    artifact: Artifact, rows: Sequence[CachedRow], levels: Sequence[float] = TRADEOFF_LEVELS
) -> tuple[list[CachedRow], list[tuple[float, np.ndarray]]]:
    """Which test rows the cascade answers when the thresholds are re-chosen for each accuracy ``level``.

    The target is a product decision; this shows what each choice costs. Thresholds come from the threshold
    split (:func:`retarget`), the answers are counted on the test split. Returns the test rows and, per level,
    the boolean mask of the test rows answered outright.
    """
    split = split_rows([row.id for row in rows], seed=artifact.data.get("split_seed", 0))
    test_rows = [row for row, part in zip(rows, split, strict=True) if part == "test"]
    if "threshold" not in split:
        return test_rows, []  # nothing to choose thresholds on
    # strict targets are infeasible on purpose here: their per-target warnings would bury the fit's own
    thresholds_log = logging.getLogger("calibration.thresholds")
    level_before = thresholds_log.level
    thresholds_log.setLevel(logging.ERROR)
    try:
        curve = [(level, _answered_at(artifact, rows, test_rows, level)) for level in levels]
    finally:
        thresholds_log.setLevel(level_before)
    return test_rows, curve


def _answered_at(artifact: Artifact, rows: Sequence[CachedRow], test_rows: list[CachedRow], level: float) -> np.ndarray:
    target = artifact.target
    wanted = Target(
        answer_level=level,
        hedge_level=min(level, float(target["hedge_level"])),
        confidence_level=float(target["confidence_level"]),
        method=str(target.get("method", "ltt")),
    )
    _, decided, _ = cascade_outcomes(retarget(artifact, rows, wanted), test_rows)
    return decided == "answer"


def _tradeoff_table(artifact: Artifact, rows: Sequence[CachedRow]) -> list[dict[str, object]]:
    test_rows, curve = answered_by_target(artifact, rows)
    y = np.array([row.correct for row in test_rows], dtype=bool)
    table: list[dict[str, object]] = []
    for level, answered in curve:
        error = float(1 - y[answered].mean()) if answered.any() else None
        held = "n/a (nothing answered)" if error is None else ("yes" if error <= 1 - level else "no")
        table.append({
            "allowed error among answered": round(1 - level, 2),
            "answered (test)": round(float(answered.mean()), 4),
            "error among answered (test)": "-" if error is None else round(error, 4),
            "held": held,
            "correct answers delivered": f"{int((answered & y).sum())} of {int(y.sum())}",
        })
    return table


_ARTIFACT_METRICS = ("n_rows", "fused", "signals", "decision_mix", "request_costs", "extra_tables")


def report_data(
    artifact: Artifact,
    rows: Sequence[CachedRow],
    *,
    title: str | None = None,
    held_out_only: bool = True,
    extra_tables: dict[str, list[dict[str, object]]] | None = None,
) -> ReportData:
    """``rows`` under ``artifact``, ready for the report: its test split, or every row (new data)."""
    tradeoff: dict[str, list[dict[str, object]]] = {}
    if held_out_only:
        title_of = "Trade-off: the target (allowed error among answered) against the share answered, thresholds "
        if table := _tradeoff_table(artifact, rows):
            tradeoff = {title_of + "re-chosen per target on the threshold split, judged on the test split": table}
        split = split_rows([row.id for row in rows], seed=artifact.data.get("split_seed", 0))
        rows = [row for row, part in zip(rows, split, strict=True) if part == "test"]
        if not rows:
            raise ValueError("no row of the signal cache falls in the test split; calibrate on more questions")
    elif not rows:
        raise ValueError("no graded rows to report on")
    y = np.array([row.correct for row in rows])
    full = artifact.full
    keys = [spec["key"] for spec in artifact.suite]
    where = "the test split" if held_out_only else "these rows"
    _, decision, stage = cascade_outcomes(artifact, rows)  # once: the cascade table and its costs share it
    return ReportData(
        title=title or f"Calibration report: {artifact.model}",
        summary=_summary(artifact, rows, held_out=held_out_only),
        y_correct=y,
        fused=full.probabilities(matrix(rows, full.signals)),
        signals={key: matrix(rows, [key])[:, 0] for key in keys},
        thresholds={"abstain": full.abstain, "hedge": full.hedge},
        threshold_notes=_threshold_notes(artifact.stages),
        signal_costs=signal_costs(rows, keys),
        request_costs=_request_costs(artifact, rows, stage),
        extra_tables={
            **(extra_tables or {}),
            f"Cascade (precheck, free stage, full stage) on {where}": _cascade_table(decision, stage, y),
            **tradeoff,
            **_calibrator_tables(artifact),
            **_coefficient_tables(artifact),
        },
    )


def signal_costs(rows: Sequence[CachedRow], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean LLM calls, tokens and seconds per request of each signal, over the rows where it ran."""
    out = {}
    for key in keys:
        costs = [row.signals[key].cost for row in rows if key in row.signals]
        if costs:
            out[key] = {
                "calls": float(np.mean([c.calls for c in costs])),
                "tokens": float(np.mean([c.prompt_tokens + c.completion_tokens for c in costs])),
                "seconds": float(np.mean([c.seconds for c in costs])),
            }
    return out


def cascade_outcomes(artifact: Artifact, rows: Sequence[CachedRow]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the cascade would have done on each row (probability, decision, deciding stage)."""
    full = artifact.full
    free = artifact.free or full
    familiarity = np.array([row.confidence("familiarity") for row in rows])
    threshold = artifact.precheck_threshold
    abstains = np.zeros(len(rows), bool) if threshold is None else np.nan_to_num(familiarity, nan=1.0) < threshold
    return cascade_outcome(free, full, matrix(rows, free.signals), matrix(rows, full.signals), abstains)


def _cascade_table(decision: np.ndarray, stage: np.ndarray, y: np.ndarray) -> list[dict[str, object]]:
    mix = cascade_mix(decision, y)
    stages = Counter(stage.tolist())
    return [{"quantity": key, "value": round(value, 4)} for key, value in mix.items()] + [
        {"quantity": f"decided at {name}", "value": round(stages.get(name, 0) / len(stage), 4)}
        for name in ("precheck", "free", "full")
    ]


def _request_costs(artifact: Artifact, rows: Sequence[CachedRow], stage: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean cost per request with every signal, and with the cascade (precheck and early exits)."""
    full, cascaded = cascade_cost_rows(artifact, rows, stage)
    return {"full pipeline": _mean_cost(full), "with cascade": _mean_cost(cascaded)}


def cascade_cost_rows(
    artifact: Artifact, rows: Sequence[CachedRow], stage: np.ndarray
) -> tuple[list[list[Cost]], list[list[Cost]]]:
    """Per row, the costs paid with every signal, and those paid with the cascade given the deciding ``stage``."""
    full_only = {spec["key"] for spec in artifact.current_suite if spec["stage"] == "full"}
    full, cascaded = [], []
    for row, where in zip(rows, stage, strict=True):
        everything = [row.answer_cost] + [s.cost for s in row.signals.values()]
        full.append(everything)
        if where == "precheck":
            cascaded.append([s.cost for k, s in row.signals.items() if k == "familiarity"])
        elif where == "free":
            cascaded.append([row.answer_cost] + [s.cost for k, s in row.signals.items() if k not in full_only])
        else:
            cascaded.append(everything)
    return full, cascaded


def cost_totals(per_row: Sequence[Sequence[Cost]]) -> np.ndarray:
    """(calls, tokens, seconds) of each row's costs summed, as an (n, 3) array."""
    totals = [total_cost(costs) for costs in per_row]
    rows = [[t.calls, t.prompt_tokens + t.completion_tokens, t.seconds] for t in totals]
    return np.array(rows, dtype=float).reshape(len(totals), 3)


def _mean_cost(per_row: list[list[Cost]]) -> dict[str, float]:
    calls, tokens, seconds = cost_totals(per_row).mean(axis=0)
    return {"calls": float(calls), "tokens": float(tokens), "seconds": float(seconds)}


def _calibrator_tables(artifact: Artifact) -> dict[str, list[dict[str, object]]]:
    tables = {}
    for name, info in artifact.data.get("fit", {}).items():
        losses = info.get("calibrator_cv_log_loss", {})
        rows = [
            {
                "calibrator": kind,
                "cross-validated log-loss": None if loss is None else round(loss, 4),
                "chosen": "yes" if kind == info.get("calibrator") else "",
            }
            for kind, loss in losses.items()
        ]
        tables[f"Calibrators compared on the calibrate split, {name} stage (5-fold, lower is better)"] = rows
    return tables


def _coefficient_tables(artifact: Artifact) -> dict[str, list[dict[str, object]]]:
    tables = {}
    for name, stage in artifact.stages.items():
        if isinstance(stage.fusion, LogisticFusion):
            table = coefficients_table(stage.fusion)
            rows = [{"feature": f, "standardised coefficient": round(c, 4)} for f, c in table]
            tables[f"Logistic fusion coefficients, {name} stage"] = rows
    return tables


def _threshold_notes(stages: dict[str, FittedStage]) -> list[str]:
    notes = []
    for name, stage in stages.items():
        for result in (stage.thresholds.answer_result, stage.thresholds.hedge_result):
            notes.append(f"{name} stage: {result.message}")
    return notes


def _summary(artifact: Artifact, rows: Sequence[CachedRow], *, held_out: bool) -> dict[str, str]:
    """The report's opening lines; the data the artifact was fitted on and the rows evaluated here, apart."""
    data = artifact.data
    which = "the artifact's held-out test split" if held_out else "all rows given, the artifact applied as fitted"
    return {
        "model": artifact.model,
        "artifact": artifact.id,
        FITTED_ON: _fitting_data(data),
        EVALUATED_ON: f"{which}: {_dataset_counts(Counter(row.dataset for row in rows))}",
        "target": ", ".join(f"{k}={v}" for k, v in artifact.target.items()),
        "precheck threshold (familiarity)": "off (no cut met the rule)"
        if artifact.precheck_threshold is None
        else f"{artifact.precheck_threshold:.4g}",
        "fusion / calibrator": "; ".join(
            f"{name}: {info.get('fusion')} + {info.get('calibrator')}" for name, info in data.get("fit", {}).items()
        ),
    }


def _dataset_counts(counts: Mapping[str, int]) -> str:
    """'trivia 60, popqa 40 (100 rows)': rows per dataset, in the order given, and their total."""
    total = sum(counts.values())
    return ", ".join(f"{name} {n}" for name, n in counts.items()) + f" ({total} row{'s' * (total != 1)})"


def _fitting_data(data: Mapping[str, Any]) -> str:
    """The artifact's recorded datasets and how it split them; old artifacts may lack either."""
    datasets = data.get("datasets")
    text = _dataset_counts(datasets) if datasets else "not recorded in the artifact"
    if splits := data.get("splits"):
        parts = ", ".join(f"{name} {n}" for name, n in splits.items())
        text += f"; split {parts} (seed {data.get('split_seed')})"
    return text


def _data_summary(rows: Sequence[CachedRow], split: np.ndarray, seed: int) -> dict[str, Any]:
    return {
        "datasets": dict(Counter(row.dataset for row in rows)),
        "split_seed": seed,
        "splits": {name: int((split == name).sum()) for name in ("fit", "calibrate", "threshold", "test")},
        "accuracy": float(np.mean([row.correct for row in rows])),
        "rows": len(rows),
    }


def _check_enough(y: np.ndarray, split: np.ndarray) -> None:
    for name in ("fit", "calibrate", "threshold", "test"):
        part = y[split == name]
        right, wrong = int(part.sum()), int((~part).sum())
        if min(right, wrong) < MIN_ROWS_PER_CLASS:
            raise ValueError(
                f"the {name} split has {right} correct and {wrong} wrong answers; each split needs at least "
                f"{MIN_ROWS_PER_CLASS} of both. Calibrate on more questions (--limit) or more datasets."
            )
