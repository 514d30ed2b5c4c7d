"""Choose the fusion, and which signals it uses, by cross-validation, so the gate never ships a fusion
that ranks worse out of fold than one of its own members.

Every candidate is a fusion kind with its settings over a subset of the signals; a single signal is a
candidate too (a one-signal logistic fusion ranks exactly as the signal does). Each is scored by the
AUROC of its out-of-fold predictions, averaged over repeated stratified K-fold splits. The winner is the
*cheapest* candidate whose score is within ``tolerance`` of the best (fewest LLM calls, then fewest
signals): a signal has to earn its calls, and a difference smaller than the tolerance is noise at the
sample sizes we have. A candidate whose fitted logistic fusion gives a signal a negative weight is dropped
(every signal is oriented so that higher means more likely correct; a negative weight is an artefact of
correlated signals, and would make the gate less confident as a signal grows more confident).

:func:`nested_auroc` measures the selection itself: it repeats the choice inside each outer fold and
scores the chosen candidate on the outer fold, which no part of the choice saw.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from calibration.fusion import make_fusion
from calibration.fusion_logistic import LogisticFusion

__all__ = ["Candidate", "Selection", "candidates", "choose_fusion", "nested_auroc"]

DEFAULT_KINDS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("logistic", {}),
    ("logistic", {"transform": "logit"}),
)
"""Fusion kinds tried on every subset: logistic on the raw confidences, and on their log-odds."""


@dataclass(frozen=True)
class Candidate:
    """One fusion kind with its settings, over one subset of the signals."""

    fusion: str
    signals: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A readable name, e.g. ``logistic(logit)[logprob_min+consistency]``."""
        settings = ",".join(str(v) for v in self.params.values())
        return f"{self.fusion}{f'({settings})' if settings else ''}[{'+'.join(self.signals)}]"

    def calls(self, costs: Mapping[str, float]) -> float:
        """LLM calls per request of the signals it uses (a signal without a cost entry is free)."""
        return float(sum(costs.get(name, 0.0) for name in self.signals))

    def fit(self, x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> Any:
        """The fusion fitted on this candidate's columns of ``x``."""
        return make_fusion(self.fusion, **self.params).fit(x[:, self.columns(names)], y, feature_names=self.signals)

    def columns(self, names: Sequence[str]) -> list[int]:
        """Indices of this candidate's signals among ``names``."""
        return [list(names).index(name) for name in self.signals]


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and the cross-validated score of every candidate tried."""

    chosen: Candidate
    table: list[dict[str, Any]]
    tolerance: float


def candidates(
    names: Sequence[str], *, kinds: Sequence[tuple[str, Mapping[str, Any]]] = DEFAULT_KINDS, max_size: int | None = None
) -> list[Candidate]:
    """Every kind over every non-empty subset of ``names`` (up to ``max_size`` signals)."""
    largest = len(names) if max_size is None else min(max_size, len(names))
    subsets = [combo for size in range(1, largest + 1) for combo in itertools.combinations(names, size)]
    return [Candidate(kind, tuple(subset), dict(params)) for subset in subsets for kind, params in kinds]


def choose_fusion(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    costs: Mapping[str, float] | None = None,
    pool: Sequence[Candidate] | None = None,
    tolerance: float = 0.005,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
) -> Selection:
    """The cheapest candidate within ``tolerance`` of the best cross-validated AUROC.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_signals)
        Signal confidences (NaN where missing), columns named by ``names``.
    y : ndarray of shape (n_rows,)
        Whether each answer was correct.
    costs : mapping, optional
        LLM calls per request of each signal; the tie-break among near-best candidates.
    pool : sequence of Candidate, optional
        What to choose from; default :func:`candidates` of ``names``.
    tolerance : float
        AUROC difference treated as a tie.
    folds, repeats, seed
        The repeated stratified K-fold splits every candidate is scored on (the same splits for all).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=bool)
    costs = costs or {}
    pool = list(pool) if pool is not None else candidates(names)
    n_splits, splits = _splits(y, folds=folds, repeats=repeats, seed=seed)
    table = []
    for candidate in pool:
        score, monotone = _cv_auroc(candidate, x, y, names, splits=splits, n_splits=n_splits)
        table.append(
            {"candidate": candidate, "cv_auroc": score, "calls": candidate.calls(costs), "monotone": monotone}
        )
    usable = [row for row in table if row["monotone"] and np.isfinite(row["cv_auroc"])]
    if not usable:
        raise ValueError("no fusion candidate could be scored; more rows of both classes are needed")
    best = max(row["cv_auroc"] for row in usable)
    near = [row for row in usable if row["cv_auroc"] >= best - tolerance]
    chosen = min(near, key=lambda row: (row["calls"], len(row["candidate"].signals), -row["cv_auroc"]))
    table.sort(key=lambda row: -row["cv_auroc"] if np.isfinite(row["cv_auroc"]) else np.inf)
    return Selection(chosen["candidate"], table, tolerance)


def nested_auroc(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    costs: Mapping[str, float] | None = None,
    pool: Sequence[Candidate] | None = None,
    outer_folds: int = 5,
    seed: int = 0,
    **choose: Any,
) -> tuple[np.ndarray, list[Candidate]]:
    """Out-of-fold scores of the whole selection procedure, and the candidate chosen in each outer fold.

    Each outer fold's rows are scored by the candidate :func:`choose_fusion` picked (and fitted) on the
    other folds, so the AUROC of the returned scores is an honest estimate for the procedure.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=bool)
    scores = np.empty(len(y))
    chosen = []
    outer = StratifiedKFold(n_splits=outer_folds, shuffle=True, random_state=seed)
    for train, held in outer.split(x, y):
        selection = choose_fusion(x[train], y[train], names, costs=costs, pool=pool, seed=seed, **choose)
        fitted = selection.chosen.fit(x[train], y[train], names)
        scores[held] = fitted.predict_score(x[held][:, selection.chosen.columns(names)])
        chosen.append(selection.chosen)
    return scores, chosen


def _splits(y: np.ndarray, *, folds: int, repeats: int, seed: int) -> tuple[int, list[tuple[np.ndarray, ...]]]:
    """The folds per repeat and the splits, repeat after repeat (as RepeatedStratifiedKFold yields them)."""
    n_splits = max(2, min(folds, int(y.sum()), int((~y).sum())))
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=repeats, random_state=seed)
    return n_splits, list(splitter.split(np.zeros(len(y)), y))


def _cv_auroc(
    candidate: Candidate,
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    splits: list[tuple[np.ndarray, ...]],
    n_splits: int,
) -> tuple[float, bool]:
    """Mean over repeats of the pooled out-of-fold AUROC; whether every fitted weight was non-negative."""
    columns = candidate.columns(names)
    scores: dict[int, np.ndarray] = {}
    monotone = True
    for index, (train, held) in enumerate(splits):
        repeat = index // n_splits
        fitted = candidate.fit(x[train], y[train], names)
        monotone &= _non_negative(fitted, len(columns))
        scores.setdefault(repeat, np.empty(len(y)))[held] = fitted.predict_score(x[held][:, columns])
    values = [roc_auc_score(y, s) for s in scores.values()]
    return float(np.mean(values)), monotone


def _non_negative(fitted: Any, n_signals: int) -> bool:
    """A logistic fusion's weights on the signals themselves (not the missing-indicators) are >= 0."""
    if not isinstance(fitted, LogisticFusion):
        return True
    return bool(np.all(fitted.coef_[:n_signals] >= 0))
