"""The offline calibration report: held-out metrics, plots, decision mix and costs as HTML, Markdown and JSON.

:func:`write_report` takes a :class:`ReportData` (the held-out rows, the fused probability, each signal's
confidence, the chosen thresholds and the measured costs) and writes three views of the same content:
``report.html`` (self-contained: inline CSS, images as ``data:`` URIs, no scripts, no links),
``report.md`` (with the PNGs next to it) and ``metrics.json`` (strict JSON: NaN becomes null).
The numbers come from :mod:`calibration.metrics`; the drawing from :mod:`calibration.plots`; the page
layout from :mod:`calibration.report_render`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from calibration.metrics import summarize
from calibration.plots import ReliabilityDisplay, RiskCoverageDisplay, RocDisplay, agg_figure, figure_to_png_bytes
from calibration.report_data import ReportData
from calibration.report_render import FUSED, build_sections, render_html, render_markdown

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ReportData", "decision_mix", "report_figures", "report_metrics", "wilson_interval", "write_report"]

_N_BINS = 10
_CONFIDENCE_LEVEL = 0.95
_FUSED_STYLE = {"color": "black", "linewidth": 2.4, "zorder": 5}
_PANEL_COLUMNS = 4  # small multiples: panels per row
_PANEL_INCHES = 2.6  # small multiples: width and height of one panel
_PANEL_TICKS = (0.0, 0.5, 1.0)

# One curve of a figure: name, correctness and confidence on the rows it scored, line style.
_Series = tuple[str, np.ndarray, np.ndarray, dict[str, Any]]


# ---------------------------------------------------------------- numbers


def wilson_interval(k: int, n: int, confidence_level: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (sensible at 0 and n, unlike the normal one)."""
    z = NormalDist().inv_cdf(0.5 + confidence_level / 2)
    p = k / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def _proportion(k: int, n: int, confidence_level: float) -> dict[str, float]:
    if n == 0:
        return {"value": math.nan, "low": math.nan, "high": math.nan, "k": 0, "n": 0}
    low, high = wilson_interval(k, n, confidence_level)
    return {"value": k / n, "low": low, "high": high, "k": int(k), "n": int(n)}


def decision_mix(
    y_correct: np.ndarray,
    probability: np.ndarray,
    thresholds: Mapping[str, float],
    *,
    confidence_level: float = _CONFIDENCE_LEVEL,
) -> dict[str, Any]:
    """Rates of answer / hedge / abstain at the thresholds, and the error rates they leave.

    Parameters
    ----------
    y_correct : array-like of bool, shape (n,)
    probability : array-like of float, shape (n,)
        Fused probability of each row.
    thresholds : dict of str to float
        ``"abstain"`` and ``"hedge"``; answer when ``p >= hedge``, abstain when ``p < abstain``.
    confidence_level : float, default=0.95
        Level of the Wilson score intervals.

    Returns
    -------
    dict
        ``answer``, ``hedge``, ``abstain`` (fractions of all rows), ``error_answered``,
        ``error_answered_or_hedged`` and ``error_ungated`` (error rate of every row), each
        ``{"value", "low", "high", "k", "n"}``; and ``interval`` naming the interval method.
    """
    wrong = ~np.asarray(y_correct, dtype=bool)
    p = np.asarray(probability, dtype=np.float64)
    answer, abstain = p >= thresholds["hedge"], p < thresholds["abstain"]
    delivered = ~abstain

    def rate(k: np.ndarray, n: np.ndarray) -> dict[str, float]:
        return _proportion(int(k.sum()), int(n.sum()), confidence_level)

    everyone = np.ones_like(wrong)
    return {
        "interval": f"Wilson score interval, {confidence_level:.0%}",
        "answer": rate(answer, everyone),
        "hedge": rate(delivered & ~answer, everyone),
        "abstain": rate(abstain, everyone),
        "error_answered": rate(wrong & answer, answer),
        "error_answered_or_hedged": rate(wrong & delivered, delivered),
        "error_ungated": rate(wrong, everyone),
    }


