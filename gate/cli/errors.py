"""How every ``gate`` command reports failures: one red line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from gate.errors import GateError

F = TypeVar("F", bound=Callable[..., Any])

# Bad input, missing files and missing extras are the user's to fix; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (GateError, ValueError, OSError, ImportError)


def friendly_errors(command: F) -> F:
    """Wrap a command so user errors and Ctrl-C end it with a one-line message."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
