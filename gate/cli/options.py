"""Command-line options that several ``gate`` commands take, declared once so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gate.offline.ray_batch import RayCluster

__all__ = [
    "ConfigOption",
    "DatasetOption",
    "JsonOption",
    "LimitOption",
    "ModelOption",
    "RayActorsOption",
    "RayCpusOption",
    "RayOption",
    "ResamplesOption",
    "ray_cluster",
    "split_names",
]

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (also GATE_CONFIG).", show_default=False)
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name, e.g. local/gemma-3-270m (the embedded default) or openai/gpt-4o-mini (also GATE_MODEL).",
        show_default=False,
    ),
]
DatasetOption = Annotated[
    list[str],
    typer.Option(
        "--dataset",
        "-d",
        help="A development set (trivia, nq_open, popqa, sciq, xquad, hotpot, halueval, efficientqa) or a JSONL of "
        '{"question", "answers", optional "references"}; repeat for several; NAME:N takes N from that set.',
    ),
]
LimitOption = Annotated[int | None, typer.Option(help="Questions drawn at random from each dataset.")]
ResamplesOption = Annotated[int, typer.Option(help="Bootstrap resamples per interval.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run the batch on a Ray cluster: auto, HOST:PORT, ray://HOST:10001, or local (a Ray instance started "
        "here); same output, order and resume as without it. Needs the ray extra.",
        show_default=False,
    ),
]
RayCpusOption = Annotated[
    int | None, typer.Option(help="CPUs of the --ray local instance (default: all of them).", show_default=False)
]
RayActorsOption = Annotated[
    int | None,
    typer.Option(
        help="Gates on the Ray cluster, one CPU and one model each (default: one per CPU).", show_default=False
    ),
]


def split_names(value: str | None) -> list[str] | None:
    """The names of a comma-separated option (``"a, b,"`` -> ``["a", "b"]``); ``None`` when none is given."""
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def ray_cluster(address: str | None, cpus: int | None, actors: int | None) -> RayCluster | None:
    """The ``--ray`` options as one value; ``None`` runs locally (the Ray options then make no sense)."""
    if address is None:
        if cpus is not None or actors is not None:
            raise ValueError("--ray-cpus and --ray-actors go with --ray ADDRESS")
        return None
    from gate.offline.ray_batch import RayCluster

    return RayCluster(address, cpus=cpus, actors=actors)
