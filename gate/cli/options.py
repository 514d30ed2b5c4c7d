"""Command-line options that several ``gate`` commands take, declared once so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "ConfigOption",
    "DatasetOption",
    "JsonOption",
    "LimitOption",
    "ModelOption",
    "ResamplesOption",
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


def split_names(value: str | None) -> list[str] | None:
    """The names of a comma-separated option (``"a, b,"`` -> ``["a", "b"]``); ``None`` when none is given."""
    return [name.strip() for name in value.split(",") if name.strip()] if value else None
