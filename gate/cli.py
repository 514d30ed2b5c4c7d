"""The ``gate`` command: thin argument parsing over the library; errors become one readable line."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gate.errors import GateError

app = typer.Typer(
    name="gate",
    help="Confidence and hallucination gating for LLM endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (also GATE_CONFIG).", show_default=False)
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name, e.g. local/gemma-3-270m or openai/gpt-4o-mini.")
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Report the gate's own errors (and Ctrl-C) as one line on stderr, exit status 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (GateError, ValueError, FileNotFoundError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


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