def _summarize_scored(y: np.ndarray, c: np.ndarray, n_resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """summarize() on the rows where the signal has a value; only ``n`` when it has none."""
    scored = ~np.isnan(c)
    if not scored.any():
        return {"n": {"value": 0.0, "low": 0.0, "high": 0.0}}
    return summarize(y[scored], c[scored], n_bins=_N_BINS, n_resamples=n_resamples, seed=seed)


def report_metrics(data: ReportData, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every number of the report, as the content of ``metrics.json`` (NaN where undefined).

    Parameters
    ----------
    data : ReportData
    n_resamples : int, default=1000
        Bootstrap resamples of each metric interval.
    seed : int, default=0

    Returns
    -------
    dict
        ``title``, ``summary``, ``n_rows``, ``fused`` and ``signals`` (each a :func:`summarize` result;
        a signal's on its scored rows), ``thresholds``, ``threshold_notes``, ``decision_mix``,
        ``signal_costs``, ``request_costs``, ``extra_tables``.
    """
    return {
        "title": data.title,
        "summary": dict(data.summary),
        "n_rows": int(data.y_correct.size),
        FUSED: _summarize_scored(data.y_correct, data.fused, n_resamples, seed),
        "signals": {name: _summarize_scored(data.y_correct, c, n_resamples, seed) for name, c in data.signals.items()},
        "thresholds": dict(data.thresholds),
        "threshold_notes": list(data.threshold_notes),
        "decision_mix": decision_mix(data.y_correct, data.fused, data.thresholds),
        "signal_costs": data.signal_costs,
        "request_costs": data.request_costs,
        "extra_tables": data.extra_tables,
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types, with NaN and infinities as None so the output is strict JSON."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ---------------------------------------------------------------- figures


def _plot_text(name: str) -> str:
    """A name as matplotlib shows it verbatim ('$' would start mathtext)."""
    return name.replace("$", r"\$")


def _plot_label(name: str) -> str:
    """A legend label that matplotlib shows verbatim (a leading '_' would hide it from the legend)."""
    label = _plot_text(name)
    return "\u200b" + label if label.startswith("_") else label


def _series(data: ReportData) -> list[_Series]:
    """(name, y, confidence, line style) of the fused probability and of each signal on its scored rows."""
    series = [(FUSED, data.y_correct, data.fused, _FUSED_STYLE)]
    for index, (name, c) in enumerate(data.signals.items()):
        scored = ~np.isnan(c)
        if scored.any():
            style = {"color": f"C{index % 10}", "linewidth": 1.5}
            series.append((name, data.y_correct[scored], c[scored], style))
    return series


def _legend_outside(fig: Figure, ax: Axes) -> Figure:
    """``ax``'s legend outside the plot area, so it never hides a curve."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    return fig


def _reliability_figure(fused: _Series) -> Figure:
    """The fused probability alone: its reliability diagram, and its rows per bin underneath."""
    name, y, c, style = fused
    fig, (ax, ax_counts) = agg_figure(figsize=(9.0, 7.4), nrows=2, height_ratios=(3, 1.1))
    display = ReliabilityDisplay.from_predictions(y, c, n_bins=_N_BINS, name=_plot_label(name))
    display.plot(ax=ax, **style)
    display.plot_counts(ax=ax_counts, annotate=True, fill=True, facecolor="0.85", edgecolor="black", linewidth=1.2)
    ax.set_title("Reliability of the fused probability (marker area grows with the rows in the bin)", fontsize=11)
    ax_counts.set_title(f"Rows per confidence bin ({_N_BINS} equal-width bins)", fontsize=10)
    return _legend_outside(fig, ax)


def _signal_reliability_figure(series: Sequence[_Series]) -> Figure:
    """Small multiples: one reliability panel per signal, on shared axes and the same bins as the fused one."""
    ncols = min(_PANEL_COLUMNS, len(series))
    nrows = -(-len(series) // ncols)
    size = (max(_PANEL_INCHES * ncols, 5.2) + 0.4, _PANEL_INCHES * nrows + 0.6)  # wide enough for the title
    fig, grid = agg_figure(figsize=size, nrows=nrows, ncols=ncols, sharex=True, sharey=True, squeeze=False)
    cells = list(grid.flat)
    lowest = range(max(0, len(series) - ncols), len(series))  # the lowest panel of each column
    for index, (ax, (name, y, c, style)) in enumerate(zip(cells, series, strict=False)):
        ReliabilityDisplay.from_predictions(y, c, n_bins=_N_BINS, name=_plot_label(name)).plot(ax=ax, **style)
        ax.set(xticks=_PANEL_TICKS, yticks=_PANEL_TICKS, box_aspect=1)
        ax.set_xlabel("mean confidence in bin" if index in lowest else "", fontsize=9)
        ax.set_ylabel("fraction correct in bin" if index % ncols == 0 else "", fontsize=9)
        ax.xaxis.set_tick_params(labelbottom=index in lowest)  # a panel above an empty cell keeps its ticks
        ax.set_title(_plot_text(name), fontsize=9)
        ax.text(0.04, 0.96, f"n = {y.size}", transform=ax.transAxes, va="top", fontsize=8, color="0.3")
    for ax in cells[len(series) :]:
        fig.delaxes(ax)
    fig.get_layout_engine().set(wspace=0.05, hspace=0.05)  # keeps neighbouring tick labels apart
    fig.suptitle("Reliability of each signal, on the rows it scored", fontsize=11)
    return fig


def _risk_coverage_figure(series: Sequence[_Series], thresholds: Mapping[str, float]) -> Figure:
    fig, ax = agg_figure(figsize=(9.6, 5.4))
    marks = {
        f"answer (p \u2265 {thresholds['hedge']:.2f})": thresholds["hedge"],
        f"answer or hedge (p \u2265 {thresholds['abstain']:.2f})": thresholds["abstain"],
    }
    for index, (name, y, c, style) in enumerate(series):
        thresholds_here = marks if index == 0 else None  # the thresholds act on the fused probability only
        RiskCoverageDisplay.from_predictions(y, c, name=_plot_label(name), thresholds=thresholds_here).plot(
            ax=ax, **style
        )
    ax.set_title("Risk-coverage: error rate among the most confident answers", fontsize=11)
    return _legend_outside(fig, ax)


def _roc_figure(series: Sequence[_Series]) -> Figure:
    fig, ax = agg_figure(figsize=(9.0, 6.2))
    for name, y, c, style in series:
        if 0 < y.sum() < y.size:  # ROC is undefined with one class; the table says n/a
            RocDisplay.from_predictions(y, c, name=_plot_label(name)).plot(ax=ax, **style)
    ax.set_title("ROC: confidence as a detector of correct answers", fontsize=11)
    return _legend_outside(fig, ax)


def report_figures(data: ReportData) -> dict[str, Figure]:
    """The report's figures, by the name of their PNG.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``"reliability"`` (the fused probability alone, with its rows per bin), ``"reliability_signals"``
        (one small panel per signal with a value on some row; absent when none has), ``"risk_coverage"``
        and ``"roc"`` (the fused probability and every signal on one axes).
    """
    fused, *signals = _series(data)
    figures = {"reliability": _reliability_figure(fused)}
    if signals:
        figures["reliability_signals"] = _signal_reliability_figure(signals)
    figures["risk_coverage"] = _risk_coverage_figure([fused, *signals], data.thresholds)
    figures["roc"] = _roc_figure([fused, *signals])
    return figures


# ---------------------------------------------------------------- output


def write_report(data: ReportData, out_dir: Path, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Path]:
    """Write ``report.html``, ``report.md``, ``metrics.json`` and the figures' PNGs into ``out_dir``.

    Parameters
    ----------
    data : ReportData
    out_dir : path
        Created if missing; existing report files in it are overwritten.
    n_resamples : int, default=1000
        Bootstrap resamples of each metric interval (about 5 s per signal at 1000 on 300 rows).
    seed : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    dict of str to Path
        ``"html"``, ``"markdown"``, ``"json"`` and one entry per figure of :func:`report_figures`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = report_metrics(data, n_resamples=n_resamples, seed=seed)
    images = {name: figure_to_png_bytes(figure) for name, figure in report_figures(data).items()}
    sections = build_sections(data, metrics, n_resamples=n_resamples, n_bins=_N_BINS)
    paths = {"html": out_dir / "report.html", "markdown": out_dir / "report.md", "json": out_dir / "metrics.json"}
    for name, png in images.items():
        paths[name] = out_dir / f"{name}.png"
        paths[name].write_bytes(png)
    paths["json"].write_text(json.dumps(_jsonable(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    image_files = {name: f"{name}.png" for name in images}
    paths["markdown"].write_text(render_markdown(data.title, sections, image_files), encoding="utf-8")
    paths["html"].write_text(render_html(data.title, sections, images), encoding="utf-8")
    return paths
