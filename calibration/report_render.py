"""Lay out the calibration report once, as sections of text blocks, and render it to HTML and Markdown.

:func:`build_sections` turns a :class:`~calibration.report_data.ReportData` and its computed numbers into
:class:`Section` objects of :class:`Paragraph`, :class:`Table` and :class:`Image` blocks holding plain
text; :func:`render_html` and :func:`render_markdown` decide how that looks. All text is escaped in the
renderers, once, because signal names and summary values come from users.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.report_data import ReportData

__all__ = [
    "FUSED",
    "Image",
    "Paragraph",
    "Section",
    "Table",
    "build_sections",
    "render_html",
    "render_markdown",
]

FUSED = "fused"
_COST_KEYS = ("calls", "tokens", "seconds")
# (column header, key in calibration.metrics.summarize()) of the per-signal table.
_SIGNAL_METRICS = (
    ("AUROC", "auroc"),
    ("AUPRC-error", "auprc_error"),
    ("ECE", "ece"),
    ("Brier", "brier"),
    ("PRR", "prr"),
    ("AURC", "aurc"),
)


@dataclass(frozen=True)
class Paragraph:
    """A line of text."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``rows`` are aligned with ``header``.

    A cell's lines after the first are secondary (an interval under its value): HTML shows them small
    on their own line, Markdown on the same line.
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A figure, by the name of its PNG (``name + ".png"``), with alternative text and a caption."""

    name: str
    alt: str
    caption: str = ""


Block = Paragraph | Table | Image


@dataclass(frozen=True)
class Section:
    """A heading and its blocks, in display order; ``level`` 2 is a section, 3 a subsection."""

    heading: str
    blocks: Sequence[Block] = field(default_factory=tuple)
    level: int = 2


# ---------------------------------------------------------------- what the report says


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def _format(value: float, percent: bool) -> str:
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _bounds(entry: Mapping[str, float], *, percent: bool = False) -> str:
    """'[0.770, 0.851]'; empty when the interval is undefined."""
    if not (math.isfinite(entry["low"]) and math.isfinite(entry["high"])):
        return ""
    return f"[{_format(entry['low'], percent)}, {_format(entry['high'], percent)}]"


def _value(entry: Mapping[str, float] | None, *, percent: bool = False) -> str:
    """'0.812' (or a percentage); 'n/a' when undefined."""
    if entry is None or not math.isfinite(entry["value"]):
        return "n/a"
    return _format(entry["value"], percent)


def _interval(entry: Mapping[str, float] | None, *, percent: bool = False, sep: str = " ") -> str:
    """'0.812 [0.770, 0.851]' (or percentages), value and bounds joined by ``sep``; 'n/a' when undefined."""
    value = _value(entry, percent=percent)
    bounds = _bounds(entry, percent=percent) if entry is not None and value != "n/a" else ""
    return value + (sep + bounds if bounds else "")


def _summary_section(data: ReportData, metrics: Mapping[str, Any]) -> Section:
    rows = [[key, value] for key, value in data.summary.items()]
    rows.append(["rows in this report", _number(metrics["n_rows"])])
    rows.append(["accuracy without the gate", _value(metrics[FUSED]["accuracy"], percent=True)])
    return Section("Summary", [Table(["item", "value"], rows)])


def _fused_costs(signal_costs: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {key: sum(costs.get(key, 0.0) for costs in signal_costs.values()) for key in _COST_KEYS}


def _signal_row(name: str, summary: Mapping[str, Mapping[str, float]], costs: Mapping[str, float] | None) -> list[str]:
    cells = [name, _number(summary["n"]["value"])]
    cells += [_interval(summary.get(key), sep="\n") for _, key in _SIGNAL_METRICS]
    return cells + [_number(costs[key]) if costs and key in costs else "n/a" for key in _COST_KEYS]


def _signals_section(data: ReportData, metrics: Mapping[str, Any], n_resamples: int, n_bins: int) -> Section:
    rows = [_signal_row(FUSED, metrics[FUSED], _fused_costs(data.signal_costs) if data.signal_costs else None)]
    rows += [_signal_row(name, summary, data.signal_costs.get(name)) for name, summary in metrics["signals"].items()]
    header = ["signal", "n scored", *(label for label, _ in _SIGNAL_METRICS), *_COST_KEYS]
    caption = (
        f"Value and [95% percentile bootstrap interval, {n_resamples} resamples]. Each signal is scored on the "
        f"rows where it has a value. ECE uses {n_bins} equal-width bins. AUPRC-error: average precision of catching "
        "wrong answers. PRR: prediction-rejection ratio (1 = oracle, 0 = random). AURC: lower is better. "
        "Costs are means per request; the fused row's cost is the sum of the signals' costs."
    )
    return Section("Signals: fused probability against each signal", [Table(header, rows, caption)])


def _figure_sections(data: ReportData) -> list[Section]:
    if data.scored_signals():
        per_signal: Block = Image(
            "reliability_signals",
            "Reliability diagram of each signal, one small panel per signal",
            "One panel per signal that has values, titled with its name and the rows it scored (its curve uses "
            "those rows only); the same bins and axes as the fused diagram. Marker area grows with the rows in "
            "the bin; dotted: perfect calibration.",
        )
    else:
        per_signal = Paragraph("No signal has a value on any row of this report.")
    return [
        Section(
            "Reliability",
            [
                Image(
                    "reliability",
                    "Reliability diagram of the fused probability, with its rows per bin",
                    "The fused probability the decisions use; dotted: perfect calibration. Below: rows per bin.",
                )
            ],
        ),
        Section("Reliability of each signal", [per_signal], level=3),
        Section(
            "Risk-coverage",
            [
                Image(
                    "risk_coverage",
                    "Risk-coverage curves with the chosen thresholds",
                    "Markers: the coverage and error rate the chosen thresholds give the fused "
                    "probability. A signal's coverage is relative to the rows it scored.",
                )
            ],
        ),
        Section(
            "ROC",
            [
                Image(
                    "roc",
                    "ROC curves of the fused probability and each signal",
                    "Signals whose scored rows are all correct or all wrong have no ROC curve.",
                )
            ],
        ),
    ]


def _decision_section(data: ReportData, mix: Mapping[str, Any]) -> Section:
    t = data.thresholds
    rule = (
        f"Answer when p \u2265 {t['hedge']:.3f}; hedge when {t['abstain']:.3f} \u2264 p < {t['hedge']:.3f}; "
        f"abstain when p < {t['abstain']:.3f}."
    )
    labels = [
        ("answer", "answer rate"),
        ("hedge", "hedge rate"),
        ("abstain", "abstain rate"),
        ("error_answered", "error rate among answered"),
        ("error_answered_or_hedged", "error rate among answered or hedged"),
        ("error_ungated", "error rate without the gate (all rows)"),
    ]
    rows = [
        [
            label,
            _value(mix[key], percent=True),
            _bounds(mix[key], percent=True) or "n/a",
            f"{mix[key]['k']}/{mix[key]['n']}",
        ]
        for key, label in labels
    ]
    caption = f"Intervals: {mix['interval']}, on the rows in this report."
    notes = [Paragraph(note) for note in data.threshold_notes]
    table = Table(["quantity", "rate", "95% interval", "count"], rows, caption)
    return Section("Decision mix at the chosen thresholds", [Paragraph(rule), *notes, table])


def _cost_section(data: ReportData) -> Section:
    if not data.request_costs:
        return Section("Cost per request", [Paragraph("No request costs were recorded.")])
    rows = [
        [name, *(_number(costs.get(key, math.nan)) for key in _COST_KEYS)] for name, costs in data.request_costs.items()
    ]
    return Section("Cost per request", [Table(["configuration", *_COST_KEYS], rows, "Mean per request.")])


def _extra_sections(data: ReportData) -> list[Section]:
    sections = []
    for title, records in data.extra_tables.items():
        columns = list(dict.fromkeys(key for record in records for key in record))
        rows = [[_number(record.get(column, "")) for column in columns] for record in records]
        sections.append(Section(title, [Table(columns, rows)]))
    return sections


def build_sections(data: ReportData, metrics: Mapping[str, Any], *, n_resamples: int, n_bins: int) -> list[Section]:
    """The report's content, in order, as text blocks ready for :func:`render_html` / :func:`render_markdown`.

    Parameters
    ----------
    data : ReportData
    metrics : dict
        The result of :func:`calibration.report.report_metrics` for ``data``.
    n_resamples : int
        Bootstrap resamples behind the intervals (stated in a caption).
    n_bins : int
        Bins of the ECE (stated in a caption).

    Returns
    -------
    list of Section
    """
    return [
        _summary_section(data, metrics),
        _signals_section(data, metrics, n_resamples, n_bins),
        *_figure_sections(data),
        _decision_section(data, metrics["decision_mix"]),
        _cost_section(data),
        *_extra_sections(data),
    ]


# ---------------------------------------------------------------- how it looks

_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: #1d2125;
       max-width: 1180px; margin: 24px auto; padding: 0 24px; line-height: 1.45; }
h1 { font-size: 26px; border-bottom: 2px solid #1d2125; padding-bottom: 6px; }
h2 { font-size: 20px; margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 24px; }
p { margin: 6px 0; }
.table-wrap { overflow-x: auto; margin: 10px 0 18px; }
table { border-collapse: collapse; font-size: 13px; }
caption { caption-side: bottom; text-align: left; color: #57606a; font-size: 12px; padding-top: 6px; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; white-space: nowrap; }
th { background: #f3f5f7; text-align: left; }
td { font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
.sub { color: #57606a; font-size: 11px; }
figure { margin: 14px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e7eb; }
figcaption { color: #57606a; font-size: 13px; margin-top: 4px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(text: str) -> str:
    first, *rest = str(text).split("\n")
    return _e(first) + "".join(f'<br><span class="sub">{_e(line)}</span>' for line in rest)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    return f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_image(image: Image, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = f"<figcaption>{_e(image.caption)}</figcaption>" if image.caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(image.alt)}">{caption}</figure>'


def _html_block(block: Block, images: Mapping[str, bytes]) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    return _html_image(block, images[block.name])


def render_html(title: str, sections: Sequence[Section], images: Mapping[str, bytes]) -> str:
    """Render a self-contained HTML page: inline CSS, images as base64 ``data:`` URIs, no scripts or links.

    Parameters
    ----------
    title : str
    sections : sequence of Section
    images : mapping of str to bytes
        PNG content of every :class:`Image` block, by name.

    Returns
    -------
    str
    """
    parts = [f"<h1>{_e(title)}</h1>"]
    for section in sections:
        parts.append(f"<h{section.level}>{_e(section.heading)}</h{section.level}>")
        parts.extend(_html_block(block, images) for block in section.blocks)
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


_MD_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_[]|"})


def _md_text(text: object) -> str:
    """Escape for Markdown: HTML entities (renderers pass raw HTML through), then emphasis, links and pipes."""
    return html.escape(" ".join(str(text).split()), quote=False).translate(_MD_SPECIAL)


def _md_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(_md_text(cell) for cell in table.header) + " |",
        "|" + "---|" * len(table.header),
        *("| " + " | ".join(_md_text(cell) for cell in row) + " |" for row in table.rows),
    ]
    if table.caption:
        lines.append(f"\n*{_md_text(table.caption)}*")
    return "\n".join(lines)


def _md_block(block: Block, image_files: Mapping[str, str]) -> str:
    if isinstance(block, Paragraph):
        return _md_text(block.text)
    if isinstance(block, Table):
        return _md_table(block)
    caption = f"\n\n*{_md_text(block.caption)}*" if block.caption else ""
    return f"![{_md_text(block.alt)}]({image_files[block.name]}){caption}"


def render_markdown(title: str, sections: Sequence[Section], image_files: Mapping[str, str]) -> str:
    """Render the same content as Markdown, images referenced by relative file name.

    Parameters
    ----------
    title : str
    sections : sequence of Section
    image_files : mapping of str to str
        Relative path of the PNG of every :class:`Image` block, by name.

    Returns
    -------
    str
    """
    parts = [f"# {_md_text(title)}"]
    for section in sections:
        parts.append(f"{'#' * section.level} {_md_text(section.heading)}")
        parts.extend(_md_block(block, image_files) for block in section.blocks)
    return "\n\n".join(parts) + "\n"
