"""What every calibrator shares: the scikit-learn-shaped base class, its input checks and JSON persistence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from calibration._validation import (
    FloatArray,
    as_binary_labels,
    as_float_array,
    check_int,
    read_saved_header,
    require_both_classes,
)

__all__ = ["FORMAT_VERSION", "BaseCalibrator", "check_fit_data", "sigmoid"]

FORMAT_VERSION = 1


def sigmoid(z: FloatArray) -> FloatArray:
    # exp(-log(1 + exp(-z))) never overflows, unlike 1 / (1 + exp(-z)) for very negative z.
    return np.exp(-np.logaddexp(0.0, -z))


def check_fit_data(scores: ArrayLike, y_correct: ArrayLike) -> tuple[FloatArray, NDArray[np.int64]]:
    s = as_float_array(scores, "scores")
    y = as_binary_labels(y_correct, "y_correct", n_rows=s.shape[0], per="score")
    if s.shape[0] < 2:
        raise ValueError(f"a calibrator needs at least 2 rows; got {s.shape[0]}")
    require_both_classes(y, "y_correct")
    return s, y


class BaseCalibrator(BaseEstimator):
    """The shared contract: validation, the fitted check, ``predict`` and JSON persistence.

    Subclasses set ``kind`` and implement ``_fit``, ``_predict``, ``_learned_to_json`` and
    ``_load_learned``; constructor arguments are their only parameters.

    Attributes
    ----------
    n_samples_ : int
        Rows seen by ``fit`` (or recorded in the loaded dict).
    """

    kind: ClassVar[str]

    def fit(self, scores: ArrayLike, y_correct: ArrayLike) -> Self:
        """Learn the map from score to P(correct).

        Parameters
        ----------
        scores : array-like of shape (n_samples,)
            Fused scores, higher meaning more likely correct.
        y_correct : array-like of shape (n_samples,)
            1 (or True) where the answer was correct, else 0.

        Returns
        -------
        self
            The fitted calibrator.

        Raises
        ------
        ValueError
            If the inputs are not 1-D and of equal length, hold non-finite scores or non-binary labels,
            have fewer than 2 rows or a single class, or the parameters are invalid.
        """
        self._check_params()
        s, y = check_fit_data(scores, y_correct)
        self._check_scores(s)
        self._fit(s, y)
        self.n_samples_ = int(s.shape[0])
        return self

    def predict(self, scores: ArrayLike) -> FloatArray:
        """Calibrated P(correct) for each score.

        Parameters
        ----------
        scores : array-like of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,)
            Probabilities in [0, 1].

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the calibrator is neither fitted nor loaded with ``from_dict``.
        """
        check_is_fitted(self)
        s = as_float_array(scores, "scores")
        self._check_scores(s)
        return np.clip(self._predict(s), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """The fitted calibrator as a dict of JSON types (``json.dumps`` works on it as is).

        Returns
        -------
        dict
            ``kind``, ``format_version``, ``params`` (the constructor arguments), ``n_samples`` and the
            learned numbers (see each class).
        """
        check_is_fitted(self)
        # The parameter checks accept numpy scalars (np.int64 bins), which json.dumps does not.
        params = {key: v.item() if isinstance(v, np.generic) else v for key, v in self.get_params().items()}
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "params": params,
            "n_samples": self.n_samples_,
            **self._learned_to_json(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a fitted calibrator from :meth:`to_dict` output (e.g. after a JSON round trip).

        Parameters
        ----------
        data : mapping
            What ``to_dict`` returned, with this class's ``kind``.

        Returns
        -------
        A fitted calibrator whose predictions are identical to the saved one's.

        Raises
        ------
        ValueError
            If the kind, format version, parameters, learned numbers or their lengths are not valid.
        """
        params = read_saved_header(
            data, owner=cls.__name__, kind=cls.kind, format_version=FORMAT_VERSION, params=cls().get_params()
        )
        n_samples = check_int(data.get("n_samples"), "n_samples", minimum=2)
        calibrator = cls(**params)
        calibrator._check_params()
        calibrator._load_learned(data)
        calibrator.n_samples_ = n_samples
        return calibrator

    def _check_params(self) -> None:
        """Raise ValueError for invalid constructor arguments (none by default)."""

    def _check_scores(self, s: FloatArray) -> None:
        """Raise ValueError for scores this kind cannot use (any finite score by default)."""

    def _fit(self, s: FloatArray, y: NDArray[np.int64]) -> None:
        raise NotImplementedError

    def _predict(self, s: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _learned_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_learned(self, data: Mapping[str, Any]) -> None:
        raise NotImplementedError
