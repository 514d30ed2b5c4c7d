"""Export a fitted ``HistGradientBoostingClassifier`` to plain arrays, predict from them, (de)serialise them.

``BoostedFusion`` persists its model as JSON, never as a pickle, so the fitted trees are copied out of
scikit-learn into :class:`ExportedTree` records and scored here with numpy alone.

This reads scikit-learn's *private* tree layout: ``model._predictors`` (one list per boosting iteration,
one ``TreePredictor`` per class inside it), each predictor's ``nodes`` structured array, and
``model._baseline_prediction``. That layout is not a public API; ``tests/test_fusion.py`` checks that
:func:`predict_raw` reproduces ``model.predict_proba`` to 1e-10 (NaN rows included), so a scikit-learn
release that changes it fails the tests instead of silently changing scores. Categorical splits (which
also need the predictor's bitsets) are refused: fusion only fits numeric signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration._validation import require_keys

__all__ = ["ExportedTree", "export_trees", "predict_raw", "tree_from_json", "tree_to_json"]

# The node fields a numeric split needs; a layout without any of them is one this module cannot read.
_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")
_JSON_KEYS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")


@dataclass(frozen=True, eq=False)
class ExportedTree:
    """One regression tree as parallel node arrays (node 0 is the root; children have larger indices).

    A row at a split node goes to ``left`` when its value is NaN and ``missing_left`` is true, or when
    it is not NaN and ``value <= threshold``; otherwise to ``right``. ``threshold`` may be ``+inf``
    (scikit-learn's "split on missing": every observed value goes left). ``feature``, ``threshold``,
    ``missing_left``, ``left`` and ``right`` are meaningless at leaves; ``value`` is the leaf's raw
    (log-odds) contribution.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray


def export_trees(model: Any) -> tuple[float, list[ExportedTree]]:
    """Copy the baseline and the trees out of a fitted binary ``HistGradientBoostingClassifier``.

    Parameters
    ----------
    model : HistGradientBoostingClassifier
        Fitted on numeric features, two classes.

    Returns
    -------
    baseline : float
        The raw (log-odds) prediction every tree adds to.
    trees : list of ExportedTree
        One tree per boosting iteration, in the order scikit-learn sums them.

    Raises
    ------
    RuntimeError
        If the private attributes this relies on are absent or shaped differently (a scikit-learn
        version whose layout this module does not know).
    ValueError
        If the model has more than one tree per iteration (multi-class) or a categorical split.
    """
    try:
        predictors = model._predictors
        baseline = np.asarray(model._baseline_prediction, dtype=np.float64)
    except AttributeError as exc:
        raise RuntimeError(
            f"cannot export {type(model).__name__}: scikit-learn's private tree layout "
            "(_predictors, _baseline_prediction) is not there; this scikit-learn version is not supported"
        ) from exc
    if baseline.size != 1 or any(len(per_class) != 1 for per_class in predictors):
        raise ValueError(
            f"only binary models (one tree per iteration) can be exported; got a baseline of shape "
            f"{baseline.shape} and {sorted({len(per_class) for per_class in predictors})} trees per iteration"
        )
    return float(baseline.ravel()[0]), [_export_tree(per_class[0]) for per_class in predictors]


def _export_tree(predictor: Any) -> ExportedTree:
    nodes = getattr(predictor, "nodes", None)
    names = getattr(getattr(nodes, "dtype", None), "names", None) or ()
    absent = [field for field in _NODE_FIELDS if field not in names]
    if absent:
        raise RuntimeError(
            f"cannot export a {type(predictor).__name__}: its nodes lack the fields {absent} "
            f"(found {list(names)}); this scikit-learn version's tree layout is not supported"
        )
    if "is_categorical" in names and nodes["is_categorical"].any():
        raise ValueError("the model has categorical splits; only numeric features can be exported")
    return ExportedTree(
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=nodes["left"].astype(np.intp),
        right=nodes["right"].astype(np.intp),
        is_leaf=nodes["is_leaf"].astype(bool),
        value=nodes["value"].astype(np.float64),
    )


def predict_raw(x: np.ndarray, trees: list[ExportedTree], baseline: float) -> np.ndarray:
    """Raw (log-odds) predictions: ``baseline`` plus every tree's leaf value, summed in tree order.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features), dtype float64
        NaN marks a missing value.
    trees : list of ExportedTree
    baseline : float

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    n_samples = x.shape[0]
    rows = np.arange(n_samples)
    # Same start value and summation order as scikit-learn, so the float result matches bit for bit.
    raw = np.full(n_samples, baseline, dtype=np.float64)
    for tree in trees:
        node = np.zeros(n_samples, dtype=np.intp)
        # Children have larger indices than their parent, so a walk ends within len(value) steps.
        for _ in range(tree.value.size):
            active = ~tree.is_leaf[node]
            if not active.any():
                break
            at = node[active]
            value = x[rows[active], tree.feature[at]]
            go_left = np.where(np.isnan(value), tree.missing_left[at], value <= tree.threshold[at])
            node[active] = np.where(go_left, tree.left[at], tree.right[at])
        raw += tree.value[node]
    return raw


def tree_to_json(tree: ExportedTree) -> dict[str, list[Any]]:
    """JSON-able lists; a ``+inf`` threshold (split on missing) becomes ``null``: JSON has no infinity."""
    threshold = [None if math.isinf(t) and t > 0 else float(t) for t in tree.threshold.tolist()]
    return {
        "feature": tree.feature.tolist(),
        "threshold": threshold,
        "missing_left": tree.missing_left.tolist(),
        "left": tree.left.tolist(),
        "right": tree.right.tolist(),
        "is_leaf": tree.is_leaf.tolist(),
        "value": tree.value.tolist(),
    }


def tree_from_json(data: Any, n_features: int, *, where: str = "tree") -> ExportedTree:
    """Validate what :func:`tree_to_json` wrote and rebuild the tree.

    Checks that every array has one entry per node, that split features index an existing column,
    that children come after their parent (so prediction terminates) and that numbers are finite.

    Raises
    ------
    ValueError
        Naming ``where`` (e.g. ``"trees[3]"``), the offending field and what is valid.
    """
    require_keys(data, _JSON_KEYS, where)
    lengths = {key: len(data[key]) if isinstance(data[key], list) else -1 for key in _JSON_KEYS}
    n_nodes = lengths["value"]
    if n_nodes < 1 or any(length != n_nodes for length in lengths.values()):
        raise ValueError(f"{where}: every field must be a list with one entry per node (at least one); got {lengths}")
    is_leaf = _typed(data["is_leaf"], "b", f"{where}.is_leaf", "booleans")
    tree = ExportedTree(
        feature=_typed(data["feature"], "i", f"{where}.feature", "integers"),
        threshold=_thresholds(data["threshold"], f"{where}.threshold"),
        missing_left=_typed(data["missing_left"], "b", f"{where}.missing_left", "booleans"),
        left=_typed(data["left"], "i", f"{where}.left", "integers"),
        right=_typed(data["right"], "i", f"{where}.right", "integers"),
        is_leaf=is_leaf,
        value=_typed(data["value"], "f", f"{where}.value", "finite numbers"),
    )
    split = ~is_leaf
    index = np.arange(n_nodes)
    if not np.isfinite(tree.value).all():
        raise ValueError(f"{where}.value must be finite numbers; got {tree.value[~np.isfinite(tree.value)][:3]}")
    if np.any((tree.feature[split] < 0) | (tree.feature[split] >= n_features)):
        raise ValueError(f"{where}.feature: split features must be in [0, {n_features}); got {tree.feature[split]}")
    for side in ("left", "right"):
        child = getattr(tree, side)[split]
        if np.any((child <= index[split]) | (child >= n_nodes)):
            raise ValueError(
                f"{where}.{side}: a split node's child must come after it and be < {n_nodes} nodes; "
                f"got children {child.tolist()} for nodes {index[split].tolist()}"
            )
    return tree


def _typed(values: list[Any], kind: str, where: str, valid: str) -> np.ndarray:
    # Checked per element, not by numpy's inferred dtype: np.asarray would turn true into 1 in an index
    # list, or 1 into 1.0, and accept what the writer could not have written.
    types = {"i": int, "b": bool, "f": int | float}[kind]
    if not all(isinstance(v, types) and (kind == "b" or not isinstance(v, bool)) for v in values):
        raise ValueError(f"{where} must be a list of {valid}; got {values[:5]!r}{'...' if len(values) > 5 else ''}")
    return np.asarray(values, dtype={"i": np.intp, "b": bool, "f": np.float64}[kind])


def _thresholds(values: list[Any], where: str) -> np.ndarray:
    if any(not (t is None or (isinstance(t, int | float) and not isinstance(t, bool))) for t in values):
        raise ValueError(f"{where} must be a list of finite numbers or null (+inf); got {values[:5]!r}")
    threshold = np.array([math.inf if t is None else float(t) for t in values], dtype=np.float64)
    written = np.array([t is not None for t in values], dtype=bool)
    if not np.isfinite(threshold[written]).all():
        raise ValueError(f"{where}: non-null thresholds must be finite (null stands for +inf); got {values[:5]!r}")
    return threshold
