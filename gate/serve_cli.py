"""``gate serve``: run the OpenAI-compatible gating proxy with uvicorn (loopback unless told otherwise)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gate.cli_errors import friendly_errors


@friendly_errors
def serve(
    *,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the gate to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config file (also GATE_CONFIG).", show_default=False)
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Upstream model (default: the embedded one).")
    ] = None,
) -> None:
    """Serve the OpenAI-compatible gate: /v1/chat/completions, /v1/completions, /v1/models, health and /metrics."""
    import uvicorn

    from gate.config import load_settings
    from gate.server import create_app

    settings = load_settings(config_file=config, model=model)
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if not settings.api_keys and host not in {"127.0.0.1", "localhost", "::1"}:
        logging.getLogger(__name__).warning("serving on %s without API keys: anyone who can reach it may use it", host)
    typer.echo(
        f"gate serve: {settings.model} on http://{host}:{port}/v1 (Ctrl-C stops after in-flight requests)", err=True
    )
    # uvicorn's own shutdown finishes in-flight requests before the lifespan ends
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level)
