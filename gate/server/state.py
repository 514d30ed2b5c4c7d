"""What the proxy's routes share, as one typed object: ``ServerState``, built once per app by ``create_app``.

It lives on ``app.state.server`` and is read in one way only, :func:`server_state`; everything below the
routes receives it (or the parts it needs) as typed arguments. What the guards learned about one request
(its id, a privileged key) is read with :func:`request_id` and :func:`is_privileged`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from starlette.requests import Request

from gate.audit.log import AuditLog
from gate.config import Settings
from gate.pipeline import Gate
from gate.server.metrics import ProxyMetrics
from gate.server.policy import Policy
from gate.server.wire import NotReadyError

REQUEST_ID_KEY = "request_id"
PRIVILEGED_KEY = "gate_privileged"
"""Where the guards (:mod:`gate.server.guards`) leave what they learned about a request, in ``scope["state"]``."""


@dataclass
class Slots:
    """How many requests may be in flight, and how many are (one event loop: no lock needed)."""

    limit: int
    in_use: int = 0


@dataclass
class ServerState:
    """One app's configuration, policy, counters and audit log, and its gate once it has loaded."""

    settings: Settings
    policy: Policy
    slots: Slots
    metrics: ProxyMetrics
    audit: AuditLog | None
    started: int = field(default_factory=lambda: int(time.time()))
    gate: Gate | None = None
    load_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerState:
        """The state of a new app for ``settings`` (its gate is set once it has loaded)."""
        slots = Slots(limit=settings.max_concurrency)
        return cls(
            settings=settings,
            policy=Policy.from_settings(settings),
            slots=slots,
            # metrics_dir: a worker of gate serve --workers, whose /metrics shows all of them
            metrics=ProxyMetrics(limit=settings.max_concurrency, multiprocess_dir=settings.metrics_dir),
            audit=AuditLog.from_settings(settings),
        )

    def ready_gate(self) -> Gate:
        """The loaded gate; a 503 while it is still loading or after it failed to load."""
        if self.gate is None:
            raise NotReadyError(self.load_error or "the gate is still loading; retry when /readyz answers 200")
        return self.gate


def server_state(request: Request) -> ServerState:
    """The state of the app serving ``request``."""
    state: ServerState = request.app.state.server  # set once by create_app
    return state


def request_id(request: Request) -> str:
    """The id the request-id middleware gave ``request`` (a fresh one where it did not run)."""
    return str(request.scope.get("state", {}).get(REQUEST_ID_KEY) or uuid.uuid4().hex)


def is_privileged(request: Request) -> bool:
    """Whether ``request`` came with a key from ``privileged_api_keys``."""
    return request.scope.get("state", {}).get(PRIVILEGED_KEY) is True
