"""The ``gate`` command: thin argument parsing over the library; errors become one readable line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gate.cli_errors import friendly_errors
from gate.index_cli import index_app

app = typer.Typer(
    name="gate",
    help="Confidence and hallucination gating for LLM endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index_app, name="index", help="Build and search FAISS indexes of reference documents.")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (also GATE_CONFIG).", show_default=False)
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name, e.g. local/gemma-3-270m or openai/gpt-4o-mini.")
]


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


@app.command()
@friendly_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to ask the model.")],
    model: ModelOption = None,
    config: ConfigOption = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer in tokens.")] = None,
) -> None:
    """Ask the configured model a question and print its answer."""
    from gate.config import load_settings
    from gate.llm import create_llm

    if not question.strip():
        raise ValueError("the question is empty")
    settings = load_settings(config_file=config, model=model)
    _setup_logging(settings.log_level)
    llm = create_llm(settings)
    messages = [{"role": "user", "content": question}]
    generations = asyncio.run(llm.generate(messages, max_tokens=max_tokens or settings.max_tokens))
    typer.echo(generations[0].text.strip())


@app.command("config")
@friendly_errors
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration (defaults, then the YAML file, then GATE_* variables), secrets masked."""
    from gate.config import load_settings

    typer.echo(json.dumps(load_settings(config_file=config).display(), indent=2))


def main() -> None:
    """Console entry point."""
    app()
