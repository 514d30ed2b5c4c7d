"""The calibration report: files, strict JSON, escaping, decision-mix arithmetic, and a real Chromium render."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibration.report import ReportData, decision_mix, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"', re.IGNORECASE)
CHROMIUM_TIMEOUT_S = 60
# Test-only: after load, put the number of images and of broken ones in the title, for --dump-dom to show.
BROKEN_IMAGE_PROBE = (
    '<script>window.addEventListener("load", () => { const imgs = [...document.images];'
    " const broken = imgs.filter((i) => !i.complete || i.naturalWidth === 0).length;"
    " document.title = `images=${imgs.length} broken=${broken}`; });</script>"
)


def _synthetic(n: int = 300, seed: int = 0) -> ReportData:
    """A fused probability close to the truth and three noisier signals, two with missing values."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(-0.3, 1.6, n)
    y = rng.random(n) < 1 / (1 + np.exp(-latent))

    def signal(noise: float, missing: float, scale: float = 1.0) -> np.ndarray:
        c = 1 / (1 + np.exp(-(scale * latent + rng.normal(0, noise, n))))
        c[rng.random(n) < missing] = np.nan
        return c

    return ReportData(
        title="Calibration report: synthetic held-out sample",
        summary={
            "model": "gemma3-270m (synthetic)",
            "fitted on (the artifact's data)": f"synthetic {5 * n} ({5 * n} rows); split fit {2 * n}, "
            f"calibrate {n}, threshold {n}, test {n} (seed 0)",
            "evaluated on (the rows in this report)": f"the artifact's held-out test split: synthetic {n} ({n} rows)",
            "artifact": "test-artifact v1",
            "fusion": "logistic",
            "calibrator": "isotonic",
            "target": "error among answered <= 20%, delta 0.1",
        },
        y_correct=y,
        fused=1 / (1 + np.exp(-(latent + rng.normal(0, 0.3, n)))),
        signals={
            "consistency": signal(0.8, 0.0),
            "verbalized": signal(1.5, 0.2, 2.0),
            "self_familiarity": signal(2.5, 0.4, 0.5),
        },
        thresholds={"abstain": 0.3, "hedge": 0.6},
        threshold_notes=["Target 20% error among answered: feasible."],
        signal_costs={
            "consistency": {"calls": 5, "tokens": 410.5, "seconds": 1.9},
            "verbalized": {"calls": 1, "tokens": 120, "seconds": 0.4},
            "self_familiarity": {"calls": 3, "tokens": 300, "seconds": 1.1},
        },
        request_costs={
            "full pipeline": {"calls": 10, "tokens": 900, "seconds": 3.6},
            "with cascade": {"calls": 4.2, "tokens": 410, "seconds": 1.5},
        },
        extra_tables={
            "Calibrator comparison": [
                {"calibrator": "isotonic", "ECE": 0.031},
                {"calibrator": "platt", "ECE": 0.045, "note": "baseline"},
            ]
        },
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportData, dict[str, Path]]:
    data = _synthetic()
    return data, write_report(data, tmp_path_factory.mktemp("report"), n_resamples=100)


HOSTILE = "<script>alert(1)</script>"


def _edge() -> ReportData:
    """Hostile names, a signal whose scored rows are all correct, and a signal that never scored."""
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.5
    all_correct = np.where(y, 0.8, np.nan)
    return ReportData(
        title="Edge <cases> & more",
        summary={"model": '<b>bold</b> & "quoted" | piped'},
        y_correct=y,
        fused=rng.random(60),
        signals={HOSTILE: rng.random(60), "one class": all_correct, "never": np.full(60, np.nan)},
        thresholds={"abstain": 0.4, "hedge": 0.4},
    )


@pytest.fixture(scope="module")
def edge_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_report(_edge(), tmp_path_factory.mktemp("edge"), n_resamples=20)


