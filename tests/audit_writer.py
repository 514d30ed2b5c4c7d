"""A worker process's audit writer, in its own small module so that spawned test processes import little."""

from __future__ import annotations

from pathlib import Path

from gate.audit.log import AuditLog, Outcome


def append_lines(path: Path, first: int, count: int, max_bytes: int) -> None:
    """Append ``count`` lines (request ids ``r{first}``...) to ``path``, as one ``gate serve`` worker would."""
    log = AuditLog(path, max_bytes=max_bytes, backups=1000, question="text")
    for index in range(first, first + count):
        outcome = Outcome(
            request_id=f"r{index}", route="chat", model="m", mode="enforce", question=f"q{index}", total_s=0.01
        )
        log.append(log.line(outcome).encode())
