"""``gate score`` and the signal collection of ``gate calibrate`` on a Ray cluster (``--ray ADDRESS``).

The driver (the command's own process) keeps everything that makes a run safe to interrupt: it reads the
input, skips what is already done and writes the output or the signal cache, with the same code as the
local path (:func:`gate.offline.score.score_lines`, :func:`gate.offline.collect.collect_rows`). Only the
scoring moves to the cluster.

Actors, not tasks: each actor builds its own :class:`~gate.pipeline.Gate` from the settings once (a Gate
holds a model process or connection pools, which cannot be shipped; the embedded model then loads once per
actor, not once per line) and scores up to ``concurrency`` lines at a time. Ray core, not Ray Data: this is
a map whose order and resume state live on the driver, and Ray Data would add pyarrow and pandas to the
install and take over the writing that the resume rules need here.

Ray is imported only here, and only when ``--ray`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gate.config import Settings
from gate.datasets import QAItem
from gate.errors import GateError, MissingExtraError
from gate.offline.signal_cache import CachedRow

if TYPE_CHECKING:
    from gate.offline.score import ScoreSummary

logger = logging.getLogger(__name__)

LOCAL = "local"
"""The address that starts a Ray instance inside this process (for one machine, and for tests)."""
CONNECT_TIMEOUT_S = 5.0
"""How long the head of a cluster may take to accept a TCP connection before the run gives up."""
READY_TIMEOUT_S = 300.0
"""How long the actors may take to start (a busy cluster queues them) before the run gives up."""


class RayBatchError(GateError):
    """The Ray cluster could not be reached, or a worker on it could not start or died."""


@dataclass(frozen=True)
class RayCluster:
    """Where the batch runs: ``auto``, ``host:port``, ``ray://host:10001``, or ``local`` (started here)."""

    address: str
    cpus: int | None = None  # the CPUs of a ``local`` instance (default: all of this machine's)
    actors: int | None = None  # Gates on the cluster (default: one per CPU it offers)

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ValueError("--ray needs an address: auto, HOST:PORT, ray://HOST:10001 or local")
        if self.cpus is not None and (self.address != LOCAL or self.cpus < 1):
            raise ValueError(f"--ray-cpus (a positive count) goes with --ray local only, got {self.cpus} "
                             f"with --ray {self.address}")
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"--ray-actors must be at least 1, got {self.actors}")


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain values for the workers to rebuild them from.

    Secrets stay ``SecretStr`` (they print as ``**********`` wherever Ray shows arguments) and reach the
    workers only inside the serialized call; the YAML file is not sent, its values are already in.
    """
    return settings.model_dump(exclude={"config_file"})


def score_on_ray(
    settings: Settings,
    source: Path,
    out: Path,
    cluster: RayCluster,
    *,
    sample_more: int = 0,
    concurrency: int = 4,
    signals: list[str] | None = None,
    on_line: Callable[[], None] | None = None,
) -> ScoreSummary:
    """``gate score`` with the lines scored on ``cluster``: the same output, order and resume as locally."""
    from gate.factory import suite_from
    from gate.offline.score import ScoreInput, score_lines
    from gate.suite import select

    select(suite_from(settings), signals)  # a typo in --estimators costs nothing, not a cluster start
    options = {"sample_more": sample_more, "signals": signals}

    async def run(gates: _RemoteGates) -> ScoreSummary:
        async def score_batch(records: list[ScoreInput]) -> list[dict[str, Any]]:
            work = (gates.call("score", record.model_dump(mode="json"), options) for record in records)
            return list(await asyncio.gather(*work))

        return await score_lines(source, out, score_batch, batch_size=concurrency * gates.size, on_line=on_line)

    return _run(settings, cluster, run, concurrency=concurrency, calibrated=True)


def collect_on_ray(
    settings: Settings,
    items: Sequence[tuple[str, QAItem]],
    cache: Path,
    cluster: RayCluster,
    *,
    on_row: Callable[[CachedRow, bool], None] | None = None,
) -> list[CachedRow]:
    """The signal collection of ``gate calibrate`` with the items graded on ``cluster`` (same cache rules)."""
    from gate.factory import suite_from
    from gate.offline.collect import collect_rows

    suite = suite_from(settings)

    async def run(gates: _RemoteGates) -> list[CachedRow]:
        async def grader(dataset: str, item: QAItem) -> CachedRow:
            fields = {"id": item.id, "question": item.question, "answers": item.answers, "context": item.context}
            return CachedRow.from_json(json.loads(await gates.call("grade", dataset, fields)))

        return await collect_rows(
            grader, suite, items, cache, model=settings.model, on_row=on_row, concurrency=gates.size
        )

    return _run(settings, cluster, run, concurrency=1, calibrated=False)


def _run(
    settings: Settings, cluster: RayCluster, work: Callable[..., Any], *, concurrency: int, calibrated: bool
) -> Any:
    with ray_session(cluster) as (ray, cpus):
        actors = cluster.actors or max(1, cpus)
        if actors > cpus:
            raise ValueError(f"--ray-actors {actors} needs as many CPUs; the cluster at {cluster.address} has {cpus}")
        gates = _RemoteGates(ray, settings, actors=actors, concurrency=concurrency, calibrated=calibrated)
        try:
            gates.wait_ready()
            return asyncio.run(work(gates))
        finally:
            gates.close()


@contextlib.contextmanager
def ray_session(cluster: RayCluster) -> Iterator[tuple[ModuleType, int]]:
    """Join the cluster (or start the local instance); yields ray and the CPUs the cluster offers.

    A process already connected to Ray (a notebook, a benchmark) keeps its connection: the address is not
    used then, and the connection is left open.
    """
    ray = import_ray()
    check_reachable(cluster.address)
    if ray.is_initialized():
        yield ray, int(ray.cluster_resources().get("CPU", 0))
        return
    try:
        if cluster.address == LOCAL:
            ray.init(num_cpus=cluster.cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise RayBatchError(f"could not reach the Ray cluster at {cluster.address!r}: {_first_line(exc)}") from None
    try:
        yield ray, int(ray.cluster_resources().get("CPU", 0))
    finally:
        ray.shutdown()


def check_reachable(address: str) -> None:
    """Refuse an address whose head does not answer a TCP connect.

    ``ray.init`` waits for an unreachable ``HOST:PORT`` without a limit (measured: over 10 minutes) and
    gives up on an unreachable ``ray://`` only after 30 s; one connect with a timeout says it at once.
    """
    if address == "auto":  # RAY_ADDRESS when set; else Ray finds an instance on this machine, or says there is none
        address = os.environ.get("RAY_ADDRESS", "")
    if address in (LOCAL, "auto", ""):
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"--ray {address!r} is not a Ray address: auto, HOST:PORT, ray://HOST:10001 or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayBatchError(f"could not reach the Ray cluster at {address!r}: {reason}") from None


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", extra="ray") from None
    return ray


class _RemoteGates:
    """Actors on the cluster, one Gate each; a call goes to an actor with a free slot, and a failure comes back
    as the error it was on the worker (so the command reports it as it would locally)."""

    def __init__(self, ray: ModuleType, settings: Settings, *, actors: int, concurrency: int, calibrated: bool) -> None:
        self._ray = ray
        # one CPU each, so the cluster never runs more Gates than it has cores; no restarts: a dead worker
        # fails the run, which the output's resume rules make cheap to rerun
        remote = ray.remote(num_cpus=1, max_concurrency=concurrency, max_restarts=0)(GateWorker)
        values = worker_settings(settings)
        self._actors = [remote.remote(values, calibrated=calibrated) for _ in range(actors)]
        self._slots = [actor for actor in self._actors for _ in range(concurrency)]
        self.size = actors

    def wait_ready(self) -> None:
        """Block until every actor has built its Gate; a worker that cannot start is reported here."""
        refs = [actor.start.remote() for actor in self._actors]
        try:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
            if len(ready) < len(refs):
                raise RayBatchError(
                    f"{len(refs) - len(ready)} Ray worker(s) did not start within {READY_TIMEOUT_S:.0f} s "
                    "(is the cluster busy, or short of CPUs?)"
                )
            self._ray.get(ready)
        except self._ray.exceptions.RayError as exc:
            raise self._unwrap(exc) from None

    async def call(self, method: str, *args: Any) -> Any:
        """Run ``method`` on an actor with a free slot (waiting for one), and return its result."""
        if not hasattr(self, "_free"):  # made on first use: a queue belongs to the running event loop
            self._free: asyncio.Queue[Any] = asyncio.Queue()
            for actor in self._slots:
                self._free.put_nowait(actor)
        actor = await self._free.get()
        try:
            return await getattr(actor, method).remote(*args)
        except self._ray.exceptions.RayError as exc:
            raise self._unwrap(exc) from None
        finally:
            self._free.put_nowait(actor)

    def close(self) -> None:
        """End the actors; their processes take their upstream connections with them (by then every result is
        back, or the run has failed and the lines in flight are lost either way)."""
        for actor in self._actors:
            self._ray.kill(actor)

    def _unwrap(self, exc: Exception) -> Exception:
        cause = getattr(exc, "cause", None)
        if isinstance(exc, self._ray.exceptions.RayTaskError) and isinstance(cause, Exception):
            return cause  # the worker's own error (an upstream failure, a bad setting): reported as locally
        return RayBatchError(f"a Ray worker failed: {_first_line(exc)}")


class GateWorker:
    """A Ray actor's state: one Gate, built from the settings values on the worker and kept for the run."""

    def __init__(self, values: dict[str, Any], *, calibrated: bool) -> None:
        self._values = values
        self._calibrated = calibrated

    def start(self) -> None:
        """Build the Gate. In a method, not the constructor: an error here reaches the driver as the error it
        was (a wrong artifact is a ``ValueError`` there too), where a constructor's arrives as text."""
        from gate.factory import budget_from, create_gate

        settings = Settings.model_validate(self._values)  # the driver's values as they are: no file, no environment
        self._gate = create_gate(settings, calibrated=self._calibrated)
        self._budget = budget_from(settings)

    async def score(self, line: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """One ``gate score`` line's verdict."""
        from gate.offline.score import ScoreInput, score_one

        return await score_one(self._gate, ScoreInput.model_validate(line), budget=self._budget, **options)

    async def grade(self, dataset: str, fields: dict[str, Any]) -> str:
        """One graded calibration item, as its signal-cache line (JSON, as the cache stores it)."""
        from gate.offline.collect import grade

        row = await grade(self._gate, QAItem(**fields), dataset=dataset)
        return row.to_json()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["LOCAL", "RayBatchError", "RayCluster", "collect_on_ray", "score_on_ray", "worker_settings"]
