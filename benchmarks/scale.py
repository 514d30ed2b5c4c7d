"""Three ``gate serve`` replicas behind HAProxy with Redis on loopback: faults, a replica SIGKILLed mid-run, quotas.

Run: ``.venv/bin/python -m benchmarks.scale [--requests 10000] [--concurrency 64] [--fail-rate 0.1]
[--hang-rate 0.05] [--timeout-s 1] [--quota-share 0.8] [--seed 0] [--keep-alive off|on|both]``
(``benchmarks/results/scale.md``: ``--keep-alive both``, the committed HAProxy configuration and the same with
client keep-alive, one after the other).

The topology of ``deploy/``, on free loopback ports in a temporary directory, every part a real process in its
own process group (all of them ended in ``finally``, whatever happened):

- ``redis-server`` with ``deploy/redis.conf`` (append-only file, ``maxmemory``, a password) unless a URL is
  given (the CI test passes the one of ``tests/redis_fixture.py``);
- ``benchmarks/stub_upstream.py``: an OpenAI-compatible upstream answering a seeded ``--fail-rate`` of calls
  with a 500 and leaving ``--hang-rate`` unanswered (past the gate's upstream timeout ``--timeout-s``);
- three ``gate serve`` replicas with ``deploy/gate.yaml`` (``GATE_*`` variables override the addresses, the
  timeouts and the quota), each with its own audit file and the shared audit stream on Redis;
- ``haproxy`` with ``deploy/haproxy.cfg``, only its addresses and paths rewritten.

The client sends ``--requests`` chat requests at ``--concurrency`` through HAProxy, spread over ``--keys`` API
keys whose daily quota is ``--quota-share`` of the requests each key sends (so the quota is hit during the run).
When ``--kill-at`` of them are answered, one replica gets SIGKILL; it is started again ``--restart-after-s``
later, and once HAProxy has it up again ``--probe-requests`` more requests (another key) check that all three
replicas serve. Then it counts every request: its response by source (the gate, which sets ``x-request-id``;
HAProxy; none), the audit entries of each ``request_id`` in the three files and on the stream, the quota
counters on Redis against the admitted requests, and the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import redis

from gate.state.quota import key_hash

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RESULTS = ROOT / "benchmarks" / "results"
REPLICAS = ("gate1", "gate2", "gate3")
VICTIM = "gate2"
REWRITE_MARK = "rewritten by benchmarks/scale.py"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
START_TIMEOUT_S = 60.0
UP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
Fault = Literal["kill", "rolling"]


@dataclass(frozen=True)
class Scale:
    """What one run does; the defaults are the issue's size."""

    requests: int = 10_000
    concurrency: int = 64
    fail_rate: float = 0.10
    hang_rate: float = 0.05
    timeout_s: float = 1.0  # the gate's upstream timeout: what a hung upstream call costs
    request_timeout_s: float = 10.0  # the gate's whole-request limit (HAProxy's timeout server is longer)
    keys: int = 2
    quota_share: float = 0.8  # each key's daily quota, as a share of the requests it sends
    kill_at: float = 0.5  # SIGKILL one replica once this share of the requests is answered
    restart_after_s: float = 1.0
    probe_requests: int = 30  # after the restarted replica is up again, through HAProxy, on a key of their own
    client_timeout_s: float = 120.0  # above every server-side timeout: a client timeout is a hang
    signals: tuple[str, ...] = ("logprob_min",)
    keep_alive: bool = False  # drop deploy/haproxy.cfg's `option httpclose` (client keep-alive through HAProxy)
    deadline_s: float | None = None  # a hard limit on the load, the restart and the probes together (the CI test)
    # "kill": SIGKILL mid-run (a crash); "rolling": deploy/README.md's upgrade of one replica (drain, SIGTERM, start,
    # wait for /readyz, set ready)
    fault: Fault = "kill"
    seed: int = 0

    def key(self, index: int) -> str:
        return f"sk-scale-client-{index}"

    @property
    def probe_key(self) -> str:
        return "sk-scale-probe"

    def sent_by_key(self, index: int) -> int:
        """Requests key ``index`` sends (request ``i`` uses key ``i % keys``)."""
        return len(range(index, self.requests, self.keys))

    @property
    def daily_quota(self) -> int:
        """One quota for every key (the gate has one ``daily_quota``): a share of what the busiest key sends."""
        return max(1, math.floor(self.quota_share * self.sent_by_key(0)))


@dataclass(frozen=True)
class Outcome:
    """One client request: where its response came from, its status (0: none), and when."""

    index: int
    phase: str  # "load" or "probe"
    key: str
    started: float  # seconds since the run began
    seconds: float
    status: int = 0
    # "gate" (its JSON, with x-request-id), "haproxy" (its own page), "truncated" (status and headers, then the
    # connection closed: the replica was killed between its headers and its body), "none" (no response at all)
    source: str = "none"
    request_id: str | None = None
    code: str | None = None  # the gate's error code, or the client error's class and message

    @property
    def name(self) -> str:
        if self.source == "none":
            return f"no response ({self.code})"
        if self.source == "haproxy":
            return f"HAProxy {self.status}"
        if self.source == "truncated":
            return f"gate {self.status}, body cut off ({self.code})"
        return f"gate {self.status}" + (f" {self.code}" if self.code else "")


