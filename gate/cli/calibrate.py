"""``gate calibrate`` and ``gate report``: fit an artifact on labelled questions, and show how it does."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gate.cli.errors import friendly_errors
from gate.cli.options import (
    ConfigOption,
    DatasetOption,
    LimitOption,
    ModelOption,
    RayActorsOption,
    RayCpusOption,
    RayOption,
    ResamplesOption,
    ray_cluster,
    split_names,
)
from gate.reasons import format_probability

if TYPE_CHECKING:
    from calibration.artifact import Artifact
    from gate.config import Settings
    from gate.datasets import QAItem
    from gate.offline.calibrate import FitOptions
    from gate.offline.signal_cache import CachedRow
    from gate.suite import SignalSpec


@friendly_errors
def calibrate(
    dataset: DatasetOption,
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the artifact (JSON).")],
    limit: LimitOption = None,
    cache: Annotated[
        Path | None, typer.Option(help="Signal cache (JSONL, resumable). Default: next to --out.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the question draw and of the split.")] = 0,
    answer_level: Annotated[float, typer.Option(help="Wanted accuracy among answered requests.")] = 0.8,
    hedge_level: Annotated[float, typer.Option(help="Wanted accuracy among answered or hedged requests.")] = 0.6,
    confidence_level: Annotated[float, typer.Option(help="Probability that the targets hold (1 - delta).")] = 0.9,
    method: Annotated[str, typer.Option(help="Threshold rule: ltt, crc or balance.")] = "ltt",
    fusion: Annotated[
        str,
        typer.Option(
            help="auto (fusion and signals chosen by cross-validation, cheapest near the best), "
            "logistic, boosted or weighted_mean."
        ),
    ] = "auto",
    calibrator: Annotated[
        str,
        typer.Option(
            help="auto (Platt or temperature, by cross-validated log-loss), isotonic, platt, temperature or histogram."
        ),
    ] = "auto",
    signals: Annotated[
        str | None, typer.Option(help="Comma-separated signals to use (default: all).", show_default=False)
    ] = None,
    cached_only: Annotated[
        bool, typer.Option(help="Fit on the questions already in the cache; compute nothing new.")
    ] = False,
    collect_only: Annotated[
        bool,
        typer.Option(
            help="Compute and cache the signals, fit nothing (to pool with other caches later; too few correct "
            "answers for a fit of their own is fine). --out then only names the default cache."
        ),
    ] = False,
    ray: RayOption = None,
    ray_cpus: RayCpusOption = None,
    ray_actors: RayActorsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Run every signal over labelled questions, cache them, fit fusion + calibration + thresholds."""
    from calibration.fitting import Target
    from gate.config import load_settings
    from gate.factory import suite_from
    from gate.offline.calibrate import FitOptions
    from gate.offline.collect import sample_items

    _check_modes(limit, collect_only=collect_only, cached_only=cached_only)
    cluster = ray_cluster(ray, ray_cpus, ray_actors)
    settings = load_settings(config_file=config, model=model, signals=split_names(signals))
    target = Target(
        answer_level=answer_level, hedge_level=hedge_level, confidence_level=confidence_level, method=method
    )
    options = FitOptions(seed=seed, fusion=fusion, calibrator=calibrator, target=target)
    items = sample_items(dataset, limit=limit, seed=seed, data_dir=settings.data_dir)
    cache = cache or out.with_suffix(".signals.jsonl")
    with _signal_progress(len(items)) as on_row:
        if cluster is not None and not cached_only:  # --cached-only computes nothing: no cluster to start
            from gate.offline.ray_batch import collect_on_ray

            rows = collect_on_ray(settings, items, cache, cluster, on_row=on_row)
        else:
            rows = _collect_here(settings, items, cache, on_row=on_row, cached_only=cached_only)
    if collect_only:
        correct = sum(row.correct for row in rows)
        typer.echo(f"cached {len(rows)} graded questions ({correct} correct) in {cache}; nothing fitted", err=True)
        return
    _fit_and_save(rows, model=settings.model, suite=suite_from(settings), options=options, out=out, cache=cache)


def _check_modes(limit: int | None, *, collect_only: bool, cached_only: bool) -> None:
    """Refuse a --limit below 1 and --collect-only with --cached-only, before any work starts."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    if collect_only and cached_only:
        raise ValueError("--collect-only and --cached-only exclude each other: one computes, the other fits")


def _collect_here(
    settings: Settings,
    items: Sequence[tuple[str, QAItem]],
    cache: Path,
    *,
    on_row: Callable[[CachedRow, bool], None],
    cached_only: bool,
) -> list[CachedRow]:
    """The signal collection in this process, on a Gate built here."""
    from gate.backends.factory import run_then_close
    from gate.factory import create_gate
    from gate.offline.collect import collect

    gate = create_gate(settings, calibrated=False)
    work = collect(gate, items, cache, model=settings.model, on_row=on_row, cached_only=cached_only)
    return run_then_close(gate.llm, work)


@contextlib.contextmanager
def _signal_progress(total: int) -> Iterator[Callable[[CachedRow, bool], None]]:
    """A progress bar with the accuracy so far; yields the ``on_row`` callback of the collection."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    correct = [0, 0]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("signals", total=total)

        def on_row(row: CachedRow, cached: bool) -> None:
            correct[0] += row.correct
            correct[1] += 1
            label = f"signals (accuracy so far {correct[0] / correct[1]:.3f})"
            progress.update(task, advance=1, description=label)

        yield on_row


