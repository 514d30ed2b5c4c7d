"""``gate keys``: add, list and revoke tenants' API keys; only their hashes are stored (``gate.tenants.keyfile``).

The keys live in the file the config's ``keys_file`` names. ``add`` prints the new key once, on stdout and
alone (so it can be piped into a secret store); everything else goes to stderr. A running ``gate serve`` picks
the change up on SIGHUP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gate.cli.errors import friendly_errors
from gate.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from gate.config import Settings

keys_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="The tenant (from the config's `tenants`).")]


@keys_app.command("add")
@friendly_errors
def add(tenant: TenantOption, config: ConfigOption = None) -> None:
    """Make a key for a tenant: print it once, store only its hash."""
    from gate.config import load_settings
    from gate.errors import ConfigError
    from gate.tenants.keyfile import locked, read_keys, write_keys

    settings = load_settings(config_file=config)
    names = [t.name for t in settings.tenants]
    if tenant not in names:
        raise ConfigError(
            f"no tenant {tenant!r} in the configuration (tenants: {', '.join(names) or 'none'}); "
            "add it under `tenants:` first"
        )
    path = _keys_path(settings)
    with locked(path):
        keys, key, entry = read_keys(path).added(tenant)
        write_keys(path, keys)
    typer.echo(key)
    typer.echo(
        f"key {entry.id} for tenant {tenant}: stored as a hash in {path}. This is the only time the key is "
        "shown. Send SIGHUP to gate serve to accept it.",
        err=True,
    )


@keys_app.command("list")
@friendly_errors
def list_keys(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the keys: id, tenant, when made (never the key, nor its hash)."""
    from gate.config import load_settings
    from gate.tenants.keyfile import read_keys

    settings = load_settings(config_file=config)
    entries = read_keys(_keys_path(settings)).keys
    rows = [{"id": e.id, "tenant": e.tenant, "created": e.created} for e in entries]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no keys", err=True)
        return
    width = max(len("tenant"), *(len(row["tenant"]) for row in rows))
    typer.echo(f"{'id':<8}  {'tenant':<{width}}  created")
    for row in rows:
        typer.echo(f"{row['id']:<8}  {row['tenant']:<{width}}  {row['created']}")


@keys_app.command("revoke")
@friendly_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`gate keys list`; also the 8 digits after gk_).")],
    config: ConfigOption = None,
) -> None:
    """Remove a key; gate serve refuses it once it has reloaded (SIGHUP)."""
    from gate.config import load_settings
    from gate.tenants.keyfile import locked, read_keys, write_keys

    settings = load_settings(config_file=config)
    path = _keys_path(settings)
    with locked(path):
        keys, entry = read_keys(path).revoked(key_id.strip())
        write_keys(path, keys)
    typer.echo(f"revoked key {entry.id} of tenant {entry.tenant}; send SIGHUP to gate serve to apply it", err=True)


def _keys_path(settings: Settings) -> Path:
    from gate.errors import ConfigError
    from gate.tenants.table import relative_to_config

    if settings.keys_file is None:
        raise ConfigError("the configuration has no keys_file: add e.g. `keys_file: gate.keys.yaml` to it (--config)")
    return relative_to_config(settings, settings.keys_file)
