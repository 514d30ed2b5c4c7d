"""Display objects for calibration plots: ``from_predictions`` computes, ``plot`` draws.

Shaped like scikit-learn's ``CalibrationDisplay``: a display stores the numbers it will draw, the
``from_predictions`` classmethod computes them with the functions of :mod:`calibration.metrics`, and
``plot(ax=None)`` draws them, storing ``line_``, ``ax_`` and ``figure_``. Unlike scikit-learn,
``from_predictions`` does not plot, so the numbers can be computed (and tested) without matplotlib.
Several curves share one axes by calling ``plot(ax=ax)`` on each display.

matplotlib is imported only inside the drawing functions. Figures are built on an explicit Agg canvas
(:func:`agg_figure`) rather than through ``matplotlib.use("Agg")``, so writing a report never changes
the backend of the calling process (a notebook keeps its inline backend).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from calibration.metrics import auroc, reliability_curve, risk_coverage_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ReliabilityDisplay",
    "RiskCoverageDisplay",
    "RocDisplay",
    "agg_figure",
    "figure_to_png_bytes",
]

_MARKER_AREA_RANGE = (12.0, 160.0)  # points^2 of the smallest and largest reliability bin markers
_MARK_SHAPES = ("D", "s", "^", "v", "P", "X")  # one per marked threshold of a risk-coverage curve


def agg_figure(*, figsize: tuple[float, float] = (6.4, 4.8), **subplots_kw: Any) -> tuple[Figure, Any]:
    """Create a figure on an Agg canvas, outside pyplot, and its axes.

    Parameters
    ----------
    figsize : tuple of float, default=(6.4, 4.8)
        Width and height in inches.
    **subplots_kw
        Passed to :meth:`matplotlib.figure.Figure.subplots` (``nrows``, ``ncols``, ``height_ratios``...).

    Returns
    -------
    figure : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes or array of Axes
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**subplots_kw)


def figure_to_png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int, default=110

    Returns
    -------
    bytes
        The PNG file content.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _axes_or_new(ax: Axes | None) -> Axes:
    return agg_figure()[1] if ax is None else ax


def _draw_diagonal_once(ax: Axes, label: str) -> None:
    """Draw the y = x reference line unless an earlier display on this axes already did."""
    if all(line.get_label() != label for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], linestyle=":", color="0.5", linewidth=1, label=label)


