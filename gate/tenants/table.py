"""Who is calling and what applies to it: the tenants of one configuration, built once per load or reload.

:class:`Tenants` is immutable: a reload builds a new one and the server swaps it in with one assignment
(:mod:`gate.server.reload`); a request keeps the :class:`Tenant` its key matched when it arrived, so it
finishes with the settings, target and quota it started with. The server turns a tenant's settings into its
request policy (:mod:`gate.server.tenancy`); this room knows nothing of HTTP.

Besides the configured tenants there are three implicit ones, so that configurations without tenants behave as
before: no key configured anywhere (no authentication), and holders of the plain keys of ``api_keys`` and of
``privileged_api_keys`` (rate limits per key, as before). All three report the name ``default``. Configured
tenants get one rate limit bucket and one daily quota each, shared by all their keys and, on Redis, by all
replicas.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import redis.asyncio
from pydantic import SecretStr

from estimators.base import Cost
from gate.config import CONFIG_ENV_VAR, Settings, TenantSettings
from gate.errors import ConfigError, StateUnavailableError
from gate.pipeline import Gate
from gate.state.connection import Outage
from gate.state.quota import Quota
from gate.tenants.keyfile import KeyFile, read_keys
from gate.tenants.target import RiskTarget

logger = logging.getLogger(__name__)

ANONYMOUS, PLAIN, PLAIN_PRIVILEGED = "anonymous", "api_keys", "privileged_api_keys"
"""The implicit tenants, by how a caller got there (internal keys of :attr:`Tenants.by_name`)."""
DEFAULT = "default"
"""The name the implicit tenants report (audit log, labels, metrics): ``gate monitor``'s tenant of a request that
names none, so audit logs written before tenants existed and after group alike."""
QuotaUnit = Literal["requests", "calls", "tokens"]


@dataclass(frozen=True)
class Tenant:
    """One caller's identity and what applies to it: its settings (the server's with its overrides), the signals
    it may use, its risk target and its quota."""

    name: str
    privileged: bool
    settings: Settings
    signals: tuple[str, ...] | None = None  # None: every signal the server computes
    target: RiskTarget = field(default_factory=RiskTarget)
    quota: Quota | None = None
    bucket_name: str | None = None  # its rate limit bucket; None: one per API key (the plain keys, as before)
    gate: Gate | None = None  # the server's gate deciding with this tenant's target, once the gate is ready
    quota_unit: QuotaUnit = "requests"

    def bucket(self, api_key: str) -> str:
        """Whose bucket and daily count a request with ``api_key`` takes from (the quota hashes it)."""
        return api_key if self.bucket_name is None else self.bucket_name

    async def charge(self, used: Cost, request_id: str) -> None:
        """Add what an answered request used, beyond the unit its admission took, to the tenant's day.

        Counted in calls or tokens (``daily_quota_unit``); the tenant's next request is refused once its day is
        spent. Redis failing here (``state_failure: closed``) loses the charge, logged: the answer is already made.
        """
        if self.quota is None or self.bucket_name is None or self.quota_unit == "requests":
            return
        units = used.calls if self.quota_unit == "calls" else used.prompt_tokens + used.completion_tokens
        try:
            await self.quota.charge(self.bucket_name, max(0, units - 1))
        except StateUnavailableError:
            logger.warning("tenant %s: usage of request %s not charged (Redis unavailable)", self.name, request_id)


@dataclass(frozen=True)
class Tenants:
    """The tenants of one configuration, their keys, and the paths open without a key."""

    settings: Settings
    by_name: Mapping[str, Tenant]
    hashed: KeyFile | None
    plain: tuple[tuple[bytes, str], ...]
    public: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings, *, client: redis.asyncio.Redis | None = None) -> Tenants:
        """Build every tenant of ``settings``; reads the keys file and tenants' artifacts (``ConfigError``)."""
        quotas = _Quotas(settings, client)
        by_name = {
            ANONYMOUS: Tenant(DEFAULT, False, settings, quota=quotas.of(settings), bucket_name=""),
            PLAIN: Tenant(DEFAULT, False, settings, quota=quotas.of(settings)),
            PLAIN_PRIVILEGED: Tenant(DEFAULT, True, settings, quota=quotas.of(settings)),
        }
        for tenant in settings.tenants:
            by_name[tenant.name] = _tenant(settings, tenant, quotas)
        plain = _plain(settings.api_keys, PLAIN) + _plain(settings.privileged_api_keys, PLAIN_PRIVILEGED)
        hashed = _hashed_keys(settings)
        if hashed is not None:
            orphans = sorted(key.id for key in hashed.keys if key.tenant not in by_name or key.tenant in _IMPLICIT)
            if orphans:
                logger.warning("keys %s name tenants the config does not define: they are refused", orphans)
        return cls(settings, by_name, hashed, plain, frozenset(settings.public_paths))

    @property
    def auth(self) -> bool:
        """Whether requests need a key: any key configured, or any tenant (a tenant without keys yet is closed)."""
        return bool(self.plain or self.settings.tenants or (self.hashed is not None and self.hashed.keys))

    @property
    def anonymous(self) -> Tenant:
        """Every caller when there is no authentication."""
        return self.by_name[ANONYMOUS]

    @property
    def configured(self) -> list[str]:
        """The configured tenants' names."""
        return [tenant.name for tenant in self.settings.tenants]

    def authenticate(self, api_key: str) -> Tenant | None:
        """The tenant ``api_key`` belongs to, or ``None``; every plain key is compared, in constant time."""
        raw = api_key.encode("utf-8", "surrogatepass")
        matched: set[str] = set()
        for key, name in self.plain:
            if hmac.compare_digest(raw, key):
                matched.add(name)
        if PLAIN_PRIVILEGED in matched or PLAIN in matched:  # a key in both lists is privileged, as before
            return self.by_name[PLAIN_PRIVILEGED if PLAIN_PRIVILEGED in matched else PLAIN]
        entry = self.hashed.match(api_key) if self.hashed is not None else None
        if entry is None or entry.tenant in _IMPLICIT:
            return None
        return self.by_name.get(entry.tenant)

    def bound(self, gate: Gate) -> Tenants:
        """These tenants with the ready ``gate``, each with its risk target (``ArtifactError`` on a mismatch)."""
        served = {spec.key for spec in gate.suite}
        for tenant in self.settings.tenants:
            unserved = sorted(set(tenant.signals or ()) - served)
            if unserved:
                logger.warning("tenant %s names signals this gate does not compute: %s", tenant.name, unserved)
        model = self.settings.model
        tenants = {name: replace(t, gate=t.target.gate_for(gate, model=model)) for name, t in self.by_name.items()}
        return replace(self, by_name=tenants)


