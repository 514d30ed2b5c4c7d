"""Quality against peers' methods: each signal, the fused gate, its cascade, and five baselines, side by side.

Run: ``.venv/bin/python -m benchmarks.quality CACHE.jsonl [MORE.jsonl ...] [--folds 5] [--out ...quality.md]``
(``--answer-level`` / ``--hedge-level`` / ``--confidence-level``: the target of the thresholds, by default the
shipped artifact's). The figure is written next to ``--out``, with the suffix ``.png``.

Everything is read from ``gate calibrate`` signal caches (the greedy answer, its grade, every signal with
its details and cost; several caches are pooled when they hold the same model and signals), so every
method scores the same answers on the same questions and nothing is regenerated. The signals shown, and
the suite the fused gate is fitted on, are the ones the first cache's header names. The baselines are the
peers' standard methods re-implemented over the same samples (a baseline whose signal the caches do not
hold, e.g. P(True) outside the default suite, is listed as not collected):

- semantic entropy (Farquhar et al. 2024): minus the entropy of the answer clusters of the 5 samples at T=1;
- SelfCheck-style (Manakul et al. 2023): mean cosine similarity (MiniLM) between the answer and each sample,
  the sentence-embedding analogue of SelfCheck-BERTScore for one-line answers;
- P(True) (Kadavath et al. 2022): the model's probability of "Yes" that its answer is true;
- mean token log-prob: exp of the answer's mean token log-probability;
- NeMo-style 2-sample agreement (NeMo Guardrails' self-check hallucination rail): the fraction of the first
  two samples that agree with the answer (our exact-match judge in place of NeMo's LLM judge).

Nothing is fitted on the row it scores. Single signals and baselines have nothing to fit. The fused gate
is cross-fitted: the rows are cut into ``--folds`` folds (stratified by dataset and correctness, seed 0);
for each fold, ``gate calibrate``'s own fitting with its default options (``FitOptions()``: fusion and
signals chosen by cross-validation, calibrator, thresholds, free-stage early exits, precheck) runs on the
other folds and the resulting artifact scores the held-out fold. So every row's fused probability and
decision come from an artifact that never saw it, and all rows count, which a single 20% test split of a
set with 8% correct answers cannot afford. The shipped artifact's own test-split numbers are in
``calibration.md``.

Runtime: three cross-fits (the suite with and without the precheck, and the suite plus the what-if
similarity) of ``--folds`` artifacts each, dominated by the fusion selection (every subset of the suite, two
fusion kinds, 2 x 5-fold CV: 2^k - 1 subsets, so the 5-signal what-if tries 62 candidates); the calibrator
table refits only calibrators. The bootstrap intervals are linear in rows (times 1,000 resamples); the
precheck cut and the early-exit cut scan every distinct value of the threshold split (quadratic in that
split, about a fifth of the training rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from benchmarks import common
from benchmarks.common import machine_description
from calibration.artifact import FORMER_STAGE_NAMES, Artifact
from calibration.bootstrap import bootstrap_interval
from calibration.calibrators import make_calibrator
from calibration.fitting import Target, cascade_mix, cross_fitted_scores, split_rows
from calibration.metrics import auprc_error, auroc, brier_score, ece
from calibration.report import wilson_interval
from calibration.selective import aurc, prr, selective_accuracy
from estimators.base import Cost, Signal
from gate.offline.calibrate import FitOptions, cascade_cost_rows, cascade_outcomes, cost_totals, fit_artifact, matrix
from gate.offline.signal_cache import CachedRow, read_cache, same_signals
from gate.suite import SignalSpec, without_precheck

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).parent.parent / "gate" / "data" / "gemma-3-270m.calibration.json"
FALLBACK_TARGET = Target(answer_level=0.55, hedge_level=0.3, confidence_level=0.9)
"""The target when the shipped artifact cannot be read (the one it was fitted with, 2026-11)."""
N_RESAMPLES = 1000
FOLD_ARTIFACT_RESAMPLES = 10
COVERAGES = (0.25, 0.5, 0.75)
OPEN_DOMAIN = ("trivia", "nq_open", "popqa")
WITH_PASSAGES = ("sciq", "hotpot", "halueval")
FAMILIES = {
    "open-domain, no context (TriviaQA, NQ-open, PopQA)": OPEN_DOMAIN,
    "with passages (SciQ, HotpotQA, HaluEval QA)": WITH_PASSAGES,
    "SciQ (the support passage)": ("sciq",),
    "HotpotQA (10 passages: 2 gold, 8 distractors)": ("hotpot",),
    "HaluEval QA (its knowledge passage)": ("halueval",),
}
"""The sections after the pooled one; a section with no row of the caches, or with all of them, is left out."""
CALIBRATOR_KINDS = ("temperature", "platt", "isotonic", "histogram")
FUSED = "fused gate, full pipeline"
CASCADE = "fused gate, cascade"

SIGNAL_NAMES = {
    "familiarity": "familiarity",
    "logprob_min": "token prob: exp(min log-prob)",
    "consistency": "consistency: agreement of {n_samples} samples",
    "verbalized": "verbalized confidence",
    "pace": "PACE-style",
}
"""Display names of the suite's signals (a key not listed here is shown as it is)."""
PEER_SIGNALS = {"p_true": "P(True)", "logprob_mean": "mean token log-prob"}
"""Suite signals that are also a peer's method: shown once, among the baselines."""