@dataclass
class Events:
    """When the replica was killed (SIGKILL, or SIGTERM after the drain of a rolling restart), seen down by HAProxy
    (or drained), started again, seen up; seconds since the run began."""

    killed: float | None = None
    down: float | None = None
    restarted: float | None = None
    up: float | None = None
    answered_at_kill: int = 0


@dataclass
class Run:
    """Everything one run measured (the report is made from it)."""

    scale: Scale
    outcomes: list[Outcome]
    events: Events
    load_seconds: float
    file_entries: dict[str, list[dict[str, object]]]  # replica -> its audit file's records
    stream_entries: list[dict[str, object]]
    quota_used: dict[str, int]  # key -> the day's counter on Redis
    haproxy_log: list[str]
    served_by: dict[str, int] = field(default_factory=dict)  # replica -> probe requests it answered


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Children:
    """Child processes, each in a process group of its own, so that ending one ends whatever it started."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                command,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.work,
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def signal(self, name: str, sig: signal.Signals) -> None:
        proc = self.procs[name]
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def stop(self, name: str) -> None:
        """SIGTERM to the group, SIGKILL after ``STOP_TIMEOUT_S``; reaps the process."""
        proc = self.procs[name]
        if proc.poll() is None:
            self.signal(name, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        self.signal(name, signal.SIGKILL)  # whatever is left of its group (also when the leader has exited)
        if proc.poll() is None:
            proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def wait_ready(self, name: str, probe: object, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll ``probe()`` (True when ready) until it is, the process exits, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.procs[name].returncode}:\n{self.log_tail(name)}")
            if probe():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s:\n{self.log_tail(name)}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def redis_ok(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed: `make test` installs it (Debian package {name})")
    return path


# --- configuration from deploy/ -------------------------------------------------------------------------------


def haproxy_config(
    template: str,
    *,
    port: int,
    stats_port: int,
    admin_socket: Path,
    servers: dict[str, int],
    keep_alive: bool = False,
) -> str:
    """``deploy/haproxy.cfg`` with the lines marked ``rewritten by benchmarks/scale.py`` pointed at this run's
    loopback ports and files; every other line (timeouts, retry policy, checks, balance) is kept as it is, but
    for ``option httpclose`` when ``keep_alive`` asks for the variant with client keep-alive."""
    out, section, seen = [], "", Counter[str]()
    for line in template.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.strip()
        if line.split() == ["option", "httpclose"]:
            seen["httpclose"] += 1
            if keep_alive:
                continue
        if REWRITE_MARK not in line or line.lstrip().startswith("#"):
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        words = line.split()
        if words[:2] == ["stats", "socket"]:
            out.append(f"{indent}stats socket {admin_socket} mode 600 level admin")
        elif words[0] == "bind":
            out.append(f"{indent}bind 127.0.0.1:{stats_port if section == 'frontend stats' else port}")
        elif words[0] == "server" and words[1] in servers:
            out.append(f"{indent}server {words[1]} 127.0.0.1:{servers[words[1]]}")
        else:
            raise ValueError(f"deploy/haproxy.cfg: do not know how to rewrite {line.strip()!r}")
        seen[words[0]] += 1
    if seen != Counter({"stats": 1, "bind": 2, "server": len(servers), "httpclose": 1}):
        wanted = f"option httpclose, and one stats socket, two binds, {len(servers)} servers"
        raise ValueError(f"deploy/haproxy.cfg: expected {wanted} marked {REWRITE_MARK!r}; got {dict(seen)}")
    return "\n".join(out) + "\n"


def redis_command(work: Path, port: int, password: str) -> list[str]:
    """``redis-server deploy/redis.conf`` with this run's port, directory and password (later arguments win)."""
    return [
        binary("redis-server"),
        str(DEPLOY / "redis.conf"),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--requirepass", password),
        *("--daemonize", "no", "--maxmemory", "512mb"),
    ]