_IMPLICIT = frozenset({ANONYMOUS, PLAIN, PLAIN_PRIVILEGED, DEFAULT})


class _Quotas:
    """Quotas for several tenants on one Redis client and one outage state (an outage is logged once)."""

    def __init__(self, settings: Settings, client: redis.asyncio.Redis | None) -> None:
        self.client = client
        self.outage = Outage.from_settings("rate limits", settings)

    def of(self, settings: Settings) -> Quota | None:
        if settings.rate_limit_rps is None and settings.daily_quota is None:
            return None
        if self.client is None:  # the settings refuse limits without Redis; this is the server's wiring
            raise ConfigError("rate limits and quotas need state on Redis")
        return Quota(
            self.client,
            outage=self.outage,
            rate_per_s=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            daily=settings.daily_quota,
        )


def _tenant(settings: Settings, tenant: TenantSettings, quotas: _Quotas) -> Tenant:
    own: Any = settings.model_copy(update=tenant.overrides())
    if tenant.rate_limit_rps is not None and tenant.rate_limit_burst is None:
        own = own.model_copy(update={"rate_limit_burst": None})  # the server's burst belongs to the server's rate
    artifact = relative_to_config(settings, tenant.artifact) if tenant.artifact is not None else None
    try:
        target = RiskTarget.load(artifact, tenant.thresholds)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"tenant {tenant.name!r}: {exc}") from None
    signals = tuple(tenant.signals) if tenant.signals is not None else None
    return Tenant(
        tenant.name,
        tenant.privileged,
        own,
        signals,
        target,
        quotas.of(own),
        bucket_name=f"tenant:{tenant.name}",
        quota_unit=tenant.daily_quota_unit,
    )


def check_targets(settings: Settings, gate: Gate) -> None:
    """Refuse tenants' artifacts that cannot be read or were fitted for another model or signals than ``gate``'s
    (``ConfigError``, ``ArtifactError``): what the server would find once the gate is ready, found before it starts."""
    for tenant in settings.tenants:
        if tenant.artifact is not None:
            try:
                target = RiskTarget.load(relative_to_config(settings, tenant.artifact), None)
                target.gate_for(gate, model=settings.model)
            except ValueError as exc:  # ArtifactError included
                raise ConfigError(f"tenant {tenant.name!r}: {exc}") from None


def _hashed_keys(settings: Settings) -> KeyFile | None:
    """The keys file's keys, if one is configured (empty until ``gate keys add`` makes it, logged)."""
    if settings.keys_file is None:
        return None
    path = relative_to_config(settings, settings.keys_file)
    if not path.exists():
        logger.warning("keys file %s does not exist yet: no tenant key is accepted (`gate keys add` makes it)", path)
    return read_keys(path)


def _plain(secrets: list[SecretStr], name: str) -> tuple[tuple[bytes, str], ...]:
    keys = tuple(key.get_secret_value().encode() for key in secrets)
    if any(not key.strip() for key in keys):
        raise ConfigError(f"{name} holds an empty key; remove it (no keys at all turns authentication off)")
    return tuple((key, name) for key in keys)


def relative_to_config(settings: Settings, path: Path) -> Path:
    """``path`` as written in the config: a relative one is taken from the config file's folder."""
    if path.is_absolute():
        return path
    config = settings.config_file or (Path(os.environ[CONFIG_ENV_VAR]) if os.environ.get(CONFIG_ENV_VAR) else None)
    return (config.parent / path) if config is not None else path
