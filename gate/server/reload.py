"""Reload the configuration on SIGHUP without dropping a request.

The new configuration is read and every tenant built (keys file, artifacts, thresholds) off the event loop;
only when all of it is valid is it swapped in, with plain assignments on the event loop, so a request sees the
old configuration or the new one, never a mix. A request that already passed authentication keeps the tenant
(policy, target, quota) it started with. A bad configuration is refused with one log line and the running one
stays; so is one that would switch authentication off (no key and no tenant left), which takes a restart.

What a reload changes: the tenants and their keys (``tenants``, ``keys_file``, ``api_keys``,
``privileged_api_keys``), ``public_paths``, and the server's own policy and limits (:data:`RELOADABLE`).
Everything else (model, upstream, artifact, signals, state, audit, sizes...) is built into the running gate:
a change there is logged as needing a restart, and the running value is kept.

With ``gate serve --workers N`` each worker process installs this handler for itself; see
:func:`gate.cli.serve.serve` for how a signal reaches them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from calibration.artifact import ArtifactError
from gate.config import Settings
from gate.errors import ConfigError
from gate.server.policy import Policy
from gate.server.tenancy import policies_of
from gate.tenants.table import Tenants

if TYPE_CHECKING:
    from gate.server.state import ServerState

logger = logging.getLogger(__name__)

RELOADABLE = frozenset(
    {
        "tenants",
        "keys_file",
        "api_keys",
        "privileged_api_keys",
        "public_paths",
        "mode",
        "allowed_modes",
        "cascade",
        "max_gate_calls",
        "max_gate_tokens",
        "max_gate_seconds",
        "include_original",
        "hedge_message",
        "hedge_position",
        "abstain_message",
        "max_answer_tokens",
        "rate_limit_rps",
        "rate_limit_burst",
        "daily_quota",
    }
)
"""Settings a reload applies; any other change needs a restart."""

Loader = Callable[[], Settings]
"""Reads the configuration again, as the server was started (the same file, environment and command line)."""

REFUSED = (ConfigError, ArtifactError, ValueError, OSError)


async def reload(state: ServerState, load: Loader) -> bool:
    """Read the configuration with ``load`` and swap it into ``state``; ``False`` (logged) when it is refused."""
    try:
        settings, tenants, policies = await asyncio.to_thread(_prepare, state, load)
        if state.tenants.auth and not tenants.auth:
            # No key left would mean no authentication at all: too much for a signal to do, perhaps by mistake.
            raise ConfigError("it has no API key and no tenant left, which would switch authentication off; restart")
    except REFUSED as exc:
        logger.error("reload refused, the running configuration stays: %s", " ".join(str(exc).split()))
        return False
    restart_only = sorted(
        name
        for name in Settings.model_fields
        if name not in RELOADABLE and getattr(settings, name) != getattr(state.settings, name)
    )
    if restart_only:
        logger.warning("reload: %s changed and take effect on restart only; running values kept", restart_only)
    state.swap(tenants, policies)
    logger.info("configuration reloaded: tenants %s, %d hashed keys", tenants.configured, _count(tenants))
    return True


def _prepare(state: ServerState, load: Loader) -> tuple[Settings, Tenants, Mapping[str, Policy]]:
    """The new settings, and the tenants (and their policies) built from the running settings with the reloadable
    ones replaced."""
    settings = load()
    merged = state.settings.model_copy(update={name: getattr(settings, name) for name in RELOADABLE})
    # model_copy does not validate: validate the merge as a whole (e.g. tenant quotas need the running state)
    checked = Settings.model_validate(merged.model_dump())
    tenants = Tenants.from_settings(checked, client=state.state_client)
    if state.gate is not None:
        tenants = tenants.bound(state.gate)
    return settings, tenants, policies_of(tenants)


def _count(tenants: Tenants) -> int:
    return len(tenants.hashed.keys) if tenants.hashed is not None else 0


def install_sighup(state: ServerState, load: Loader) -> Callable[[], None]:
    """Reload on SIGHUP in this process; returns what removes the handler again.

    Needs the main thread's event loop (``loop.add_signal_handler``); ``gate serve`` runs there.
    """
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload(state, load))
        running.add(task)  # keep a reference until it is done
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    return lambda: loop.remove_signal_handler(signal.SIGHUP)