def gate_env(scale: Scale, *, redis_url: str, stub_port: int, audit: Path, cache: Path) -> dict[str, str]:
    """A replica's environment: ``deploy/gate.yaml`` plus overrides for this run (``GATE_*`` wins over the file)."""
    return {
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "GATE_CONFIG": str(DEPLOY / "gate.yaml"),
        "GATE_MODEL": "openai/stub",
        "GATE_API_BASE": f"http://127.0.0.1:{stub_port}/v1",
        "GATE_API_KEY": "sk-upstream-scale",
        "GATE_API_KEYS": json.dumps([*(scale.key(i) for i in range(scale.keys)), scale.probe_key]),
        "GATE_STATE": redis_url,
        "GATE_AUDIT_PATH": str(audit),
        "GATE_SIGNALS": json.dumps(list(scale.signals)),
        "GATE_TIMEOUT_S": str(scale.timeout_s),
        "GATE_MAX_RETRIES": "0",  # every upstream fault reaches the client: the accounting is exact
        "GATE_REQUEST_TIMEOUT_S": str(scale.request_timeout_s),
        "GATE_DAILY_QUOTA": str(scale.daily_quota),
        # The deploy file's per-key rate (5/s) would refuse most of a benchmark's requests at random; the daily
        # quota is the limit under test. Same script, same keys: a rate limit holds across replicas the same way.
        "GATE_RATE_LIMIT_RPS": "100000",
        "GATE_RATE_LIMIT_BURST": "100000",
        "GATE_FAMILIARITY_CACHE": "off",
        "GATE_CACHE_DIR": str(cache),
        "GATE_LOG_LEVEL": "warning",
    }


def gate_command(port: int) -> list[str]:
    """``gate serve`` from this checkout (an installed ``gate`` script may import another copy)."""
    return [sys.executable, "-c", "from gate.cli.main import main; main()", "serve", "--port", str(port)]


# --- HAProxy's runtime API -------------------------------------------------------------------------------------


def admin(admin_socket: Path, command: str) -> str:
    """One command on HAProxy's runtime API (what ``socat stdio /run/haproxy/admin.sock`` does); its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(admin_socket))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_stats(admin_socket: Path) -> dict[str, dict[str, str]]:
    """``show stat``: each replica's row (``status``: UP, DOWN, DRAIN, "UP 1/2" ...; ``scur``: its sessions)."""
    text = admin(admin_socket, "show stat").lstrip("# ")
    return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["svname"] in REPLICAS}


def server_states(admin_socket: Path) -> dict[str, str]:
    return {name: row["status"] for name, row in server_stats(admin_socket).items()}


def all_up(admin_socket: Path) -> bool:
    try:
        states = server_states(admin_socket)
    except OSError:
        return False
    return len(states) == len(REPLICAS) and all(state == "UP" for state in states.values())


# --- the client -----------------------------------------------------------------------------------------------


def failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:120]


async def one_request(client: httpx.AsyncClient, url: str, index: int, phase: str, key: str, began: float) -> Outcome:
    """Send one request; its outcome by where the response came from, and whether all of it came."""
    started = time.perf_counter()
    at = {"index": index, "phase": phase, "key": key, "started": started - began}
    body = {"model": "openai/stub", "messages": QUESTION}
    try:
        async with client.stream("POST", url, json=body, headers={"authorization": f"Bearer {key}"}) as response:
            status, request_id = response.status_code, response.headers.get("x-request-id")
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:  # the status line and headers came, then the connection closed
                seconds = time.perf_counter() - started
                return Outcome(
                    **at, seconds=seconds, status=status, source="truncated", request_id=request_id, code=failure(exc)
                )  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        return Outcome(**at, seconds=time.perf_counter() - started, code=failure(exc))  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if request_id is None:  # HAProxy's own answer (a replica died with the request, or none was available)
        return Outcome(**at, seconds=seconds, status=status, source="haproxy")  # type: ignore[arg-type]
    code = None
    if status != 200:
        try:
            code = json.loads(content)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "not-openai-error-json"
    return Outcome(**at, seconds=seconds, status=status, source="gate", request_id=request_id, code=code)  # type: ignore[arg-type]


