"""What the proxy's routes share, as one typed object: ``ServerState``, built once per app by ``create_app``.

It lives on ``app.state.server`` and is read in one way only, :func:`server_state`; everything below the
routes receives it (or the parts it needs) as typed arguments. What the guards learned about one request
(its id, a privileged key, its caller: tenant and policy) is read with :func:`request_id`,
:func:`is_privileged` and :func:`tenant_name`. A request with a caller sees the state as its tenant does:
:func:`server_state` answers with the tenant's settings, policy and gate (its risk target), taken when the
request arrived, so a reload (:mod:`gate.server.reload`) never changes the policy of a request in flight.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import redis.asyncio
from starlette.requests import Request

from gate.audit.log import AuditLog, Outcome
from gate.config import Settings
from gate.pipeline import Gate
from gate.server.metrics import ProxyMetrics
from gate.server.policy import Policy
from gate.server.tenancy import policies_of
from gate.server.wire import NotReadyError
from gate.state.assessment_cache import AssessmentCache, assessment_cache
from gate.state.connection import async_client
from gate.tenants.table import Tenant, Tenants

REQUEST_ID_KEY = "request_id"
PRIVILEGED_KEY = "gate_privileged"
CALLER_KEY = "gate_caller"
TENANT_NAME_KEY = "tenant"  # the caller's tenant's name alone, as gate.server.feedback reads it
"""Where the guards (:mod:`gate.server.guards`) leave what they learned about a request, in ``scope["state"]``."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as authentication found it: the tenant and its policy, of the same configuration."""

    tenant: Tenant
    policy: Policy


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
    tenants: Tenants
    policies: Mapping[str, Policy]  # each tenant's, by name; swapped with ``tenants``
    state_client: redis.asyncio.Redis | None = None  # the rate limits' Redis client, kept across reloads
    started: int = field(default_factory=lambda: int(time.time()))
    gate: Gate | None = None
    load_error: str | None = None
    tenant: Tenant | None = None  # in a request's view (for_caller): whose request it is
    assessments: AssessmentCache | None = None  # identical greedy requests' assessments (assessment_cache_ttl_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerState:
        """The state of a new app for ``settings`` (its gate is set once it has loaded)."""
        slots = Slots(limit=settings.max_concurrency)
        client = _state_client(settings)
        tenants = Tenants.from_settings(settings, client=client)
        return cls(
            settings=settings,
            policy=Policy.from_settings(settings),
            slots=slots,
            # metrics_dir: a worker of gate serve --workers, whose /metrics shows all of them
            metrics=ProxyMetrics(limit=settings.max_concurrency, multiprocess_dir=settings.metrics_dir),
            audit=AuditLog.from_settings(settings),
            tenants=tenants,
            policies=policies_of(tenants),
            state_client=client,
            assessments=assessment_cache(settings),
        )

    def ready(self, gate: Gate) -> None:
        """Serve with ``gate`` from now on, each tenant with its risk target (``ArtifactError`` on a mismatch)."""
        self.tenants = self.tenants.bound(gate)
        self.gate = gate

    def swap(self, tenants: Tenants, policies: Mapping[str, Policy]) -> None:
        """Serve new requests with ``tenants`` (a reload); no await between the assignments: no request sees a mix."""
        self.tenants, self.policies = tenants, policies
        self.settings = tenants.settings
        self.policy = policies[tenants.anonymous.name]

    def caller(self, tenant: Tenant) -> Caller:
        """``tenant`` (of the current tenants) with its policy, for a request that authenticated as it."""
        return Caller(tenant, self.policies[tenant.name])

    def for_caller(self, caller: Caller) -> ServerState:
        """This state as the caller sees it: its tenant's settings, policy and gate (none until the gate is ready)."""
        tenant = caller.tenant
        return replace(self, settings=tenant.settings, policy=caller.policy, gate=tenant.gate, tenant=tenant)

    async def charge(self, outcome: Outcome) -> None:
        """Charge an answered request's usage to its tenant's daily quota, where that counts calls or tokens."""
        if self.tenant is not None and outcome.error is None:
            await self.tenant.charge(outcome.answer_cost + outcome.gate_cost, outcome.request_id)

    def ready_gate(self) -> Gate:
        """The loaded gate; a 503 while it is still loading or after it failed to load."""
        if self.gate is None:
            raise NotReadyError(self.load_error or "the gate is still loading; retry when /readyz answers 200")
        return self.gate


def server_state(request: Request) -> ServerState:
    """The state of the app serving ``request``, as the request's tenant sees it when it has one."""
    state: ServerState = request.app.state.server  # set once by create_app
    caller = request.scope.get("state", {}).get(CALLER_KEY)
    return state.for_caller(caller) if isinstance(caller, Caller) else state


def tenant_name(request: Request) -> str | None:
    """The name of the tenant whose key ``request`` came with (``default`` for no tenant or a plain key)."""
    caller = request.scope.get("state", {}).get(CALLER_KEY)
    return caller.tenant.name if isinstance(caller, Caller) else None


def _state_client(settings: Settings) -> redis.asyncio.Redis | None:
    """The Redis client of the rate limits when state is on Redis (it connects on first use, if ever)."""
    return None if settings.state == "memory" else async_client(settings)


def request_id(request: Request) -> str:
    """The id the request-id middleware gave ``request`` (a fresh one where it did not run)."""
    return str(request.scope.get("state", {}).get(REQUEST_ID_KEY) or uuid.uuid4().hex)


def is_privileged(request: Request) -> bool:
    """Whether ``request`` came with a privileged key (``privileged_api_keys``, or a privileged tenant's)."""
    return request.scope.get("state", {}).get(PRIVILEGED_KEY) is True