def _strict_json(path: Path) -> dict:
    def reject(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


# ---------------------------------------------------------------- files and content


def test_writes_every_file(report: tuple[ReportData, dict[str, Path]]) -> None:
    _, paths = report
    assert {"html", "markdown", "json", "reliability", "reliability_signals", "risk_coverage", "roc"} <= set(paths)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    assert {p.name for p in paths.values()} >= {"report.html", "report.md", "metrics.json"}


def test_metrics_json_is_strict_and_counts_scored_rows(report: tuple[ReportData, dict[str, Path]]) -> None:
    data, paths = report
    metrics = _strict_json(paths["json"])
    assert metrics["fused"]["n"]["value"] == 300
    for name, c in data.signals.items():
        assert metrics["signals"][name]["n"]["value"] == np.count_nonzero(~np.isnan(c))
    low, value, high = (metrics["fused"]["auroc"][k] for k in ("low", "value", "high"))
    assert 0.5 < low <= value <= high <= 1.0
    mix = metrics["decision_mix"]
    assert sum(mix[k]["value"] for k in ("answer", "hedge", "abstain")) == pytest.approx(1.0)
    assert metrics["request_costs"]["with cascade"]["calls"] == 4.2


def test_html_is_self_contained_with_valid_inline_pngs(report: tuple[ReportData, dict[str, Path]]) -> None:
    import matplotlib.image

    text = report[1]["html"].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    sources = IMG_SRC.findall(text)
    assert len(sources) == text.lower().count("<img") == 4
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert matplotlib.image.imread(io.BytesIO(png)).shape[0] > 300


def test_markdown_has_the_tables_and_relative_images(report: tuple[ReportData, dict[str, Path]]) -> None:
    _, paths = report
    text = paths["markdown"].read_text(encoding="utf-8")
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert not name.startswith(("/", "http")) and (paths["markdown"].parent / name).is_file()
    assert "| fused | 300 |" in text and "| with cascade | 4.2 | 410 | 1.5 |" in text
    assert "Calibrator comparison" in text and "baseline" in text


def test_summary_names_the_fitting_data_and_the_rows_evaluated_apart(
    report: tuple[ReportData, dict[str, Path]],
) -> None:
    html_text = report[1]["html"].read_text(encoding="utf-8")
    assert "<td>fitted on (the artifact&#x27;s data)</td><td>synthetic 1500 (1500 rows); split fit 600," in html_text
    assert "<td>evaluated on (the rows in this report)</td><td>the artifact&#x27;s held-out test split: " in html_text
    assert "<td>rows in this report</td><td>300</td>" in html_text and "held-out rows" not in html_text


def test_user_text_is_escaped_everywhere(edge_report: dict[str, Path]) -> None:
    html_text = edge_report["html"].read_text(encoding="utf-8")
    assert "<script" not in html_text.lower() and "<b>" not in html_text and "<cases>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text and "&lt;b&gt;bold&lt;/b&gt; &amp;" in html_text
    md_text = edge_report["markdown"].read_text(encoding="utf-8")
    assert "<script" not in md_text and "&lt;script&gt;" in md_text and r"\| piped" in md_text
    assert HOSTILE in _strict_json(edge_report["json"])["signals"]


def test_undefined_metrics_show_na_and_null(edge_report: dict[str, Path]) -> None:
    metrics = _strict_json(edge_report["json"])
    assert metrics["signals"]["one class"]["auroc"]["value"] is None
    assert metrics["signals"]["never"] == {"n": {"value": 0, "low": 0, "high": 0}}
    html_text = edge_report["html"].read_text(encoding="utf-8")
    row = re.search(r"<tr><td>one class</td><td>(\d+)</td><td>([^<]*)</td>", html_text)
    assert row is not None and row.group(2) == "n/a"
    assert "<tr><td>never</td><td>0</td><td>n/a</td>" in html_text


# ---------------------------------------------------------------- numbers and validation


def test_decision_mix_on_a_hand_example() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    p = np.array([0.9, 0.8, 0.7, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1, 0.6])  # 0.3 and 0.6 sit on the thresholds
    mix = decision_mix(y, p, {"abstain": 0.3, "hedge": 0.6})
    assert [mix[k]["k"] for k in ("answer", "hedge", "abstain")] == [4, 4, 2]
    assert sum(mix[k]["value"] for k in ("answer", "hedge", "abstain")) == pytest.approx(1.0)
    assert (mix["error_answered"]["k"], mix["error_answered"]["n"]) == (1, 4)
    assert (mix["error_answered_or_hedged"]["k"], mix["error_answered_or_hedged"]["n"]) == (3, 8)
    assert mix["error_ungated"]["value"] == pytest.approx(0.4)
    # Wilson score interval of 4/10 at 95%: [0.1682, 0.6873].
    assert (mix["answer"]["low"], mix["answer"]["high"]) == pytest.approx((0.1682, 0.6873), abs=1e-4)
    assert "Wilson" in mix["interval"]


def test_decision_mix_with_nothing_answered_is_nan_not_an_error() -> None:
    mix = decision_mix(np.array([True, False]), np.array([0.1, 0.2]), {"abstain": 0.5, "hedge": 0.9})
    assert mix["abstain"]["value"] == 1.0 and np.isnan(mix["error_answered"]["value"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fused": np.array([0.5, np.nan, 0.5])}, "NaN"),
        ({"fused": np.array([0.5, 1.5, 0.5])}, r"\[0, 1\]"),
        ({"signals": {"s": np.array([0.5, 0.5])}}, "shape"),
        ({"thresholds": {"abstain": 0.7, "hedge": 0.6}}, "abstain <= hedge"),
        ({"thresholds": {"hedge": 0.6}}, "'abstain' and 'hedge'"),
    ],
)
def test_report_data_rejects_bad_input(change: dict, message: str) -> None:
    fields = {
        "title": "t",
        "summary": {},
        "y_correct": np.array([True, False, True]),
        "fused": np.array([0.2, 0.5, 0.9]),
        "signals": {},
        "thresholds": {"abstain": 0.3, "hedge": 0.6},
    }
    with pytest.raises(ValueError, match=message):
        ReportData(**{**fields, **change})


# ---------------------------------------------------------------- plots


def test_importing_plots_and_report_does_not_import_matplotlib() -> None:
    code = "import sys, calibration.plots, calibration.report; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"


def test_displays_share_an_axes_and_mark_thresholds() -> None:
    from calibration.plots import ReliabilityDisplay, RiskCoverageDisplay, RocDisplay, agg_figure

    y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    c = np.array([0.9, 0.8, 0.7, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1, 0.6])
    _, ax = agg_figure()
    first = ReliabilityDisplay.from_predictions(y, c, n_bins=5, name="a").plot(ax=ax)
    ReliabilityDisplay.from_predictions(y, 1 - c, n_bins=5, name="b").plot(ax=ax)
    assert [line.get_label() for line in ax.get_lines()] == ["perfectly calibrated", "a", "b"]
    assert first.ax_ is ax and first.figure_ is ax.figure
    risk = RiskCoverageDisplay.from_predictions(y, c, thresholds={"hedge": 0.6, "abstain": 0.3})
    assert risk.marks == {"hedge": (0.4, 0.25), "abstain": (0.8, 0.375)}
    assert RocDisplay.from_predictions(y, c).roc_auc == pytest.approx(15 / 24)
    with pytest.raises(ValueError, match="correct and incorrect"):
        RocDisplay.from_predictions(np.ones(3, dtype=bool), np.array([0.1, 0.5, 0.9]))


def test_the_fused_reliability_figure_shows_the_fused_probability_alone() -> None:
    from calibration.report import report_figures

    figures = report_figures(_synthetic(n=120))
    ax, ax_counts = figures["reliability"].axes
    assert [line.get_label() for line in ax.get_lines()] == ["perfectly calibrated", "fused"]
    assert len(ax_counts.patches) == 1  # one step histogram of the rows per bin, with each count written on it
    assert sum(int(text.get_text()) for text in ax_counts.texts) == 120


def test_each_signal_gets_its_own_panel_on_shared_axes() -> None:
    from calibration.report import report_figures

    data = _synthetic(n=120)
    figures = report_figures(data)
    panels = figures["reliability_signals"].axes
    assert len(panels) == len(data.scored_signals()) == 3  # spare grid cells are removed
    assert [ax.get_title() for ax in panels] == list(data.signals)
    for ax, (name, c) in zip(panels, data.signals.items(), strict=True):
        assert ax.get_shared_x_axes().joined(ax, panels[0]) and ax.get_shared_y_axes().joined(ax, panels[0])
        assert [line.get_label() for line in ax.get_lines()] == ["perfectly calibrated", name]
        assert len(ax.get_lines()[1].get_xdata()) <= 10  # the same 10 bins as the fused diagram
        assert ax.texts[0].get_text() == f"n = {np.count_nonzero(~np.isnan(c))}"
    edge = report_figures(_edge())["reliability_signals"].axes  # a signal with no value gets no panel
    assert [ax.get_title() for ax in edge] == [HOSTILE, "one class"]


def test_without_any_scored_signal_there_is_no_panel_figure_and_the_report_says_so(tmp_path: Path) -> None:
    y = np.array([True, False, True, False])
    data = ReportData(
        title="t",
        summary={},
        y_correct=y,
        fused=np.array([0.9, 0.2, 0.7, 0.4]),
        signals={"never": np.full(4, np.nan)},
        thresholds={"abstain": 0.3, "hedge": 0.6},
    )
    paths = write_report(data, tmp_path, n_resamples=10)
    assert "reliability_signals" not in paths and not (tmp_path / "reliability_signals.png").exists()
    assert "No signal has a value on any row of this report." in paths["markdown"].read_text(encoding="utf-8")


def test_figures_are_deterministic() -> None:
    from calibration.plots import figure_to_png_bytes
    from calibration.report import report_figures

    first, second = (report_figures(_synthetic(n=80))["reliability_signals"] for _ in range(2))
    assert figure_to_png_bytes(first) == figure_to_png_bytes(second)


# ---------------------------------------------------------------- real browser


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("chromium is missing and CI is set: `make test` installs it (apt-get install chromium).")
        pytest.skip("chromium is not installed (`make test` installs it with apt-get); CI fails here instead")
    return path


def _run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)