@dataclass(frozen=True)
class Method:
    """A confidence score per row, what kind of method it is, and its LLM cost per row."""

    name: str
    kind: str  # "gate", "signal" or "baseline"
    scores: np.ndarray
    calls: np.ndarray
    tokens: np.ndarray
    seconds: np.ndarray
    probability: bool = True  # in [0, 1] and meant as one: ECE and Brier apply
    cost_note: str = ""
    absent: str = "no score on these rows"  # why a method has no row in a table


# --- the suite and the target ---------------------------------------------------------------------------------


def suite_of(head: Mapping) -> tuple[SignalSpec, ...]:
    """The signal suite a cache header names (stage names of older caches under their current name)."""
    specs = []
    for spec in head["suite"]:
        stage = FORMER_STAGE_NAMES.get(spec["stage"], spec["stage"])
        specs.append(SignalSpec.from_dict({**spec, "stage": stage}))
    return tuple(specs)


def shipped_target(path: Path = SHIPPED) -> Target:
    """The target the shipped artifact's thresholds were chosen for."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["target"]
        return Target(**{key: recorded[key] for key in ("answer_level", "hedge_level", "confidence_level", "method")})
    except (OSError, KeyError, TypeError, ValueError):
        return FALLBACK_TARGET


def describe_target(target: Target) -> str:
    """The target in words (see :func:`benchmarks.common.describe_target`)."""
    return common.describe_target(target.answer_level, target.hedge_level, target.confidence_level, target.method)


def fit_options(target: Target) -> FitOptions:
    """``gate calibrate``'s default fitting with this target (fewer bootstrap resamples: nothing reads them)."""
    return dataclasses.replace(FitOptions(), target=target, n_resamples=FOLD_ARTIFACT_RESAMPLES)


def describe_suite(suite: Sequence[SignalSpec]) -> str:
    """The cascade a suite makes: what the precheck, the free stage and the full stage may read."""
    precheck = [s.key for s in suite if s.stage == "precheck"]
    free = [s.key for s in suite if s.stage != "full"]
    parts = [f"precheck ({', '.join(precheck)})"] if precheck else []
    if free and len(free) < len(suite):
        parts.append(f"free ({', '.join(free)})")
    parts.append(f"full (all {len(suite)})")
    return " -> ".join(parts)


# --- the baselines, from the cached samples ----------------------------------------------------------------


def _consistency_details(row: CachedRow) -> dict:
    signal = row.signals.get("consistency")
    return {} if signal is None else signal.details


def semantic_entropy_scores(rows: Sequence[CachedRow]) -> np.ndarray:
    values = [_consistency_details(row).get("semantic_entropy") for row in rows]
    return np.array([np.nan if v is None else -float(v) for v in values])


def nemo_two_sample_scores(rows: Sequence[CachedRow]) -> np.ndarray:
    """Fraction of the first two samples in the answer's cluster (cluster 0 holds the answer, index 0)."""
    out = []
    for row in rows:
        clusters = _consistency_details(row).get("clusters")
        if not clusters:
            out.append(np.nan)
            continue
        with_answer = next((set(c) for c in clusters if 0 in c), {0})
        out.append(np.mean([1 in with_answer, 2 in with_answer]))
    return np.array(out)