class ReliabilityDisplay:
    """Reliability diagram: accuracy against mean confidence per confidence bin.

    Parameters
    ----------
    mean_confidence, accuracy, count : ndarray of shape (n_nonempty_bins,)
        Per non-empty bin: mean confidence, fraction correct and number of rows.
    edges : ndarray of shape (n_bins + 1,)
        Edges of all bins, empty ones included.
    name : str, default=None
        Label of the curve in a legend.

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
        The curve, after :meth:`plot`.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure
    """

    def __init__(
        self,
        mean_confidence: np.ndarray,
        accuracy: np.ndarray,
        count: np.ndarray,
        edges: np.ndarray,
        *,
        name: str | None = None,
    ) -> None:
        self.mean_confidence = mean_confidence
        self.accuracy = accuracy
        self.count = count
        self.edges = edges
        self.name = name

    @classmethod
    def from_predictions(
        cls, y: np.ndarray, c: np.ndarray, *, n_bins: int = 10, strategy: str = "uniform", name: str | None = None
    ) -> Self:
        """Compute the reliability curve of confidences ``c`` for correctness ``y``.

        Parameters
        ----------
        y : array-like of bool, shape (n,)
            Whether each answer was correct.
        c : array-like of float, shape (n,)
            Confidence in [0, 1], higher meaning more likely correct.
        n_bins : int, default=10
        strategy : {"uniform", "quantile"}, default="uniform"
        name : str, default=None

        Returns
        -------
        ReliabilityDisplay
        """
        curve = reliability_curve(y, c, n_bins=n_bins, strategy=strategy)
        return cls(curve.mean_confidence, curve.accuracy, curve.count, curve.edges, name=name)

    def plot(self, *, ax: Axes | None = None, ref_line: bool = True, **kwargs: Any) -> Self:
        """Draw the curve; marker area grows with the number of rows in the bin.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure is created when None.
        ref_line : bool, default=True
            Draw the diagonal of perfect calibration (once per axes).
        **kwargs
            Passed to :meth:`matplotlib.axes.Axes.plot` (``color``, ``linewidth``...).

        Returns
        -------
        ReliabilityDisplay
            self, with ``line_``, ``ax_`` and ``figure_`` set.
        """
        ax = _axes_or_new(ax)
        x, y = np.asarray(self.mean_confidence), np.asarray(self.accuracy)
        if ref_line:
            _draw_diagonal_once(ax, "perfectly calibrated")
        (self.line_,) = ax.plot(x, y, label=self.name, **kwargs)
        ax.scatter(x, y, s=self._marker_areas(), color=self.line_.get_color(), alpha=0.8, zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence in bin", ylabel="fraction correct in bin")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def _marker_areas(self) -> np.ndarray:
        count = np.asarray(self.count, dtype=float)
        low, high = _MARKER_AREA_RANGE
        return low + (high - low) * count / max(count.max(initial=0.0), 1.0)

    def _counts_of_all_bins(self) -> np.ndarray:
        """Counts per bin of ``edges``, empty bins included (the curve holds the non-empty ones only)."""
        edges = np.asarray(self.edges)
        counts = np.zeros(len(edges) - 1)
        counts[np.searchsorted(edges[1:-1], self.mean_confidence, side="right")] = self.count
        return counts

    def plot_counts(self, *, ax: Axes, annotate: bool = False, **kwargs: Any) -> Self:
        """Draw the number of rows per bin as a step histogram on ``ax`` (for a panel under the diagram).

        Parameters
        ----------
        ax : matplotlib.axes.Axes
        annotate : bool, default=False
            Write each non-empty bin's count above it.
        **kwargs
            Passed to :meth:`matplotlib.axes.Axes.stairs`.

        Returns
        -------
        ReliabilityDisplay
            self.
        """
        counts, edges = self._counts_of_all_bins(), np.asarray(self.edges)
        ax.stairs(counts, edges, label=self.name, **kwargs)
        if annotate:
            centres = (edges[:-1] + edges[1:]) / 2
            for x, n in zip(centres, counts, strict=True):
                if n:
                    ax.annotate(f"{n:.0f}", (x, n), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
            ax.set_ylim(0, max(counts.max(initial=0.0), 1.0) * 1.25)  # room for the numbers
        ax.set(xlim=(0, 1), xlabel="confidence", ylabel="rows in bin")
        return self


def _operating_point(y: np.ndarray, c: np.ndarray, threshold: float) -> tuple[float, float]:
    """Coverage and error rate when accepting the rows with confidence >= threshold."""
    accepted = np.asarray(c) >= threshold
    if not accepted.any():
        return 0.0, float("nan")
    return float(accepted.mean()), float(1.0 - np.asarray(y, dtype=bool)[accepted].mean())


class RiskCoverageDisplay:
    """Risk-coverage curve: error rate among accepted rows against the fraction accepted.

    Parameters
    ----------
    coverage, risk : ndarray of shape (n_points,)
        Fraction of rows accepted and error rate among them, at each confidence threshold.
    marks : dict of str to (float, float), default=None
        Named operating points ``name -> (coverage, risk)``, drawn as markers (up to six) whose legend
        label gives the coverage and the error rate.
    name : str, default=None

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure
    """

    def __init__(
        self,
        coverage: np.ndarray,
        risk: np.ndarray,
        *,
        marks: Mapping[str, tuple[float, float]] | None = None,
        name: str | None = None,
    ) -> None:
        self.coverage = coverage
        self.risk = risk
        self.marks = marks
        self.name = name

    @classmethod
    def from_predictions(
        cls, y: np.ndarray, c: np.ndarray, *, name: str | None = None, thresholds: Mapping[str, float] | None = None
    ) -> Self:
        """Compute the curve and the operating point of each threshold.

        Parameters
        ----------
        y : array-like of bool, shape (n,)
        c : array-like of float, shape (n,)
        name : str, default=None
        thresholds : dict of str to float, default=None
            Thresholds to mark, e.g. ``{"hedge": 0.6, "abstain": 0.3}``; each is drawn at the coverage
            it gives (the fraction of rows with ``c >= threshold``) and the error rate among those rows.

        Returns
        -------
        RiskCoverageDisplay
        """
        curve = risk_coverage_curve(y, c)
        marks = {label: _operating_point(y, c, t) for label, t in (thresholds or {}).items()}
        return cls(curve.coverage, curve.risk, marks=marks, name=name)

    def plot(self, *, ax: Axes | None = None, **kwargs: Any) -> Self:
        """Draw the curve and its marked operating points.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
        **kwargs
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        Returns
        -------
        RiskCoverageDisplay
            self, with ``line_``, ``ax_`` and ``figure_`` set.
        """
        ax = _axes_or_new(ax)
        (self.line_,) = ax.plot(self.coverage, self.risk, label=self.name, **kwargs)
        for (label, (coverage, risk)), marker in zip((self.marks or {}).items(), _MARK_SHAPES, strict=False):
            if np.isfinite(risk):
                ax.plot(
                    [coverage],
                    [risk],
                    marker=marker,
                    markersize=10,
                    markerfacecolor="white",
                    markeredgecolor=self.line_.get_color(),
                    markeredgewidth=2,
                    linestyle="none",
                    zorder=6,
                    label=f"{label}: coverage {coverage:.0%}, error {risk:.1%}",
                )
        ax.set(
            xlim=(0, 1.02), ylim=(0, None), xlabel="coverage (fraction accepted)", ylabel="error rate among accepted"
        )
        self.ax_, self.figure_ = ax, ax.figure
        return self


class RocDisplay:
    """ROC curve of confidence as a detector of correct answers (positive class: correct).

    Parameters
    ----------
    fpr, tpr : ndarray of shape (n_points,)
        False and true positive rates at each threshold (from :func:`sklearn.metrics.roc_curve`).
    roc_auc : float, default=None
        Area under the curve, shown in the legend label.
    name : str, default=None

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure
    """

    def __init__(
        self, fpr: np.ndarray, tpr: np.ndarray, *, roc_auc: float | None = None, name: str | None = None
    ) -> None:
        self.fpr = fpr
        self.tpr = tpr
        self.roc_auc = roc_auc
        self.name = name

    @classmethod
    def from_predictions(cls, y: np.ndarray, c: np.ndarray, *, name: str | None = None) -> Self:
        """Compute the ROC curve.

        Parameters
        ----------
        y : array-like of bool, shape (n,)
        c : array-like of float, shape (n,)
        name : str, default=None

        Returns
        -------
        RocDisplay

        Raises
        ------
        ValueError
            If ``y`` does not contain both correct and incorrect answers.
        """
        from sklearn.metrics import roc_curve

        y = np.asarray(y, dtype=bool)
        if y.all() or not y.any():
            raise ValueError(
                f"A ROC curve needs correct and incorrect answers; got {y.size} rows, {int(y.sum())} correct."
            )
        fpr, tpr, _ = roc_curve(y, np.asarray(c, dtype=float))
        return cls(fpr, tpr, roc_auc=float(auroc(y, c)), name=name)

    def plot(self, *, ax: Axes | None = None, chance_line: bool = True, **kwargs: Any) -> Self:
        """Draw the curve; the legend label carries the AUROC.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
        chance_line : bool, default=True
            Draw the diagonal of a random score (once per axes).
        **kwargs
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        Returns
        -------
        RocDisplay
            self, with ``line_``, ``ax_`` and ``figure_`` set.
        """
        ax = _axes_or_new(ax)
        if chance_line:
            _draw_diagonal_once(ax, "chance")
        label = self.name if self.roc_auc is None else f"{self.name or 'ROC'} (AUROC {self.roc_auc:.3f})"
        (self.line_,) = ax.plot(self.fpr, self.tpr, label=label, **kwargs)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.01),
            xlabel="false positive rate (wrong answers accepted)",
            ylabel="true positive rate (correct answers accepted)",
        )
        self.ax_, self.figure_ = ax, ax.figure
        return self
