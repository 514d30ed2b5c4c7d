"""``gate serve``: run the OpenAI-compatible gating proxy with uvicorn (loopback unless told otherwise).

SIGHUP reloads the configuration (tenants, keys, policy; :mod:`gate.server.reload`) without dropping a request.
One process: the app's own handler reloads in place. With ``--workers N``, uvicorn's supervisor takes SIGHUP
itself and replaces the workers one at a time, each new one reading the configuration as it starts and taking
connections before the old one stops (which finishes its requests first); with the embedded model a new worker
answers 503 until its model has loaded, so with it prefer the in-place reload: each worker installs the same
handler, and ``pkill -HUP -P <supervisor pid>`` reaches every worker without replacing it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gate.cli.errors import friendly_errors
from gate.cli.logs import configure_logging
from gate.cli.options import ConfigOption, ModelOption

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gate.config import Settings


@friendly_errors
def serve(
    *,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the gate to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes sharing the port. Each loads its own gate (and embedded model) and applies "
            "max_concurrency on its own; /metrics sums all of them and the audit log is shared.",
        ),
    ] = 1,
    config: ConfigOption = None,
    model: ModelOption = None,
) -> None:
    """Serve the OpenAI-compatible gate: /v1/chat/completions, /v1/completions, /v1/models, health and /metrics.

    SIGHUP reloads tenants, keys and policy without dropping requests.
    """
    import uvicorn

    from gate.config import load_settings
    from gate.factory import create_gate
    from gate.server.app import create_app, uvicorn_options
    from gate.tenants.table import check_targets

    settings = load_settings(config_file=config, model=model)
    # Building the gate here (artifact, index, the model name's route) turns a misconfiguration into one
    # line before uvicorn starts, instead of a worker's startup traceback; the weights load behind /readyz.
    gate = create_gate(settings)
    check_targets(settings, gate)  # the tenants' artifacts too
    configure_logging(settings.log_level)
    if not (settings.api_keys or settings.privileged_api_keys) and host not in {"127.0.0.1", "localhost", "::1"}:
        logging.getLogger(__name__).warning("serving on %s without API keys: anyone who can reach it may use it", host)
    plural = f" x {workers} workers" if workers > 1 else ""
    typer.echo(
        f"gate serve: {settings.model} on http://{host}:{port}/v1{plural} (Ctrl-C stops after in-flight requests)",
        err=True,
    )
    # uvicorn's own shutdown finishes in-flight requests before the lifespan ends
    if workers == 1:
        # one process: its app's own registry; metrics_dir is where the workers of --workers keep theirs
        def reload() -> Settings:
            return load_settings(config_file=config, model=model).model_copy(update={"metrics_dir": None})

        app = create_app(settings.model_copy(update={"metrics_dir": None}), gate=gate, reload=reload)
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level, **uvicorn_options(settings))
        return
    del gate  # each worker builds its own
    _hand_to_workers(settings, config=config, model=model, workers=workers)
    with _metrics_dir(settings):
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=settings.log_level,
            **uvicorn_options(settings),
        )


def worker_app() -> FastAPI:
    """One worker's app (uvicorn's factory with ``--workers``): settings from the environment ``serve`` set."""
    from gate.config import load_settings
    from gate.server.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, reload=load_settings)


def _hand_to_workers(settings: Settings, *, config: Path | None, model: str | None, workers: int) -> None:
    """Put the command line's choices where the worker processes read them: their inherited environment."""
    from gate.backends.embedded.local import LOCAL_PREFIX
    from gate.config import CONFIG_ENV_VAR

    if config is not None:
        os.environ[CONFIG_ENV_VAR] = str(config)
    if model is not None:
        os.environ["GATE_MODEL"] = model
    if settings.model.startswith(LOCAL_PREFIX) and settings.local_n_threads is None:
        # every worker loads its own copy of the embedded model: share the cores instead of each taking all
        os.environ["GATE_LOCAL_N_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


@contextmanager
def _metrics_dir(settings: Settings) -> Iterator[None]:
    """Where the workers keep their /metrics values: the configured ``metrics_dir``, else a temporary one.

    prometheus_client chooses per-process files over values in memory when a process imports it, by
    ``PROMETHEUS_MULTIPROC_DIR``: it must be in the environment the workers inherit before uvicorn spawns them.
    """
    if settings.metrics_dir is not None:
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.metrics_dir.glob("*.db"):  # counts from an earlier run must not add to this one's
            stale.unlink(missing_ok=True)
        _share_metrics(settings.metrics_dir)
        yield
        return
    with tempfile.TemporaryDirectory(prefix="gate-metrics-") as directory:
        _share_metrics(Path(directory))
        yield


def _share_metrics(directory: Path) -> None:
    from gate.server.metrics import MULTIPROC_ENV

    os.environ["GATE_METRICS_DIR"] = os.environ[MULTIPROC_ENV] = str(directory.resolve())