@pytest.mark.integration
def test_chromium_renders_a_page_with_plots(
    report: tuple[ReportData, dict[str, Path]], chromium: str, tmp_path: Path
) -> None:
    import matplotlib.image

    shot = tmp_path / "screenshot.png"
    html_uri = report[1]["html"].resolve().as_uri()
    result = _run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4000", html_uri)
    assert shot.is_file(), result.stderr[-2000:]
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 0.1  # a blank or text-only page is almost all white
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.3  # coloured curves: only the plots have them
    assert saturated.sum() > 2000


@pytest.mark.integration
def test_chromium_loads_every_image(report: tuple[ReportData, dict[str, Path]], chromium: str, tmp_path: Path) -> None:
    text = report[1]["html"].read_text(encoding="utf-8")
    n_images = text.lower().count("<img")
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", BROKEN_IMAGE_PROBE + "</body>"), encoding="utf-8")
    broken = tmp_path / "broken.html"  # control: the probe must notice a broken image
    broken.write_text(
        text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1).replace(
            "</body>", BROKEN_IMAGE_PROBE + "</body>"
        ),
        encoding="utf-8",
    )
    titles = []
    for page in (probe, broken):
        result = _run_chromium(
            chromium, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()
        )
        titles.append(re.search(r"<title>([^<]*)</title>", result.stdout).group(1))
    assert titles == [f"images={n_images} broken=0", f"images={n_images} broken=1"]