async def send(
    url: str,
    jobs: list[tuple[int, str]],
    concurrency: int,
    *,
    phase: str,
    began: float,
    timeout_s: float,
    answered: list[Outcome],
    on_answer: object = None,
) -> None:
    """``jobs`` (index, key), ``concurrency`` at a time; each outcome is appended to ``answered`` as it comes."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    remaining = iter(jobs)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:

        async def worker() -> None:
            for index, key in remaining:
                answered.append(await one_request(client, url, index, phase, key, began))
                if on_answer is not None:
                    on_answer()  # type: ignore[operator]

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- one run --------------------------------------------------------------------------------------------------


@dataclass
class Topology:
    """Ports, paths and processes of one run."""

    scale: Scale
    work: Path
    children: Children
    redis_url: str
    stub_port: int
    ports: dict[str, int]
    haproxy_port: int
    admin_socket: Path

    def audit_path(self, replica: str) -> Path:
        return self.work / f"audit-{replica}.jsonl"

    def start_replica(self, replica: str) -> None:
        env = gate_env(
            self.scale,
            redis_url=self.redis_url,
            stub_port=self.stub_port,
            audit=self.audit_path(replica),
            cache=self.work / "cache",
        )
        self.children.start(replica, gate_command(self.ports[replica]), env)


@contextmanager
def topology(scale: Scale, work: Path, redis_url: str | None = None) -> Iterator[Topology]:
    """Redis (unless ``redis_url`` is given), the stub, three replicas and HAProxy, all up; all ended afterwards."""
    haproxy = binary("haproxy")
    work.mkdir(parents=True, exist_ok=True)
    children = Children(work)
    try:
        if redis_url is None:
            port, password = free_port(), secrets.token_hex(16)
            children.start("redis", redis_command(work, port, password))
            redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
            url = redis_url
            children.wait_ready("redis", lambda: redis_ok(url))
        stub_port = free_port()
        stub = [sys.executable, "-m", "benchmarks.stub_upstream", "--port", str(stub_port)]
        stub += ["--fail-rate", str(scale.fail_rate), "--hang-rate", str(scale.hang_rate), "--seed", str(scale.seed)]
        children.start("stub", stub, {"PYTHONPATH": str(ROOT)})
        children.wait_ready("stub", lambda: http_ok(f"http://127.0.0.1:{stub_port}/v1/models"))
        ports = {replica: free_port() for replica in REPLICAS}
        admin_socket = work / "haproxy-admin.sock"
        top = Topology(scale, work, children, redis_url, stub_port, ports, free_port(), admin_socket)
        for replica in REPLICAS:  # all three import at once: the slow part of a start
            top.start_replica(replica)
        for replica in REPLICAS:
            children.wait_ready(replica, lambda r=replica: http_ok(f"http://127.0.0.1:{ports[r]}/readyz"))
        config = haproxy_config(
            (DEPLOY / "haproxy.cfg").read_text(),
            port=top.haproxy_port,
            stats_port=free_port(),
            admin_socket=admin_socket,
            servers=ports,
            keep_alive=scale.keep_alive,
        )
        (work / "haproxy.cfg").write_text(config)
        checking = [haproxy, "-c", "-q", "-f", str(work / "haproxy.cfg")]
        check = subprocess.run(checking, capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects the generated configuration:\n{check.stdout}{check.stderr}")
        children.start("haproxy", [haproxy, "-db", "-f", str(work / "haproxy.cfg")])
        children.wait_ready("haproxy", lambda: all_up(admin_socket))
        yield top
    finally:
        children.close()


async def kill_and_restart(top: Topology, kill: asyncio.Event, events: Events, began: float) -> None:
    """Once ``kill`` is set: disrupt the victim as ``scale.fault`` says, then watch it come back up."""
    await kill.wait()
    if top.scale.fault == "rolling":
        await roll(top, events, began)
        return
    top.children.signal(VICTIM, signal.SIGKILL)
    events.killed = time.perf_counter() - began
    restart_at = time.perf_counter() + top.scale.restart_after_s
    deadline = time.perf_counter() + UP_TIMEOUT_S
    restarted = False
    while time.perf_counter() < deadline:
        try:
            state = (await asyncio.to_thread(server_states, top.admin_socket)).get(VICTIM, "")
        except OSError:
            state = ""
        now = time.perf_counter() - began
        if events.down is None and state.startswith("DOWN"):
            events.down = now
        if not restarted and time.perf_counter() >= restart_at:
            await asyncio.to_thread(top.children.procs[VICTIM].wait)  # reap the killed one first
            top.start_replica(VICTIM)
            events.restarted, restarted = time.perf_counter() - began, True
        if restarted and events.down is not None and state == "UP":
            events.up = now
            return
        await asyncio.sleep(0.05)


async def roll(top: Topology, events: Events, began: float) -> None:
    """Upgrade the victim as deploy/README.md says: drain it, wait until HAProxy has no session on it, SIGTERM (the
    replica finishes what it still has), start it again, wait for its /readyz, set it ready, wait for UP."""
    socket_, backend_server = top.admin_socket, f"gate_replicas/{VICTIM}"

    def since() -> float:
        return time.perf_counter() - began

    async def until(condition: object, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not await asyncio.to_thread(condition):  # type: ignore[arg-type]
            if time.perf_counter() > deadline:
                raise TimeoutError(f"rolling restart of {VICTIM}: no progress within {timeout_s:g} s")
            await asyncio.sleep(0.05)

    await asyncio.to_thread(admin, socket_, f"set server {backend_server} state drain")
    events.down = since()
    await until(lambda: server_stats(socket_)[VICTIM]["scur"] in ("", "0"), top.scale.request_timeout_s + 5)
    top.children.signal(VICTIM, signal.SIGTERM)
    events.killed = since()
    await asyncio.to_thread(top.children.procs[VICTIM].wait, STOP_TIMEOUT_S + top.scale.request_timeout_s)
    top.start_replica(VICTIM)
    events.restarted = since()
    await until(lambda: http_ok(f"http://127.0.0.1:{top.ports[VICTIM]}/readyz"), START_TIMEOUT_S)
    await asyncio.to_thread(admin, socket_, f"set server {backend_server} state ready")
    await until(lambda: server_states(socket_).get(VICTIM) == "UP", UP_TIMEOUT_S)
    events.up = since()


async def drive(top: Topology) -> tuple[list[Outcome], Events, float]:
    """The load with the kill, then (once the victim is up again) the probe requests."""
    scale = top.scale
    url = f"http://127.0.0.1:{top.haproxy_port}/v1/chat/completions"
    outcomes: list[Outcome] = []
    events, kill = Events(), asyncio.Event()
    kill_after = max(1, int(scale.kill_at * scale.requests))

    def on_answer() -> None:
        if len(outcomes) >= kill_after and not kill.is_set():
            events.answered_at_kill = len(outcomes)
            kill.set()

    began = time.perf_counter()
    watcher = asyncio.create_task(kill_and_restart(top, kill, events, began))
    jobs = [(index, scale.key(index % scale.keys)) for index in range(scale.requests)]
    await send(
        url,
        jobs,
        scale.concurrency,
        phase="load",
        began=began,
        timeout_s=scale.client_timeout_s,
        answered=outcomes,
        on_answer=on_answer,
    )
    load_seconds = time.perf_counter() - began
    kill.set()  # a run too short to reach kill_at still kills (and says when)
    await asyncio.wait_for(watcher, timeout=UP_TIMEOUT_S + 10)
    probes = [(scale.requests + index, scale.probe_key) for index in range(scale.probe_requests)]
    await send(
        url,
        probes,
        1,  # one at a time: leastconn then takes the replicas in turn, so each must answer some
        phase="probe",
        began=began,
        timeout_s=scale.client_timeout_s,
        answered=outcomes,
    )
    return outcomes, events, load_seconds


def read_audit(path: Path) -> list[dict[str, object]]:
    """The records of an audit file; a torn last line (a replica killed while writing) is skipped."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def collect(top: Topology, outcomes: list[Outcome], events: Events, load_seconds: float) -> Run:
    """Read the audit files, the stream, the quota counters and HAProxy's log after the run."""
    scale = top.scale
    client = redis.Redis.from_url(top.redis_url, socket_timeout=5, decode_responses=True)
    try:
        stream = [json.loads(fields["line"]) for _, fields in client.xrange("gate:audit")]
        used = {}
        for key in [*(scale.key(i) for i in range(scale.keys)), scale.probe_key]:
            counters = client.scan_iter(match=f"gate:quota:{{{key_hash(key)}}}:*")
            used[key] = sum(int(client.get(counter) or 0) for counter in counters)
    finally:
        client.close()
    files = {replica: read_audit(top.audit_path(replica)) for replica in REPLICAS}
    probe_ids = {o.request_id for o in outcomes if o.phase == "probe" and o.request_id}
    served_by = {replica: sum(r["request_id"] in probe_ids for r in records) for replica, records in files.items()}
    log = top.work / "haproxy.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return Run(scale, outcomes, events, load_seconds, files, stream, used, lines, served_by)