def selfcheck_scores(rows: Sequence[CachedRow], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Mean cosine similarity between the answer and each sample (empty samples count as 0).

    Every distinct text is embedded once, in one call (the embedder batches), not one call per row.
    """
    wanted: dict[str, int] = {}
    for row in rows:
        samples = [str(s) for s in _consistency_details(row).get("samples") or []]
        for text in [row.answer, *samples]:
            if text.strip():
                wanted.setdefault(text, len(wanted))
    vectors = np.asarray(embed(list(wanted)), dtype=float) if wanted else np.zeros((0, 1))
    if len(vectors):
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for row in rows:
        samples = [str(s) for s in _consistency_details(row).get("samples") or []]
        if not samples:
            out.append(np.nan)
            continue
        kept = [s for s in samples if s.strip()]
        if not kept or not row.answer.strip():
            out.append(0.0)
            continue
        sims = vectors[[wanted[s] for s in kept]] @ vectors[wanted[row.answer]]
        out.append(float(np.sum(np.clip(sims, 0, 1)) / len(samples)))
    return np.array(out)


# --- costs ------------------------------------------------------------------------------------------------


def _cost(row: CachedRow, keys: Sequence[str]) -> list[Cost]:
    """The greedy answer's cost and that of each signal in ``keys`` the row has."""
    return [row.answer_cost] + [row.signals[k].cost for k in keys if k in row.signals]


def _costs(rows: Sequence[CachedRow], keys: Sequence[str], scale: float = 1.0) -> tuple[np.ndarray, ...]:
    table = cost_totals([_cost(row, keys) for row in rows])
    answer = cost_totals([_cost(row, []) for row in rows])
    extra = (table - answer) * scale
    if scale != 1.0:  # fewer samples in one call: still one call, fewer tokens and seconds
        extra[:, 0] = np.minimum(extra[:, 0], 1.0)
    return tuple((answer + extra).T)


# --- cross-fitting ------------------------------------------------------------------------------------------


@dataclass
class CrossFitted:
    """Out-of-fold results of one pipeline configuration."""

    fusion_scores: np.ndarray  # the full stage's fused score before its calibrator
    fused: np.ndarray
    cascade: np.ndarray
    decision: np.ndarray
    stage: np.ndarray
    cascade_costs: tuple[np.ndarray, ...]
    full_costs: tuple[np.ndarray, ...]
    artifacts: list[Artifact]


def cross_fit(
    rows: Sequence[CachedRow], folds: np.ndarray, *, suite: Sequence[SignalSpec], target: Target, model: str
) -> CrossFitted:
    """Fit on all folds but one, score that one, for each fold: probabilities, decisions and costs per row.

    Each fold is fitted by ``gate calibrate``'s own :func:`fit_artifact` with its default options
    (:func:`fit_options`), so a fold's stages read the signals its fusion selection chose.
    """
    n = len(rows)
    fusion_scores, fused, cascade = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    decision, stage = np.empty(n, dtype=object), np.empty(n, dtype=object)
    full_costs, cascade_costs = np.zeros((n, 3)), np.zeros((n, 3))
    artifacts = []
    # Each fold's artifact scores its own test split with bootstrap intervals; nothing here reads them.
    options = fit_options(target)
    for fold in np.unique(folds):
        train = [row for row, f in zip(rows, folds, strict=True) if f != fold]
        held = np.flatnonzero(folds == fold)
        artifact = fit_artifact(train, model=model, suite=suite, options=options)
        artifacts.append(artifact)
        held_rows = [rows[i] for i in held]
        values = matrix(held_rows, artifact.full.signals)
        fusion_scores[held] = artifact.full.fusion.predict_score(values)
        fused[held] = artifact.full.probabilities(values)
        probability, decided, where = cascade_outcomes(artifact, held_rows)
        cascade[held], decision[held], stage[held] = probability, decided, where
        every, cascaded = cascade_cost_rows(artifact, held_rows, where)
        full_costs[held], cascade_costs[held] = cost_totals(every), cost_totals(cascaded)
    return CrossFitted(
        fusion_scores, fused, cascade, decision, stage, tuple(cascade_costs.T), tuple(full_costs.T), artifacts
    )


def stratified_folds(rows: Sequence[CachedRow], k: int, seed: int = 0) -> np.ndarray:
    strata = [f"{row.dataset}:{row.correct}" for row in rows]
    folds = np.zeros(len(rows), dtype=int)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for index, (_, test) in enumerate(splitter.split(np.zeros(len(rows)), strata)):
        folds[test] = index
    return folds


def chosen(result: CrossFitted, stage: str, what: str = "fusion") -> str:
    """What the folds' fitting chose for a stage ("fusion" or "calibrator"), with how many folds chose it."""
    found = Counter(a.data["fit"][stage][what] for a in result.artifacts if stage in a.data["fit"])
    return "; ".join(f"`{name}` x{count}" for name, count in found.most_common()) or "none"


# --- metrics ----------------------------------------------------------------------------------------------


def _selective(coverage: float) -> Callable[[np.ndarray, np.ndarray], float]:
    return functools.partial(selective_accuracy, coverage=coverage)


def _safe(metric: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(y: np.ndarray, c: np.ndarray) -> float:
        if y.all() or not y.any():
            return float("nan")
        return float(metric(y, c))

    return wrapped


METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    # name: (metric, needs a probability)
    "AUROC": (_safe(auroc), False),
    "AUPRC-err": (_safe(auprc_error), False),
    "PRR": (_safe(prr), False),
    "AURC": (_safe(aurc), False),
    **{f"acc@{int(c * 100)}%": (_safe(_selective(c)), False) for c in COVERAGES},
    "ECE": (_safe(ece), True),
    "Brier": (_safe(brier_score), True),
}


def _cell(metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, c: np.ndarray) -> str:
    if len(y) == 0 or y.all() or not y.any():
        return "-"
    interval = bootstrap_interval(metric, y, c, n_resamples=N_RESAMPLES, seed=0)
    if np.isnan(interval.value):
        return "-"
    if np.isnan(interval.low):
        return f"{interval.value:.3f}"
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def metrics_table(methods: Sequence[Method], y: np.ndarray, mask: np.ndarray) -> list[str]:
    """One row per method with a score on the masked rows; a note names the methods without one, and why."""
    header = "| method | kind | scored | " + " | ".join(METRICS) + " | calls/q | tokens/q | s/q |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    left_out = []
    for method in methods:
        present = mask & ~np.isnan(method.scores)
        if not present.any():
            left_out.append(f"{method.name} ({method.absent})")
            continue
        yy, cc = y[present], method.scores[present]
        cells = [
            "-" if (needs and not method.probability) else _cell(metric, yy, cc) for metric, needs in METRICS.values()
        ]
        cost = (
            f"{method.calls[present].mean():.2f} | {method.tokens[present].mean():.0f} | "
            f"{method.seconds[present].mean():.2f}"
        )
        note = f" ({method.cost_note})" if method.cost_note else ""
        lines.append(
            f"| {method.name}{note} | {method.kind} | {present.sum()}/{mask.sum()} | "
            + " | ".join(cells)
            + f" | {cost} |"
        )
    if left_out:
        lines += ["", f"Not in this table: {'; '.join(left_out)}."]
    return lines


def paired_difference(
    metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, a: np.ndarray, b: np.ndarray, *, seed: int = 0
) -> tuple[float, float, float]:
    """metric(a) - metric(b) on the same rows, with a paired percentile bootstrap interval."""
    if len(y) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    value = metric(y, a) - metric(y, b)
    diffs = []
    for _ in range(N_RESAMPLES):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(metric(y[idx], a[idx]) - metric(y[idx], b[idx]))
    diffs = np.array(diffs)
    diffs = diffs[~np.isnan(diffs)]
    if 2 * len(diffs) < N_RESAMPLES:
        return value, float("nan"), float("nan")
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float(value), float(low), float(high)


def comparison_lines(fused: Method, baselines: Sequence[Method], y: np.ndarray, mask: np.ndarray) -> list[str]:
    """The target: the fused gate beats every baseline's AUROC and AURC (paired differences)."""
    lines = [
        "| baseline | AUROC: fused - baseline [95% CI] | AURC: baseline - fused [95% CI] (> 0: fused better) |",
        "|---|---|---|",
    ]
    verdicts, skipped = [], []
    for baseline in baselines:
        present = mask & ~np.isnan(baseline.scores) & ~np.isnan(fused.scores)
        yy = y[present]
        if yy.all() or not yy.any():
            skipped.append(baseline.name)
            continue
        d_auroc = paired_difference(_safe(auroc), yy, fused.scores[present], baseline.scores[present])
        d_aurc = paired_difference(_safe(aurc), yy, baseline.scores[present], fused.scores[present])
        lines.append(
            f"| {baseline.name} | {d_auroc[0]:+.3f} [{d_auroc[1]:+.3f}, {d_auroc[2]:+.3f}]"
            f" | {d_aurc[0]:+.4f} [{d_aurc[1]:+.4f}, {d_aurc[2]:+.4f}] |"
        )
        verdicts.append(d_auroc[0] > 0 and d_aurc[0] > 0)
    beaten = sum(verdicts)
    lines += [
        "",
        f"Fused gate ahead on both AUROC and AURC (point estimates) of {beaten} of {len(verdicts)} baselines"
        + (f" (not compared, no score or one class on these rows: {', '.join(skipped)})." if skipped else "."),
    ]
    return lines


# --- the report -------------------------------------------------------------------------------------------


def build_methods(
    rows: Sequence[CachedRow], suite: Sequence[SignalSpec], main: CrossFitted, similarity: np.ndarray
) -> list[Method]:
    """The gate, each signal of ``suite`` (the cache's), and the five baselines, in that order."""
    keys = [spec.key for spec in suite]

    def signal(key: str, name: str, kind: str = "signal", probability: bool = True, note: str = "") -> Method:
        scores = np.array([row.confidence(key) for row in rows], dtype=float)
        absent = "not collected: not in the caches' signal suite" if key not in keys else "no score on these rows"
        return Method(name, kind, scores, *_costs(rows, [key]), probability=probability, cost_note=note,
                      absent=absent)

    samples = {spec.key: spec for spec in suite}.get("consistency")
    n_samples = int(samples.params.get("n_samples", 5)) if samples is not None else 5
    no_samples = "" if samples is not None else "not collected: no consistency samples in the caches"
    signals = []
    for spec in suite:
        if spec.key in PEER_SIGNALS:
            continue
        name = SIGNAL_NAMES.get(spec.key, spec.key).format(n_samples=spec.params.get("n_samples", "the"))
        signals.append(signal(spec.key, f"{name} ({spec.stage})" if spec.stage == "precheck" else name))
    consistency_costs = _costs(rows, ["consistency"])

    def sampled(name: str, scores: np.ndarray, *cost: np.ndarray, **kw: object) -> Method:
        return Method(name, "baseline", scores, *cost, absent=no_samples or "no score on these rows", **kw)

    return [
        Method(FUSED, "gate", main.fused, *main.full_costs),
        Method(CASCADE, "gate", main.cascade, *main.cascade_costs),
        *signals,
        sampled("semantic entropy", semantic_entropy_scores(rows), *consistency_costs, probability=False),
        sampled("SelfCheck-style (MiniLM)", similarity, *consistency_costs),
        signal("p_true", PEER_SIGNALS["p_true"], kind="baseline"),
        signal("logprob_mean", PEER_SIGNALS["logprob_mean"], kind="baseline",
               note="also a signal of the suite" if "logprob_mean" in keys else ""),
        sampled(
            "NeMo-style 2-sample agreement",
            nemo_two_sample_scores(rows),
            *_costs(rows, ["consistency"], min(1.0, 2 / n_samples)),
            cost_note=f"cost: 2 of the {n_samples} samples, est.",
        ),
    ]


def cascade_lines(rows: Sequence[CachedRow], y: np.ndarray, variants: dict[str, CrossFitted]) -> list[str]:
    lines = [
        "| configuration | AUROC, full pipeline | AUROC, cascade | cascade / full AUROC | LLM calls/q full |"
        " LLM calls/q cascade | calls ratio | decided at precheck / free / full | meets target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in variants.items():
        full_auroc, cascade_auroc = auroc(y, result.fused), auroc(y, result.cascade)
        full_calls, cascade_calls = result.full_costs[0].mean(), result.cascade_costs[0].mean()
        retained, ratio = cascade_auroc / full_auroc, cascade_calls / full_calls
        stages = " / ".join(f"{np.mean(result.stage == s):.0%}" for s in ("precheck", "free", "full"))
        met = "yes" if retained >= 0.97 and ratio <= 1 / 3 else "no"
        lines.append(
            f"| {name} | {full_auroc:.3f} | {cascade_auroc:.3f} | {retained:.1%} | {full_calls:.2f}"
            f" | {cascade_calls:.2f} | {ratio:.2f} | {stages} | {met} |"
        )
    return lines


def choice_lines(variants: dict[str, CrossFitted]) -> list[str]:
    """What each configuration's folds chose: fusion and signals per stage, calibrator, precheck cut."""
    lines = [
        "| configuration | free stage: fusion[signals] | full stage: fusion[signals] | calibrators (free; full) |"
        " precheck threshold set |",
        "|---|---|---|---|---|",
    ]
    for name, result in variants.items():
        cuts = [a.precheck_threshold for a in result.artifacts]
        precheck = f"{sum(c is not None for c in cuts)} of {len(cuts)} folds"
        if any(c is not None for c in cuts):
            precheck += f" ({', '.join(f'{c:.3g}' for c in cuts if c is not None)})"
        lines.append(
            f"| {name} | {chosen(result, 'free')} | {chosen(result, 'full')} |"
            f" {chosen(result, 'free', 'calibrator')}; {chosen(result, 'full', 'calibrator')} | {precheck} |"
        )
    return lines


def auroc_cells(scores: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray]) -> list[str]:
    """AUROC with its interval on each mask's rows that have a score (``-`` where undefined)."""
    present = ~np.isnan(scores)
    return [_cell(_safe(auroc), y[mask & present], scores[mask & present]) for mask in masks.values()]


def family_masks(rows: Sequence[CachedRow]) -> dict[str, np.ndarray]:
    """All rows, the open-domain ones and the ones with passages (a family with no rows, or all of them, is
    left out: its column would be empty or repeat the pooled one)."""
    families = {
        "open-domain": np.array([row.dataset in OPEN_DOMAIN for row in rows], dtype=bool),
        "with passages": np.array([row.dataset in WITH_PASSAGES for row in rows], dtype=bool),
    }
    return {"pooled": np.ones(len(rows), dtype=bool)} | {
        name: mask for name, mask in families.items() if mask.any() and not mask.all()
    }


@dataclass(frozen=True)
class WhatIfSpec:
    """A signal the gate has no estimator for yet, shaped like a ``SignalSpec`` as far as fitting reads one
    (``SignalSpec`` itself refuses unknown estimators, rightly, since the gate would have to build it)."""

    key: str
    estimator: str
    stage: str = "full"

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "estimator": self.estimator, "stage": self.stage, "params": {}}


