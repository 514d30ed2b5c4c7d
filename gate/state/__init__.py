"""State shared by the replicas of the gate on Redis (``state: redis://...``); in-process by default.

:mod:`gate.state.connection` builds clients with bounded timeouts and the failure policy (open or closed)
every Redis user follows; :mod:`gate.state.redis_cache` keeps concept familiarity; :mod:`gate.state.quota`
enforces per-key rate limits and daily quotas atomically on the server. ``docs/scale.md`` is the overview.
"""