def run(scale: Scale, work: Path, redis_url: str | None = None) -> Run:
    """One whole run in ``work``: start everything, drive the load, read back, end everything."""
    with topology(scale, work, redis_url) as top:
        outcomes, events, load_seconds = asyncio.run(asyncio.wait_for(drive(top), scale.deadline_s))
        return collect(top, outcomes, events, load_seconds)


# --- counting -------------------------------------------------------------------------------------------------

HTTPLOG = re.compile(
    r"\] \S+ (?P<backend>[^/\s]+)/(?P<server>\S+) \S+ (?P<status>-?\d+) \S+ \S+ \S+ (?P<state>\S{4}) "
    r"\d+/\d+/\d+/\d+/(?P<retries>\+?\d+) "
)
GATE_ERRORS = {(502, "upstream_error"), (504, "upstream_timeout")}
"""The gate's own 5xx for a failing (500) or hanging upstream: answers with an audit entry, not failures of the
topology. Anything else with a 5xx (a 500, a 503 state_unavailable) is a finding."""


@dataclass(frozen=True)
class ProxyLog:
    """What HAProxy's log says about the proxied requests and the replicas' health."""

    states: Counter[str]  # termination state (``----``: normal; ``SH--``: the replica closed before answering)
    by_server: Counter[str]
    retried: int  # requests HAProxy sent again after a failed connection (``%rc`` > 0)
    redispatched: int  # ... to another replica (``%rc`` with ``+``)
    down: int  # "Server gate_replicas/... is DOWN" lines
    up: int


def proxy_log(lines: list[str]) -> ProxyLog:
    """Read ``option httplog`` lines (``... %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc``,
    the retries prefixed with ``+`` when redispatched) and the servers' state changes."""
    states: Counter[str] = Counter()
    servers: Counter[str] = Counter()
    retried = redispatched = down = up = 0
    for line in lines:
        if line.startswith("Server gate_replicas/"):
            down += " is DOWN" in line
            up += " is UP" in line
            continue
        match = HTTPLOG.search(line)
        if match is None:
            continue
        states[match["state"]] += 1
        servers[match["server"]] += 1
        retried += match["retries"].lstrip("+") != "0"
        redispatched += match["retries"].startswith("+")
    return ProxyLog(states, servers, retried, redispatched, down, up)