SIMILARITY = WhatIfSpec("sample_similarity", "sample_similarity (what-if)")
"""The SelfCheck-style similarity as a signal: it needs no LLM call of its own (it reads the samples the
consistency signal drew). Not an estimator of the gate yet; measured here first."""


def with_similarity(rows: Sequence[CachedRow], similarity: np.ndarray) -> list[CachedRow]:
    """The rows with ``similarity`` as one more signal, costed as the consistency samples it reads.

    The cost only steers the fusion selection (the cheapest near-best candidate wins): at zero cost the
    similarity would win every tie against the consistency signal whose samples it needs. A candidate with
    both counts the sampling call twice; only the AUROC of this variant is reported, not its costs.
    """
    out = []
    for row, v in zip(rows, similarity, strict=True):
        samples = row.signals.get("consistency")
        cost = samples.cost if samples is not None else Cost()
        added = Signal(name=SIMILARITY.estimator, confidence=None if np.isnan(v) else float(v), cost=cost)
        out.append(dataclasses.replace(row, signals={**row.signals, SIMILARITY.key: added}))
    return out


def what_if_lines(
    rows: Sequence[CachedRow],
    y: np.ndarray,
    folds: np.ndarray,
    main: CrossFitted,
    similarity: np.ndarray,
    *,
    suite: Sequence[SignalSpec],
    target: Target,
    model: str,
) -> list[str]:
    """The fused gate with the SelfCheck-style similarity as one more signal, cross-fitted on the same folds."""
    extended_suite = (*suite, SIMILARITY)
    extended = cross_fit(with_similarity(rows, similarity), folds, suite=extended_suite, target=target, model=model)  # type: ignore[arg-type]
    masks = family_masks(rows)
    candidates = {
        "fused gate, the cache's suite": main.fused,
        "fused gate + sample similarity": extended.fused,
        "SelfCheck-style (MiniLM) alone": similarity,
    }
    lines = ["| scores | " + " | ".join(f"AUROC, {name}" for name in masks) + " |", "|---|" + "---|" * len(masks)]
    for name, scores in candidates.items():  # the similarity is missing where no samples were drawn
        lines.append(f"| {name} | " + " | ".join(auroc_cells(scores, y, masks)) + " |")
    lines += ["", "| paired AUROC difference [95% CI] | " + " | ".join(masks) + " |", "|---|" + "---|" * len(masks)]
    for name, a, b in (
        ("with similarity - the cache's suite", extended.fused, main.fused),
        ("with similarity - SelfCheck-style alone", extended.fused, similarity),
    ):
        cells = []
        for mask in masks.values():
            both = mask & ~np.isnan(a) & ~np.isnan(b)
            value, low, high = paired_difference(_safe(auroc), y[both], a[both], b[both])
            cells.append("-" if np.isnan(value) else f"{value:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reads = sum(SIMILARITY.key in a.full.signals for a in extended.artifacts)
    lines += [
        "",
        f"The fusion selection kept the similarity in the full stage of {reads} of {len(extended.artifacts)} folds"
        f" (chosen: {chosen(extended, 'full')}).",
    ]
    return lines


def refit_calibrator(
    artifact: Artifact, train: Sequence[CachedRow], held: Sequence[CachedRow], kind: str, *, seed: int
) -> np.ndarray:
    """The held rows' full-stage probabilities with the fold's fitted fusion and a calibrator of ``kind``.

    The calibrator is fitted as :func:`calibration.fitting.fit_stage` fits it: on out-of-fold scores of the
    chosen fusion over the training rows' fit and calibrate splits. The fusion selection does not read the
    calibrator, so this equals refitting the whole artifact with ``calibrator=kind``, without repeating
    the selection.
    """
    stage = artifact.full
    split = split_rows([row.id for row in train], seed=seed)
    learn = [row for row, part in zip(train, split, strict=True) if part in ("fit", "calibrate")]
    y = np.array([row.correct for row in learn], dtype=bool)
    fusion = stage.fusion
    scores = cross_fitted_scores(
        fusion.kind, matrix(learn, stage.signals), y, signals=stage.signals, params=fusion.get_params()
    )
    calibrator = make_calibrator(kind).fit(scores, y)
    return calibrator.predict(fusion.predict_score(matrix(held, stage.signals)))


def calibrator_lines(rows: Sequence[CachedRow], y: np.ndarray, folds: np.ndarray, main: CrossFitted) -> list[str]:
    """Out-of-fold AUROC of the full stage with each calibrator kind, and of the fusion score before any.

    Every fold has its own fusion and calibrator, so the pooled AUROC also measures whether the folds'
    probabilities agree with each other, as one shipped artifact's must over all the requests it sees.
    """
    masks = family_masks(rows)
    candidates = {
        "fusion score, no calibrator": main.fusion_scores,
        f"auto (chose: {chosen(main, 'full', 'calibrator').replace('`', '')})": main.fused,
    }
    seed = FitOptions().seed
    for kind in CALIBRATOR_KINDS:
        scores = np.full(len(rows), np.nan)
        for fold, artifact in zip(np.unique(folds), main.artifacts, strict=True):
            train = [row for row, f in zip(rows, folds, strict=True) if f != fold]
            held = np.flatnonzero(folds == fold)
            scores[held] = refit_calibrator(artifact, train, [rows[i] for i in held], kind, seed=seed)
        candidates[kind] = scores
    lines = [
        "| calibrator | " + " | ".join(f"AUROC, {name}" for name in masks) + " | distinct probabilities |",
        "|---|" + "---|" * (len(masks) + 1),
    ]
    for name, scores in candidates.items():
        cells = auroc_cells(scores, y, masks)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(np.unique(scores))} of {len(scores)} |")
    return lines


