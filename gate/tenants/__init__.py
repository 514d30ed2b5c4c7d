"""Tenants: API keys mapped to what applies to their holders (mode, risk target, signals, budgets, quotas).

``table`` builds the tenants of a configuration, ``keyfile`` stores their keys as keyed hashes (``gate keys``),
``target`` applies a tenant's risk target to the gate. No HTTP here: the proxy turns a tenant into its request
policy (``gate.server.tenancy``) and reloads tenants on SIGHUP (``gate.server.reload``).
"""