@dataclass(frozen=True)
class Tally:
    """The counts of one run that the checks, the report and the CI test read."""

    total: int
    no_response: Counter[str]  # reason -> requests without any response
    truncated: int  # responses whose body was cut off (their replica was killed between headers and body)
    haproxy: Counter[int]  # HAProxy's own answers by status (502: the replica died with the request)
    gate_errors: Counter[tuple[int, str]]  # the gate's non-200, non-429 answers by (status, code)
    answered: int  # 200 from the gate
    audited: int  # gate answers that reach the route: 200 and its own errors (429s are refused before it)
    missing_in_files: int  # such answers without exactly one entry in the three files together
    missing_on_stream: int  # ... without exactly one entry on the stream
    duplicated: int  # request ids with more than one entry, in the files or on the stream
    refused_audited: int  # 429s with an entry
    orphans: int  # entries (files or stream) whose request got no gate response: written, then killed
    lost_in_flight: int  # HAProxy's answers, cut-off responses, none at all: the requests the killed replica held
    admitted: dict[str, int]  # key -> requests not refused by the quota (gate non-429, HAProxy 502, no response)
    sent: dict[str, int]
    in_flight_at_kill: int  # client side, all replicas


def tally(run_: Run) -> Tally:
    outcomes = run_.outcomes
    gate = [o for o in outcomes if o.source == "gate"]
    # A cut-off response has its audit entry too: the gate writes it before it starts answering.
    audited = [o for o in outcomes if o.request_id and o.status != 429]
    refused = [o for o in outcomes if o.request_id and o.status == 429]
    in_files = Counter(r["request_id"] for records in run_.file_entries.values() for r in records)
    in_stream = Counter(r["request_id"] for r in run_.stream_entries)
    responded = {o.request_id for o in outcomes if o.request_id}
    killed = run_.events.killed
    return Tally(
        total=len(outcomes),
        no_response=Counter(o.code or "" for o in outcomes if o.source == "none"),
        truncated=sum(o.source == "truncated" for o in outcomes),
        haproxy=Counter(o.status for o in outcomes if o.source == "haproxy"),
        gate_errors=Counter((o.status, o.code or "") for o in gate if o.status not in (200, 429)),
        answered=sum(o.status == 200 for o in gate),
        audited=len(audited),
        missing_in_files=sum(in_files[o.request_id] != 1 for o in audited),
        missing_on_stream=sum(in_stream[o.request_id] != 1 for o in audited),
        duplicated=sum(count > 1 for count in in_files.values()) + sum(count > 1 for count in in_stream.values()),
        refused_audited=sum(in_files[o.request_id] + in_stream[o.request_id] > 0 for o in refused),
        orphans=len({rid for rid in [*in_files, *in_stream] if rid not in responded}),
        lost_in_flight=sum(o.source != "gate" for o in outcomes),
        admitted=dict(Counter(o.key for o in outcomes if not (o.request_id and o.status == 429))),
        sent=dict(Counter(o.key for o in outcomes)),
        in_flight_at_kill=(
            sum(o.started <= killed < o.started + o.seconds for o in outcomes) if killed is not None else 0
        ),
    )


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def checks(run_: Run) -> list[Check]:
    """The issue's invariants, each with what was measured (the CI test asserts them, the report lists them)."""
    scale, t, events = run_.scale, tally(run_), run_.events
    log = proxy_log(run_.haproxy_log)
    hangs = sum(n for reason, n in t.no_response.items() if "Timeout" in reason)
    unexpected = {f"{s} {c}": n for (s, c), n in t.gate_errors.items() if (s, c) not in GATE_ERRORS and s >= 500}
    quota_rows = []
    for key in [*(scale.key(i) for i in range(scale.keys)), scale.probe_key]:
        counter, expected = run_.quota_used.get(key, 0), min(t.sent.get(key, 0), scale.daily_quota)
        over = t.admitted.get(key, 0) - counter
        quota_rows.append((key, counter == expected and 0 <= over <= scale.concurrency, counter, expected, over))
    return [
        Check(
            "every request got a response",
            not t.no_response,
            f"{sum(t.no_response.values())} without one"
            + (f": {dict(t.no_response)}" if t.no_response else "")
            + f"; {t.truncated} with status and headers but the body cut off (`SD--`)",
        ),
        Check(
            "no request hung (client timeout)",
            hangs == 0,
            f"{hangs} client timeouts after {scale.client_timeout_s:g} s",
        ),
        Check(
            "HAProxy's own answers (only 502) and cut-off bodies: only for requests the killed replica held",
            set(t.haproxy) <= {502} and t.lost_in_flight <= t.in_flight_at_kill,
            f"{dict(t.haproxy) or 'none'}; lost with the replica {t.lost_in_flight} <= in flight at the kill"
            f" {t.in_flight_at_kill}",
        ),
        Check(
            "the gate's 5xx are only the documented 502 upstream_error / 504 upstream_timeout",
            not unexpected,
            f"unexpected: {unexpected or 'none'}",
        ),
        Check(
            "exactly one audit entry per answered request (200, and the gate's own 502/504), in the files and on"
            " the stream",
            t.missing_in_files == 0 and t.missing_on_stream == 0 and t.duplicated == 0,
            f"{t.audited} answered ({t.answered} with 200); not exactly one in the files: {t.missing_in_files}, on"
            f" the stream: {t.missing_on_stream}; request ids with two entries: {t.duplicated}",
        ),
        Check("no audit entry for a 429 (refused before the route)", t.refused_audited == 0, f"{t.refused_audited}"),
        Check(
            "entries without a gate response only for requests lost with the killed replica",
            t.orphans <= t.lost_in_flight,
            f"{t.orphans} such entries, {t.lost_in_flight} requests lost",
        ),
        Check(
            "quota: the counter on Redis = min(sent, daily_quota); admitted - counter within the in-flight margin",
            all(row[1] for row in quota_rows),
            "; ".join(f"{k}: counter {c} (expected {e}), admitted - counter {o}" for k, _, c, e, o in quota_rows)
            + f"; margin {scale.concurrency}",
        ),
        Check(
            "HAProxy marked the killed replica down, and up again after the restart",
            events.down is not None and events.up is not None and log.down >= 1 and log.up >= 1,
            f"down at {fmt(events.down)} s, up at {fmt(events.up)} s; log: {log.down} DOWN, {log.up} UP",
        ),
        Check(
            "after the restart every replica answers",
            len(run_.served_by) == len(REPLICAS) and all(n > 0 for n in run_.served_by.values()),
            f"probe requests by replica: {run_.served_by}",
        ),
    ]