def decision_lines(y: np.ndarray, variants: dict[str, CrossFitted]) -> list[str]:
    lines = [
        "| configuration | answer | hedge | abstain | error among answered | error among delivered | ungated error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in variants.items():
        mix = cascade_mix(result.decision.astype(str), y)
        answered = result.decision == "answer"
        errors, n = int((~y[answered]).sum()), int(answered.sum())
        if n:
            low, high = wilson_interval(errors, n, 0.95)
            among_answered = f"{mix['error_among_answered']:.3f} [{low:.2f}, {high:.2f}] ({n} answered)"
        else:
            among_answered = "- (none answered)"
        delivered = mix["error_among_delivered"]
        lines.append(
            f"| {name} | {mix['answer']:.3f} | {mix['hedge']:.3f} | {mix['abstain']:.3f} | {among_answered} |"
            f" {'-' if np.isnan(delivered) else f'{delivered:.3f}'} | {mix['ungated_error']:.3f} |"
        )
    return lines


PLOTTED = {FUSED, CASCADE, "P(True)", "mean token log-prob", "SelfCheck-style (MiniLM)",
           "NeMo-style 2-sample agreement", "semantic entropy"}


def plot(methods: Sequence[Method], y: np.ndarray, path: Path) -> None:
    from calibration.plots import ReliabilityDisplay, RiskCoverageDisplay, agg_figure, figure_to_png_bytes

    figure, (left, right) = agg_figure(figsize=(12, 4.8), ncols=2)
    shown = [m for m in methods if m.name in PLOTTED and not np.isnan(m.scores).all()]  # collected ones only
    for index, method in enumerate(shown):
        present, color = ~np.isnan(method.scores), f"C{index}"  # one colour per method in both panels
        yy, scores = y[present], method.scores[present]
        if method.probability:
            ReliabilityDisplay.from_predictions(yy, scores, name=method.name).plot(ax=left, color=color)
        RiskCoverageDisplay.from_predictions(yy, scores, name=method.name).plot(ax=right, color=color)
    left.set_title("Reliability (all rows, out-of-fold for the gate)")
    right.set_title("Risk-coverage (lower is better)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    path.write_bytes(figure_to_png_bytes(figure))


def _per_dataset(rows: Sequence[CachedRow]) -> str:
    names = sorted({row.dataset for row in rows})
    return ", ".join(f"{name} {sum(row.dataset == name for row in rows)}" for name in names)


def read_caches(caches: Sequence[Path]) -> tuple[dict, list[CachedRow]]:
    """The rows of every cache, pooled; they must hold the same model and the same signals."""
    head, rows = read_cache(caches[0])
    for cache in caches[1:]:
        other, more = read_cache(cache)
        if other["model"] != head["model"] or not same_signals(other["suite"], head["suite"]):
            raise ValueError(f"{cache} holds other signals or another model than {caches[0]}: cannot pool them")
        rows += more
    if len({row.id for row in rows}) != len(rows):
        raise ValueError("the caches share question ids: pool caches of different questions")
    return head, sorted(rows, key=lambda row: row.id)


def _command(caches: Sequence[Path], folds: int, target: Target) -> str:
    flags = "".join(
        f" --{name.replace('_', '-')} {getattr(target, name)}"
        for name in ("answer_level", "hedge_level", "confidence_level")
        if getattr(target, name) != getattr(shipped_target(), name)
    )
    return f"`.venv/bin/python -m benchmarks.quality {' '.join(c.name for c in caches)} --folds {folds}{flags}`"


def build(caches: Sequence[Path], folds: int, out: Path, target: Target | None = None) -> str:
    from retrieval.embedders import MiniLMEmbedder

    head, rows = read_caches(caches)
    suite = suite_of(head)
    target = target or shipped_target()
    y = np.array([row.correct for row in rows], dtype=bool)
    fold_of = stratified_folds(rows, folds)
    model = head["model"]
    variants = {f"the cache's suite: {describe_suite(suite)}": cross_fit(
        rows, fold_of, suite=suite, target=target, model=model
    )}
    if any(spec.stage == "precheck" for spec in suite):
        no_precheck = without_precheck(suite)
        variants[f"no precheck: {describe_suite(no_precheck)}"] = cross_fit(
            rows, fold_of, suite=no_precheck, target=target, model=model
        )
    main = next(iter(variants.values()))
    embedder = MiniLMEmbedder()
    similarity = selfcheck_scores(rows, lambda texts: np.asarray(embedder.embed(texts), dtype=float))
    methods = build_methods(rows, suite, main, similarity)
    baselines = [m for m in methods if m.kind == "baseline"]
    plot_path = out.with_suffix(".png")
    plot(methods, y, plot_path)
    lines = [
        "# Quality against peers' methods, on the embedded model",
        "",
        f"- Command: {_command(caches, folds, target)}"
        " (the caches written by the `gate calibrate` commands in `calibration.md` and below).",
        f"- Model: {model}; greedy answer in the few-shot Q/A format; label: the answer contains a gold alias.",
        f"- Rows: {len(rows)} questions ({_per_dataset(rows)}), {int(y.sum())} correct answers ({y.mean():.1%}).",
        f"- Signal suite (the caches' header): {', '.join(f'{s.key} ({s.stage})' for s in suite)}.",
        f"- The fused gate is cross-fitted over {folds} folds (stratified by dataset and correctness, seed 0) with"
        " `gate calibrate`'s default fitting (fusion and signals chosen by cross-validation, `--fusion auto`;"
        f" calibrator `auto`) and the target {describe_target(target)}: every row is scored by an artifact that"
        " never saw it. Its full stage reads only the signals its fusion selection kept"
        f" (per fold: {chosen(main, 'full')}).",
        "- Intervals: 95% percentile bootstrap over questions, 1,000 resamples (seed 0); `-`: undefined (too few"
        " correct answers in the rows) or not a probability (ECE and Brier only for scores meant as probabilities).",
        "- Costs are the LLM work per question (calls, tokens, seconds) measured when the cache was written, the"
        " greedy answer included (1 call); the full pipeline computes every signal of the suite, the cascade stops"
        " early.",
        f"- Machine: {machine_description()}.",
        "",
        "Column key: AUROC (correct vs wrong, higher better); AUPRC-err (finding the wrong answers); PRR"
        " (prediction rejection ratio, 1 = oracle); AURC (area under risk-coverage, lower better);"
        " acc@k% (accuracy of the k% most confident answers); ECE (10 equal-width bins); Brier.",
        "",
    ]
    families = {"all datasets pooled": tuple(sorted({r.dataset for r in rows})), **FAMILIES}
    for title, datasets in families.items():
        mask = np.array([row.dataset in datasets for row in rows])
        if not mask.any() or (mask.all() and title in FAMILIES):  # no rows, or the pooled section again
            continue
        lines += [f"## {title}", "", f"{mask.sum()} questions, {int(y[mask].sum())} correct.", ""]
        lines += metrics_table(methods, y, mask)
        lines += ["", "Paired comparison with each baseline on the same rows:", ""]
        lines += comparison_lines(methods[0], baselines, y, mask)
        lines.append("")
    lines += [
        f"![reliability and risk-coverage]({plot_path.name})",
        "",
        "## The cascade: how much of the full pipeline's ranking it keeps, for how many calls",
        "",
        "Target: the cascade keeps >= 97% of the full pipeline's AUROC with <= 1/3 of its LLM calls. Both"
        " configurations are cross-fitted the same way; costs count the greedy answer. The free stage's"
        " thresholds are early exits: it answers above its own answer threshold and abstains below the cut that"
        " withholds at most 5% of what the full stage delivers; in between the full stage runs.",
        "",
        *cascade_lines(rows, y, variants),
        "",
        "What each fold's fitting chose (fusion over the signals it kept; `x k`: in k folds):",
        "",
        *choice_lines(variants),
        "",
        "## Calibrator choice and ranking (full stage, out-of-fold)",
        "",
        "`gate calibrate --calibrator auto` chooses between the order-preserving kinds (Platt, temperature) by"
        " cross-validated log-loss. Isotonic regression and histogram binning map ranges of scores to one value:"
        " the ranking inside each range is lost. Same folds, each fold's own fusion (as its selection chose it),"
        " each calibrator kind refitted as `gate calibrate` fits it:",
        "",
        *calibrator_lines(rows, y, fold_of, main),
        "",
        "## What if the SelfCheck-style similarity were a signal of the gate (out-of-fold)",
        "",
        "The SelfCheck-style baseline reads the samples the consistency signal already draws, so the gate could"
        " have it for no LLM call of its own. Not shipped: measured here first, on the same folds, as one more"
        " full-stage signal offered to the fusion selection (the rest of the fitting unchanged; costed as the"
        " samples it reads, so it wins no tie against them). These rows are the ones every design choice of"
        " this file was looked at on, so a gain here is a reason to collect fresh questions, not yet a result.",
        "",
        *what_if_lines(rows, y, fold_of, main, similarity, suite=suite, target=target, model=model),
        "",
        "## Decisions at the fitted thresholds (out-of-fold, all rows)",
        "",
        f"Target: {describe_target(target)}.",
        "",
        *decision_lines(y, variants),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caches", type=Path, nargs="+", help="signal caches written by gate calibrate")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.md", help="the figure goes next to it (.png)")
    shipped = shipped_target()
    for name, help_text in (
        ("answer_level", "wanted accuracy among answered"),
        ("hedge_level", "wanted accuracy among answered or hedged"),
        ("confidence_level", "confidence of the Learn-then-Test guarantee"),
    ):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(shipped, name),
                            help=f"{help_text} (default: the shipped artifact's, {getattr(shipped, name)})")
    args = parser.parse_args()
    target = dataclasses.replace(
        shipped, answer_level=args.answer_level, hedge_level=args.hedge_level, confidence_level=args.confidence_level
    )
    text = build(args.caches, args.folds, args.out, target)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
