"""Tenants: API keys mapped to policies (mode, risk target, signals, budgets, quotas), hashed keys, reload.

``table`` builds the tenants of a configuration, ``keyfile`` stores their keys as keyed hashes (``gate keys``),
``target`` applies a tenant's risk target to the gate, ``reload`` swaps a new configuration in on SIGHUP.
"""