# --- the report -----------------------------------------------------------------------------------------------


def quantile_cell(seconds: np.ndarray, q: float, seed: int) -> str:
    from benchmarks.common import bootstrap_interval

    if len(seconds) < 2:
        return "-"
    low, high = bootstrap_interval(lambda x: float(np.percentile(x, q)), seconds, seed=seed)
    return f"{np.percentile(seconds, q) * 1000:.0f} [{low * 1000:.0f}, {high * 1000:.0f}]"


def header(scale: Scale, command: str) -> list[str]:
    from benchmarks.common import machine_description, package_versions

    return [
        "# Three replicas behind HAProxy with Redis: faults, a replica SIGKILLed mid-run, quotas",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Machine: {machine_description()}. Client, HAProxy, Redis, the stub and the three replicas share these"
        ' cores, and other jobs ran on the machine at the same time: latencies are "on this busy machine".',
        f"- Packages: {package_versions(['uvicorn', 'httpx', 'redis', 'numpy'])}; {tool_version('haproxy', '-v')};"
        f" {tool_version('redis-server', '--version')}",
        f"- Sizes: {scale.requests} requests at concurrency {scale.concurrency} over {scale.keys} API keys (request i"
        f" uses key i mod {scale.keys}), then {scale.probe_requests} probe requests at concurrency"
        " 1 on a third key once the killed replica is up again.",
        f"- Seeds: stub faults {scale.seed}, bootstrap {scale.seed} (2000 resamples, 95% percentile intervals).",
        f"- Stub upstream: {scale.fail_rate:.0%} of calls answered 500, {scale.hang_rate:.0%} never answered; the"
        f" gate's upstream timeout {scale.timeout_s:g} s, no retries (`GATE_MAX_RETRIES=0`), request limit"
        f" {scale.request_timeout_s:g} s, signals {', '.join(scale.signals)} (one upstream call per request).",
        f"- Quota: `daily_quota` {scale.daily_quota} per key ({scale.quota_share:.0%} of the"
        f" {scale.sent_by_key(0)} requests each key sends), shared by the replicas on Redis; the rate limit set out"
        " of the way (100,000/s). The rest is `deploy/gate.yaml`, `deploy/haproxy.cfg` (only addresses and paths"
        " rewritten) and `deploy/redis.conf` (port, directory, a random password, maxmemory 512mb).",
        f"- Fault: once {scale.kill_at:.0%} of the requests were answered, SIGKILL to {VICTIM}'s process group,"
        f" restarted {scale.restart_after_s:g} s later with the same command and port; in the rolling-restart run"
        f" instead deploy/README.md's upgrade of {VICTIM}: drain in HAProxy (runtime API), wait until it has no"
        " session, SIGTERM, start again, wait for its `/readyz`, set it ready.",
    ]