def _fit_and_save(
    rows: Sequence[CachedRow], *, model: str, suite: Sequence[SignalSpec], options: FitOptions, out: Path, cache: Path
) -> None:
    """Fit the artifact on the graded rows, record the signal cache it came from, save it, print a summary."""
    from gate.offline.calibrate import fit_artifact

    typer.echo(f"fitting on {len(rows)} graded questions (signals cached in {cache})", err=True)
    artifact = _with_cache_path(fit_artifact(rows, model=model, suite=suite, options=options), cache)
    artifact.save(out)
    _print_summary(artifact, out)


def _with_cache_path(artifact: Artifact, cache: Path) -> Artifact:
    return dataclasses.replace(artifact, data={**artifact.data, "signal_cache": str(cache)})


def _print_summary(artifact: Artifact, out: Path) -> None:
    metrics = artifact.metrics
    fused = metrics["fused"]
    mix = metrics["decision_mix"]
    lines = [
        f"wrote {out} ({artifact.id})",
        f"held-out rows: {metrics['n_rows']}; fused AUROC {_fmt(fused['auroc'])}, ECE {_fmt(fused['ece'])}",
        f"thresholds: abstain below {format_probability(artifact.full.abstain, 3)}, "
        f"answer at or above {format_probability(artifact.full.hedge, 3)}",
        f"decisions: answer {mix['answer']['value']:.1%}, hedge {mix['hedge']['value']:.1%}, "
        f"abstain {mix['abstain']['value']:.1%}; error among answered {_fmt(mix['error_answered'])} "
        f"(ungated {_fmt(mix['error_ungated'])})",
    ]
    lines += [f"note: {note}" for note in artifact.notes if "infeasible" in note.lower()]
    typer.echo("\n".join(lines))


def _fmt(value: dict) -> str:
    number = value.get("value")
    return "n/a" if number is None or math.isnan(number) else f"{number:.3f}"


@friendly_errors
def report(
    artifact: Annotated[Path, typer.Argument(help="The calibration artifact (JSON).")],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.html, report.md, metrics.json.")],
    signals: Annotated[
        Path | None,
        typer.Option(help="Signal cache the artifact was fitted from (default: the recorded one).", show_default=False),
    ] = None,
    resamples: ResamplesOption = 1000,
) -> None:
    """Write the calibration report (held-out split) as self-contained HTML, Markdown and JSON."""
    from calibration.report import write_report
    from gate.offline.calibrate import report_data

    fitted, rows = _artifact_and_rows(artifact, signals)
    started = time.perf_counter()
    paths = write_report(report_data(fitted, rows), out, n_resamples=resamples, seed=fitted.data.get("split_seed", 0))
    seconds = time.perf_counter() - started
    typer.echo(f"wrote {paths['html']}, {paths['markdown']} and {paths['json']} in {seconds:.0f} s")


@friendly_errors
def retarget(
    artifact: Annotated[Path, typer.Argument(help="The calibration artifact (JSON) whose fit is kept.")],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the retargeted artifact (JSON).")],
    signals: Annotated[
        Path | None,
        typer.Option(help="Signal cache the artifact was fitted from (default: the recorded one).", show_default=False),
    ] = None,
    answer_level: Annotated[float, typer.Option(help="Wanted accuracy among answered requests.")] = 0.8,
    hedge_level: Annotated[float, typer.Option(help="Wanted accuracy among answered or hedged requests.")] = 0.6,
    confidence_level: Annotated[float, typer.Option(help="Probability that the targets hold (1 - delta).")] = 0.9,
    method: Annotated[str, typer.Option(help="Threshold rule: ltt, crc or balance.")] = "ltt",
) -> None:
    """The same fit with thresholds for another risk target (one calibration, several tenants' targets).

    Fusion, calibrator and precheck cut are kept; only the thresholds (and the free stage's early exits) are
    chosen again, on the artifact's own threshold split of the signal cache. Point a tenant's ``artifact`` at
    the result.
    """
    from calibration.fitting import Target
    from gate.offline.calibrate import retarget as retargeted

    for name, level in (
        ("answer-level", answer_level),
        ("hedge-level", hedge_level),
        ("confidence-level", confidence_level),
    ):
        if not 0.0 < level < 1.0:
            raise ValueError(f"--{name} must lie strictly between 0 and 1, got {level:g}")
    fitted, rows = _artifact_and_rows(artifact, signals)
    target = Target(
        answer_level=answer_level, hedge_level=hedge_level, confidence_level=confidence_level, method=method
    )
    result = retargeted(fitted, rows, target)
    result.save(out)
    typer.echo(
        f"wrote {out} ({result.id}): abstain below {format_probability(result.full.abstain, 3)}, "
        f"answer at or above {format_probability(result.full.hedge, 3)}"
    )
    typer.echo("\n".join(f"note: {note}" for note in result.notes))


def _artifact_and_rows(artifact: Path, signals: Path | None) -> tuple[Artifact, list[CachedRow]]:
    """The artifact and the rows of the signal cache it was fitted from (``signals``, else the recorded one)."""
    from calibration.artifact import load_artifact
    from gate.offline.signal_cache import read_cache, same_signals

    fitted = load_artifact(artifact)
    path = signals or _recorded_cache(fitted, artifact)
    head, rows = read_cache(path)
    if head["model"] != fitted.model or not same_signals(head["suite"], fitted.suite):
        raise ValueError(f"{path} holds signals of another model or signal suite than {artifact}")
    return fitted, rows


def _recorded_cache(fitted: Artifact, artifact: Path) -> Path:
    recorded = fitted.data.get("signal_cache")
    if not recorded:
        raise ValueError("the artifact records no signal cache; pass --signals CACHE.jsonl")
    path = Path(recorded)
    if not path.is_absolute():
        path = artifact.parent / path
    if not path.is_file():
        raise ValueError(f"the artifact's signal cache {path} does not exist; pass --signals CACHE.jsonl")
    return path
