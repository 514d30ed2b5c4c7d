"""One ``/metrics`` for all of ``gate serve --workers N``: each worker publishes its values, any worker sums them.

uvicorn's workers share the port, so a Prometheus scrape reaches whichever worker accepts it. Without
sharing, each scrape would show one worker's counters and ``rate()`` would read the jumps between workers
as resets. So every worker writes a snapshot of its registry to ``metrics_dir`` about once a second
(``gate-metrics-<pid>.json``, replaced atomically) and renders its own live values plus every other
worker's latest snapshot. Other workers' values are at most ``interval_s`` old.

The snapshot of a worker that exited stays in the directory, so the totals never go down (a restarted
worker starts from zero under a new pid); its gauges (requests in flight, its limit) stop counting once
the snapshot is older than ``stale_s``. ``gate serve`` empties the directory's snapshots when it starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from gate.server.prom import Gauge, Registry

logger = logging.getLogger(__name__)

PATTERN = "gate-metrics-*.json"


class SharedMetrics:
    """Publishes ``registry``'s snapshot to ``directory`` and reads the other workers' snapshots back."""

    def __init__(
        self,
        directory: Path,
        registry: Registry,
        *,
        interval_s: float = 1.0,
        stale_s: float = 5.0,
        worker: str | None = None,
    ) -> None:
        self.directory, self.registry = directory, registry
        self.interval_s, self.stale_s = interval_s, stale_s
        self.path = directory / f"gate-metrics-{worker or os.getpid()}.json"  # worker: the pid, unless told
        self._gauges = {metric.name for metric in registry.metrics if isinstance(metric, Gauge)}

    def publish(self) -> None:
        """Write this worker's snapshot (to a temporary name first, so readers never see half a file)."""
        data = json.dumps({"time": time.time(), "metrics": self.registry.snapshot()})
        partial = self.path.with_suffix(".tmp")
        partial.write_text(data, encoding="utf-8")
        os.replace(partial, self.path)

    def others(self) -> list[dict[str, Any]]:
        """Every other worker's latest snapshot; gauges only from snapshots fresher than ``stale_s``."""
        snapshots, now = [], time.time()
        for path in sorted(self.directory.glob(PATTERN)):
            if path == self.path:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                values, written = dict(data["metrics"]), float(data["time"])
            except (OSError, ValueError, KeyError, TypeError):  # vanished, or not ours: skip, never fail a scrape
                continue
            if now - written > self.stale_s:
                values = {name: state for name, state in values.items() if name not in self._gauges}
            snapshots.append(values)
        return snapshots

    def render(self) -> str:
        """The exposition with every worker's values summed."""
        return self.registry.render(self.others())

    async def run(self) -> None:
        """Publish every ``interval_s`` until cancelled, then once more (the final counts of this worker)."""
        try:
            while True:
                await asyncio.to_thread(self._publish_logged)
                await asyncio.sleep(self.interval_s)
        finally:
            self._publish_logged()

    def _publish_logged(self) -> None:
        try:
            self.publish()
        except OSError as exc:  # a full or vanished directory costs the other workers' view, never a request
            logger.warning("could not publish metrics to %s: %s", self.directory, exc)


def clear_snapshots(directory: Path) -> None:
    """Remove the snapshots of an earlier run (``gate serve`` calls this before it starts its workers)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob(PATTERN):
        path.unlink(missing_ok=True)
