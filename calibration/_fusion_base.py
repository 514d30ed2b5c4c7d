"""What every fusion shares: the scikit-learn-shaped base class, input checks, the persistence header."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from calibration._validation import as_binary_labels, as_float_array, check_int, read_saved_header, require_both_classes

__all__ = ["FORMAT_VERSION", "BaseFusion", "check_signals", "param_names", "sigmoid"]

FORMAT_VERSION = 1


class BaseFusion(BaseEstimator):
    """The shared contract: validation, the fitted check, predict_proba / predict_score, persistence header."""

    kind: ClassVar[str]
    added_params: ClassVar[Mapping[str, Any]] = {}
    """Parameters added after release, with the value that reproduces models saved without them."""

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name for the data
        """Probability of each class for every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Signal confidences, NaN where a signal is missing.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Column 0 is P(incorrect), column 1 is P(correct); each row sums to 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is neither fitted nor loaded with ``from_dict``.
        ValueError
            If ``X`` is not 2-D, holds infinities, or has a different number of columns than in ``fit``.
        """
        check_is_fitted(self)
        x = check_signals(X)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} signals per row, but this {type(self).__name__} was fitted with "
                f"{self.n_features_in_} ({', '.join(self._signal_names())})"
            )
        score = self._predict_positive(x)
        return np.column_stack([1.0 - score, score])

    def predict_score(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name for the data
        """P(correct) for every row: ``predict_proba(X)[:, 1]``, shape (n_samples,)."""
        return self.predict_proba(X)[:, 1]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict` output (e.g. after a JSON round trip).

        Parameters
        ----------
        data : mapping
            What ``to_dict`` returned, with this class's ``kind``.

        Returns
        -------
        A fitted model that predicts exactly as the one that was saved.

        Raises
        ------
        ValueError
            If the kind, format version, parameters, feature names, array lengths or values are not valid.
        """
        params, n_features, names = _read_header(data, cls)
        fusion = cls(**params)
        fusion._check_params()
        fusion.n_features_in_ = n_features
        if names is not None:
            fusion.feature_names_in_ = names
        fusion._load_learned(data)
        return fusion

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as a dict of JSON types (``json.dumps`` works on it as is).

        Returns
        -------
        dict
            ``kind``, ``format_version``, ``params`` (the constructor arguments), ``feature_names``
            (a list, or None when fitted without names), ``n_features`` and the learned arrays as lists.
        """
        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "params": self._params_to_json(),
            "feature_names": None if names is None else [str(name) for name in names],
            "n_features": int(self.n_features_in_),
            **self._learned_to_json(),
        }

    def _fit_data(self, X: Any, y: Any, feature_names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803 - scikit-learn's name for the data
        """The start of a supervised fit: check parameters, signals and labels, and record the signals."""
        self._check_params()
        x = check_signals(X)
        labels = _check_labels(y, x.shape[0])
        self._set_signals(x, feature_names)
        return x, labels

    def _set_signals(self, x: np.ndarray, feature_names: Sequence[str] | None) -> None:
        names = _check_feature_names(feature_names, x.shape[1])
        self.n_features_in_ = x.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            # A refit without names must not keep the names of an earlier fit.
            del self.feature_names_in_

    def _signal_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        return [f"x{i}" for i in range(self.n_features_in_)] if names is None else [str(n) for n in names]

    def _check_params(self) -> None:
        raise NotImplementedError

    def _predict_positive(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _params_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _learned_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        return params


def param_names(cls: type[BaseFusion]) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def _read_header(data: Any, cls: type[BaseFusion]) -> tuple[dict[str, Any], int, np.ndarray | None]:
    """Validate the fields every saved fusion shares; return (params, n_features, feature names).

    A parameter added after a model was saved (listed in ``cls.added_params`` with the value that
    reproduces the old behaviour) is filled in, so artifacts written by an earlier version still load.
    """
    if isinstance(data, Mapping) and isinstance(data.get("params"), Mapping):
        data = {**data, "params": {**cls.added_params, **data["params"]}}
    params = read_saved_header(
        data, owner=cls.__name__, kind=cls.kind, format_version=FORMAT_VERSION, params=param_names(cls)
    )
    n_features = check_int(data.get("n_features"), "n_features")
    return cls._params_from_json(params), n_features, _check_feature_names(data.get("feature_names"), n_features)


def check_signals(values: Any) -> np.ndarray:
    hint = " (one row per request, one column per signal: a single request is X.reshape(1, -1))"
    return as_float_array(values, "X", ndim=2, allow_nan=True, hint=hint)


def _check_labels(y: Any, n_samples: int) -> np.ndarray:
    labels = as_binary_labels(y, "y", n_rows=n_samples, per="row of X")
    require_both_classes(labels, "y")
    return labels


def _check_feature_names(names: Any, n_features: int) -> np.ndarray | None:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence | np.ndarray):
        raise ValueError(f"feature_names must be a sequence of strings; got {names!r}")
    names = list(names)
    if len(names) != n_features or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"feature_names must be {n_features} non-empty strings, one per column; got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"feature_names must be unique; got {names!r}")
    return np.array(names, dtype=object)


def sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))) never overflows, for any sign of z.
    return np.exp(-np.logaddexp(0.0, -z))
