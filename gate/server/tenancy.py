"""How the proxy applies a tenant (:mod:`gate.tenants`): its request policy, built from its settings.

A tenant's policy is the server's :class:`~gate.server.policy.Policy` made from the tenant's settings (the
server's with its overrides: mode, allowed modes, budgets), narrowed to the signals the tenant may use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from gate.server.policy import Plan, Policy
from gate.server.wire import ChatRequest, CompletionRequest
from gate.tenants.table import Tenant, Tenants


@dataclass(frozen=True)
class TenantPolicy(Policy):
    """A server policy whose signals a tenant narrows: a request picks among ``only_signals``, by default all."""

    only_signals: tuple[str, ...] | None = None

    def plan(
        self, request: ChatRequest | CompletionRequest, *, signals: Sequence[str], privileged: bool = False
    ) -> Plan:
        """:meth:`Policy.plan` over the served signals this tenant may use."""
        allowed = [key for key in signals if self.only_signals is None or key in self.only_signals]
        plan = super().plan(request, signals=allowed, privileged=privileged)
        return plan if plan.signals is not None else replace(plan, signals=tuple(allowed))


def policy_of(tenant: Tenant) -> Policy:
    """The request policy of ``tenant`` (a bad abstain template is a ``ConfigError``)."""
    policy = Policy.from_settings(tenant.settings)
    if tenant.signals is None:
        return policy
    return TenantPolicy(**{f.name: getattr(policy, f.name) for f in fields(Policy)}, only_signals=tenant.signals)


def policies_of(tenants: Tenants) -> Mapping[str, Policy]:
    """Every tenant's policy, by name (the implicit tenants share the name ``default`` and the server's policy)."""
    return {tenant.name: policy_of(tenant) for tenant in tenants.by_name.values()}
