"""The audit trail: one JSON line per decision (log), read back by gate audit (report)."""
