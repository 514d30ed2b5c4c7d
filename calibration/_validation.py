"""Input checks shared by the calibration modules: arrays, labels, numbers and saved (JSON) dicts.

Every check raises ``ValueError`` naming the argument, what it received and what is valid, so the public
functions of ``metrics``, ``selective``, ``fusion``, ``calibrators`` and ``thresholds`` refuse bad input
with the same words.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


# ---------------------------------------------------------------- arrays


def as_float_array(
    values: ArrayLike, name: str, *, ndim: int = 1, allow_nan: bool = False, allow_inf: bool = False, hint: str = ""
) -> FloatArray:
    """``values`` as a float64 array of ``ndim`` dimensions whose last axis is non-empty.

    NaN and infinities are refused unless allowed: fusion reads NaN as a missing signal, and ranking
    metrics order an infinite score like any other. ``hint`` is appended to the shape error.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a {ndim}-D array of real numbers; got {type(values).__name__}") from exc
    if array.ndim != ndim or array.shape[-1] == 0:
        raise ValueError(f"{name} must be {ndim}-D and non-empty; got shape {array.shape}{hint}")
    n_nan = 0 if allow_nan else int(np.count_nonzero(np.isnan(array)))
    n_inf = 0 if allow_inf else int(np.count_nonzero(np.isinf(array)))
    if n_nan or n_inf:
        rule = "be finite or NaN (missing)" if allow_nan else "not be NaN" if allow_inf else "be finite"
        found = " and ".join(f"{n} {what}" for n, what in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
        raise ValueError(f"{name} must {rule}; got {found} value(s) among {array.size}")
    return array


def check_probabilities(array: FloatArray, name: str, *, hint: str = "") -> FloatArray:
    """``array`` unchanged if every value lies in [0, 1] (NaN passes: callers decide about NaN)."""
    outside = (array < 0.0) | (array > 1.0)
    if outside.any():
        low, high = np.nanmin(array), np.nanmax(array)
        raise ValueError(f"{name} must be probabilities in [0, 1]; got range [{low:.4g}, {high:.4g}]{hint}")
    return array


def as_binary_labels(
    values: ArrayLike, name: str, *, n_rows: int | None = None, per: str = "answer"
) -> NDArray[np.int64]:
    """Non-empty 1-D 0/1 labels (1 = correct), booleans accepted; ``n_rows`` of them when given.

    ``per`` names what each label belongs to, for the message when the count is wrong.
    """
    labels = np.asarray(values)
    if labels.ndim != 1 or (n_rows is not None and labels.shape[0] != n_rows):
        count = "" if n_rows is None else f" ({n_rows})"
        raise ValueError(f"{name} must be 1-D with one label per {per}{count}; got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError(f"{name} is empty; at least one label is needed")
    if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        found = np.unique(labels.astype(str))[:10].tolist()
        raise ValueError(f"{name} must be binary: 0/1 or False/True (1 = correct); got values {found}")
    return labels.astype(np.int64)


def require_both_classes(labels: NDArray[np.int64], name: str) -> None:
    """Refuse labels without at least one correct and one incorrect row: nothing can be learned from them."""
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        raise ValueError(
            f"{name} needs at least one correct (1) and one incorrect (0) row; got {counts[1]} correct "
            f"and {counts[0]} incorrect"
        )


def metric_inputs(y_correct: ArrayLike, confidence: ArrayLike, *, probabilities: bool) -> tuple[FloatArray, FloatArray]:
    """(correctness as 0.0/1.0, confidence) for a metric; ``probabilities`` for calibration metrics.

    Ranking metrics accept any score but NaN (infinities included); calibration metrics need [0, 1].
    """
    c = as_float_array(confidence, "confidence", allow_inf=True)
    y = as_binary_labels(y_correct, "y_correct", n_rows=c.size, per="confidence score")
    if probabilities:
        hint = " (calibration metrics need probabilities; ranking metrics such as auroc, aurc, prr take any score)"
        check_probabilities(c, "confidence", hint=hint)
    return y.astype(np.float64), c


# ---------------------------------------------------------------- scalars


def is_number(value: Any) -> bool:
    """A real number, numpy scalars included; a bool is not one (True would pass for 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_number(
    value: Any,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite number between ``low`` and ``high`` (ends open when asked)."""
    if not _in_range(value, low, high, low_open, high_open):
        raise ValueError(f"{name} must be {_describe(low, high, low_open, high_open)}; got {value!r}")
    return float(value)


def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``, or None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < minimum:
        valid = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {valid}{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def _in_range(value: Any, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    if not is_number(value) or not math.isfinite(value):
        return False
    return (low < value if low_open else low <= value) and (value < high if high_open else value <= high)


def _describe(low: float, high: float, low_open: bool, high_open: bool, *, plural: bool = False) -> str:
    """What ``_in_range`` accepts, e.g. 'a finite number > 0' or 'numbers in [0, 1)'."""
    if math.isinf(low) and math.isinf(high):
        kind, bound = "finite ", ""
    elif math.isinf(high):
        kind, bound = "finite ", f" {'>' if low_open else '>='} {low:g}"
    else:
        kind, bound = "", f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return f"{kind}numbers{bound}" if plural else f"a {kind}number{bound}"


# ---------------------------------------------------------------- saved (JSON) dicts


def require_keys(data: Any, keys: Iterable[str], what: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping with exactly ``keys``; ``what`` names it in the message."""
    expected = sorted(keys)
    if not isinstance(data, Mapping) or sorted(data) != expected:
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{what} must have exactly the keys {expected}; got {got}")
    return data


def read_saved_header(
    data: Any, *, owner: str, kind: str, format_version: int, params: Iterable[str]
) -> dict[str, Any]:
    """The constructor parameters of a model saved by ``to_dict``, once the shared header is checked.

    The header is what every saved fusion and calibrator starts with: a mapping with this ``kind``,
    this ``format_version`` and ``params`` holding exactly the constructor arguments of ``owner``.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a saved {owner} must be a mapping; got {type(data).__name__}")
    if data.get("kind") != kind:
        raise ValueError(f"{owner}.from_dict needs kind {kind!r}; got {data.get('kind')!r}")
    if data.get("format_version") != format_version:
        raise ValueError(f"unsupported format_version {data.get('format_version')!r}; valid: {format_version}")
    return dict(require_keys(data.get("params"), params, f"params of a saved {owner}"))


def json_float(data: Mapping[str, Any], key: str, **bounds: Any) -> float:
    """The finite number stored under ``key``; ``bounds`` as in :func:`check_number`."""
    return check_number(data.get(key), repr(key), **bounds)


def json_float_list(
    data: Mapping[str, Any],
    key: str,
    *,
    length: int | None = None,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
) -> FloatArray:
    """The list of finite numbers stored under ``key``: ``length`` of them, else at least one."""
    raw = data.get(key)
    is_list = isinstance(raw, list | tuple)
    ok = is_list and (len(raw) == length if length is not None else len(raw) > 0)
    if not ok or not all(_in_range(v, low, high, low_open, False) for v in raw):
        count = "a non-empty list of" if length is None else f"a list of {length}"
        got = f"length {len(raw)}: {raw!r:.80}" if is_list else f"{raw!r:.80}"
        raise ValueError(f"{key!r} must be {count} {_describe(low, high, low_open, False, plural=True)}; got {got}")
    return np.asarray(raw, dtype=np.float64)