def run_lines(run_: Run) -> list[str]:
    scale, t, events = run_.scale, tally(run_), run_.events
    log = proxy_log(run_.haproxy_log)
    load = [o for o in run_.outcomes if o.phase == "load"]
    lines = [
        "| response | requests | p50 ms [95% CI] | p95 ms [95% CI] | p99 ms [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name in sorted({o.name for o in load}):
        group = np.array([o.seconds for o in load if o.name == name])
        cells = " | ".join(quantile_cell(group, q, scale.seed) for q in (50, 95, 99))
        lines.append(f"| {name} | {len(group)} | {cells} |")
    seconds = np.array([o.seconds for o in load])
    cells = " | ".join(quantile_cell(seconds, q, scale.seed) for q in (50, 95, 99))
    states = ", ".join(f"`{state}` {n}" for state, n in log.states.most_common())
    lines += [
        f"| **all** | {len(load)} | {cells} |",
        "",
        f"- {len(load)} requests in {run_.load_seconds:.1f} s ({len(load) / run_.load_seconds:.0f} requests/s);"
        f" requests in flight (client side, all replicas) when the replica was killed or stopped:"
        f" {t.in_flight_at_kill}"
        f" (after {events.answered_at_kill} answers).",
        (
            f"- Timeline (s since the load began): drained {fmt(events.down)}, SIGTERM once it had no session"
            f" {fmt(events.killed)}, restarted {fmt(events.restarted)}, ready and UP again {fmt(events.up)};"
            if scale.fault == "rolling"
            else f"- Timeline (s since the load began): killed {fmt(events.killed)}, HAProxy saw it DOWN"
            f" {fmt(events.down)}, restarted {fmt(events.restarted)}, HAProxy saw it UP {fmt(events.up)};"
        )
        + f" the load ended at {run_.load_seconds:.1f}.",
        f"- HAProxy's log: termination states {states}; requests by replica {dict(sorted(log.by_server.items()))};"
        f" requests retried after a failed connection {log.retried}, sent to another replica {log.redispatched}.",
        f"- Audit entries: {t.audited} gate answers that reach the route, {t.answered} of them 200; entries per file"
        f" { {r: len(v) for r, v in run_.file_entries.items()} }, on the stream {len(run_.stream_entries)}; entries"
        f" written for a request that then got no gate response: {t.orphans}.",
        "",
        "| key | sent | admitted (not refused by the quota) | refused: 429 quota_exceeded | counter on Redis |"
        " daily_quota |",
        "|---|---|---|---|---|---|",
    ]
    for key in [*(scale.key(i) for i in range(scale.keys)), scale.probe_key]:
        refused = sum(o.key == key and o.code == "quota_exceeded" for o in run_.outcomes)
        used = run_.quota_used.get(key, 0)
        lines.append(
            f"| {key} | {t.sent.get(key, 0)} | {t.admitted.get(key, 0)} | {refused} | {used} | {scale.daily_quota} |"
        )
    lines += ["", "| check | holds | measured |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.ok else '**no**'} | {c.detail} |" for c in checks(run_)]
    return lines


def report(runs: list[tuple[str, Run]], command: str) -> str:
    lines = header(runs[0][1].scale, command)
    for title, run_ in runs:
        lines += ["", f"## {title}", "", *run_lines(run_)]
    return "\n".join(lines) + "\n"


def fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def tool_version(name: str, flag: str) -> str:
    path = shutil.which(name)
    if path is None:
        return f"{name} (not installed)"
    done = subprocess.run([path, flag], capture_output=True, text=True, check=False)
    return " ".join((done.stdout or done.stderr).splitlines()[0].split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Scale()
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--fail-rate", type=float, default=defaults.fail_rate)
    parser.add_argument("--hang-rate", type=float, default=defaults.hang_rate)
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s, help="the gate's upstream timeout")
    parser.add_argument("--quota-share", type=float, default=defaults.quota_share)
    parser.add_argument("--kill-at", type=float, default=defaults.kill_at)
    parser.add_argument("--restart-after-s", type=float, default=defaults.restart_after_s)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--keep-alive",
        choices=["off", "on", "both"],
        default="off",
        help="client keep-alive through HAProxy: off is deploy/haproxy.cfg (option httpclose); both runs each",
    )
    parser.add_argument(
        "--rolling", action="store_true", help="one more run: deploy/README.md's rolling restart instead of SIGKILL"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    args = parser.parse_args()
    scale = Scale(
        requests=args.requests,
        concurrency=args.concurrency,
        fail_rate=args.fail_rate,
        hang_rate=args.hang_rate,
        timeout_s=args.timeout_s,
        quota_share=args.quota_share,
        kill_at=args.kill_at,
        restart_after_s=args.restart_after_s,
        seed=args.seed,
    )
    committed = "deploy/haproxy.cfg as committed (`option httpclose`: one request per client connection)"
    variants = {
        "off": [(committed, scale)],
        "on": [("Client keep-alive through HAProxy (`option httpclose` dropped)", replace(scale, keep_alive=True))],
    }
    variants["both"] = variants["off"] + variants["on"]
    chosen = variants[args.keep_alive]
    if args.rolling:
        chosen.append((f"Rolling restart instead of SIGKILL, {committed}", replace(scale, fault="rolling")))
    command = " ".join(["python -m benchmarks.scale", *sys.argv[1:]])
    runs = []
    for title, variant in chosen:
        print(f"{title} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="gate-scale-") as directory:
            runs.append((title, run(variant, Path(directory))))
    text = report(runs, command)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
