"""``gate score`` (existing responses, no regeneration) and ``gate evaluate`` (an artifact on new labelled data)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

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

ArtifactOption = Annotated[
    Path | None,
    typer.Option(
        "--artifact", "-a", help="Calibration artifact (default: the configured or shipped one).", show_default=False
    ),
]


@friendly_errors
def score(
    source: Annotated[Path, typer.Argument(help='JSONL of {"question", "response"} (+ id, samples, references).')],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (resumed: ids already there are skipped).")],
    artifact: ArtifactOption = None,
    estimators: Annotated[
        str | None, typer.Option(help="Comma-separated signals to use (default: all that the input allows).")
    ] = None,
    sample_more: Annotated[int, typer.Option(help="Draw this many fresh samples per line for consistency.")] = 0,
    index: Annotated[Path | None, typer.Option(help="Retrieval index for PACE (gate index build).")] = None,
    concurrency: Annotated[int, typer.Option(help="Lines scored at once (with --ray: by each Gate).")] = 4,
    ray: RayOption = None,
    ray_cpus: RayCpusOption = None,
    ray_actors: RayActorsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Score responses you already have, line by line; malformed lines are reported and skipped."""
    from gate.backends.factory import run_then_close
    from gate.config import load_settings
    from gate.factory import budget_from, create_gate
    from gate.offline.score import score_file

    if not source.is_file():
        raise ValueError(f"input file {source} does not exist")
    if sample_more < 0 or concurrency < 1:
        raise ValueError(f"--sample-more must be >= 0 and --concurrency >= 1, got {sample_more} and {concurrency}")
    cluster = ray_cluster(ray, ray_cpus, ray_actors)
    settings = load_settings(config_file=config, model=model, artifact=artifact, index_dir=index)
    signals = split_names(estimators)
    with source.open(encoding="utf-8") as handle:
        total = sum(1 for line in handle if line.strip())
    with _progress(total, "scoring") as advance:
        if cluster is not None:
            from gate.offline.ray_batch import score_on_ray

            summary = score_on_ray(
                settings,
                source,
                out,
                cluster,
                sample_more=sample_more,
                concurrency=concurrency,
                signals=signals,
                on_line=advance,
            )
        else:
            gate = create_gate(settings)
            summary = run_then_close(
                gate.llm,
                score_file(
                    gate,
                    source,
                    out,
                    sample_more=sample_more,
                    concurrency=concurrency,
                    budget=budget_from(settings),
                    signals=signals,
                    on_line=advance,
                ),
            )
    typer.echo("\n".join([f"wrote {out}", *summary.lines()]))


@friendly_errors
def evaluate(
    *,
    dataset: DatasetOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the report with its drift section.")],
    artifact: ArtifactOption = None,
    limit: LimitOption = None,
    cache: Annotated[Path | None, typer.Option(help="Signal cache (default: OUT/signals.jsonl).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the question draw.")] = 0,
    resamples: ResamplesOption = 1000,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Apply an artifact as it is to new labelled questions: the report, plus drift against its own numbers."""
    from calibration.report import write_report
    from gate.backends.factory import run_then_close
    from gate.config import load_settings
    from gate.factory import create_gate
    from gate.offline.calibrate import report_data
    from gate.offline.collect import collect, sample_items
    from gate.offline.evaluate import drift_table, verdict

    settings = load_settings(config_file=config, model=model, artifact=artifact)
    gate = create_gate(settings)
    fitted = gate.calibration
    if not hasattr(fitted, "metrics"):
        raise ValueError(f"no calibration artifact applies to {settings.model}; pass --artifact")
    items = sample_items(dataset, limit=limit, seed=seed, data_dir=settings.data_dir)
    cache = cache or out / "signals.jsonl"
    with _progress(len(items), "evaluating") as advance:
        work = collect(gate, items, cache, model=settings.model, on_row=lambda row, cached: advance())
        rows = run_then_close(gate.llm, work)
    data = report_data(fitted, rows, held_out_only=False, title=f"Evaluation of {fitted.id}")
    line = verdict(fitted, data)
    drift = {f"Drift: the artifact at fitting vs this data. Verdict: {line}": drift_table(fitted, data)}
    data = dataclasses.replace(data, extra_tables={**drift, **data.extra_tables})  # the drift table first
    paths = write_report(data, out, n_resamples=resamples, seed=seed)
    typer.echo(f"wrote {paths['html']}, {paths['markdown']}, {paths['json']}\n{line}")


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A transient progress bar; yields the callback that advances it by one line or question."""
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
