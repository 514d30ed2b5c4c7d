"""Three ``gate serve`` replicas behind HAProxy with Redis, one SIGKILLed mid-run and restarted.

``benchmarks/scale.py`` at a small size (its figures at the issue's size are ``benchmarks/results/scale.md``):
real processes on free loopback ports (a redis-server of this test's own, the stub upstream failing 10% and
hanging 5% of calls, three replicas with ``deploy/gate.yaml``, haproxy with ``deploy/haproxy.cfg``), a real
client through HAProxy. The documented failures are the gate's own answers to the faulty upstream (502
upstream_error, 504 upstream_timeout: audited like a 200) and HAProxy's 502 for each request the killed
replica held (or, when the kill falls between a response's headers and its body, that response cut off);
everything else must hold exactly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.scale import (
    DEPLOY,
    REPLICAS,
    Outcome,
    Scale,
    checks,
    haproxy_config,
    one_request,
    proxy_log,
    run,
    tally,
)
from tests.redis_fixture import RedisServer

# Bounded: the load, the restart and the probes together; each process's start is bounded by the harness too.
DEADLINE_S = 120.0


@pytest.fixture
def haproxy() -> str:
    """The haproxy binary; missing, the test fails (as the Redis tests do) rather than skipping silently."""
    path = shutil.which("haproxy")
    if path is None:
        pytest.fail("haproxy is not installed: run `make test` (it installs the Debian package haproxy)")
    return path


@pytest.mark.integration
def test_three_replicas_behind_haproxy_survive_a_sigkill(
    haproxy: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    scale = Scale(requests=300, concurrency=16, probe_requests=30, client_timeout_s=30, deadline_s=DEADLINE_S)
    began = time.monotonic()
    result = run(scale, tmp_path / "scale", redis_url=redis_server.url)
    assert time.monotonic() - began < DEADLINE_S + 60

    failed = [f"{check.name}: {check.detail}" for check in checks(result) if not check.ok]
    assert not failed, "\n".join(failed)

    counts = tally(result)
    # The faults were exercised, not avoided: the upstream's failures and hangs, the quota, the kill.
    assert counts.gate_errors[(502, "upstream_error")] > 0
    assert counts.gate_errors[(504, "upstream_timeout")] > 0
    assert sum(o.code == "quota_exceeded" for o in result.outcomes) > 0
    assert result.events.killed is not None and result.events.restarted is not None
    # With `option httpclose` and `option http-buffer-request` (deploy/haproxy.cfg) a request lost with the replica
    # gets HAProxy's 502, never a connection closed without a status; only a response whose headers had left
    # before the kill can be cut off (`SD--`), and that one is the gate's answer, audited before it was sent.
    assert counts.lost_in_flight == counts.haproxy[502] + counts.truncated
    assert all(outcome.status for outcome in result.outcomes)
    # Connection failures to the dead replica (before HAProxy's checks marked it down) went to another one.
    log = proxy_log(result.haproxy_log)
    assert log.retried == log.redispatched
    assert set(log.by_server) == set(REPLICAS)
    assert len(result.outcomes) == scale.requests + scale.probe_requests


# --- the harness's own accounting, on scripted answers (exact, no processes) ------------------------------------


async def _answer_once(raw: bytes) -> Outcome:
    """What :func:`benchmarks.scale.one_request` makes of a server that sends ``raw`` and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(timeout=5) as client:
        return await one_request(client, f"http://127.0.0.1:{port}/v1/chat/completions", 7, "load", "k", 0.0)


def _head(status: str, length: int, *headers: str) -> bytes:
    return "\r\n".join([f"HTTP/1.1 {status}", f"content-length: {length}", *headers, "", ""]).encode()


async def test_outcomes_are_told_apart_by_source() -> None:
    error = json.dumps({"error": {"code": "upstream_timeout"}}).encode()
    gate = await _answer_once(_head("504 Gateway Timeout", len(error), "x-request-id: r1") + error)
    assert (gate.source, gate.status, gate.request_id, gate.code) == ("gate", 504, "r1", "upstream_timeout")
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    proxy = await _answer_once(_head("502 Bad Gateway", len(page)) + page)
    assert (proxy.source, proxy.status, proxy.request_id) == ("haproxy", 502, None)
    cut = await _answer_once(_head("200 OK", 950, "x-request-id: r2"))  # headers, then the replica is gone
    assert (cut.source, cut.status, cut.request_id) == ("truncated", 200, "r2")
    assert "RemoteProtocolError" in (cut.code or "")
    nothing = await _answer_once(b"")
    assert (nothing.source, nothing.status) == ("none", 0)


def test_the_deploy_config_is_rewritten_only_where_marked() -> None:
    template = (DEPLOY / "haproxy.cfg").read_text()
    servers = {"gate1": 1001, "gate2": 1002, "gate3": 1003}
    config = haproxy_config(template, port=2000, stats_port=2001, admin_socket=Path("/tmp/a.sock"), servers=servers)
    assert "    server gate2 127.0.0.1:1002" in config.splitlines()
    assert "    bind 127.0.0.1:2000" in config.splitlines() and "    bind 127.0.0.1:2001" in config.splitlines()
    assert "10.0.0." not in config and "/run/haproxy" not in config
    kept = [line for line in template.splitlines() if "rewritten by" not in line or line.lstrip().startswith("#")]
    assert kept == [line for line in config.splitlines() if line in kept]  # every other line, in order
    policies = ("retry-on conn-failure", "option redispatch 1", "option httpclose", "option http-buffer-request")
    for policy in (*policies, "balance leastconn", "http-check send meth GET uri /readyz"):
        assert policy in config
    assert (
        "    option httpclose"
        not in haproxy_config(
            template, port=2000, stats_port=2001, admin_socket=Path("/tmp/a.sock"), servers=servers, keep_alive=True
        ).splitlines()
    )
    with pytest.raises(ValueError, match="do not know how to rewrite"):  # a server the caller does not know
        haproxy_config(template, port=1, stats_port=2, admin_socket=Path("/a"), servers={"gate1": 1})


def test_haproxy_log_lines_are_read() -> None:
    request = ' 0/0 "POST /v1/chat/completions HTTP/1.1"'
    lines = [
        "127.0.0.1:1 [05/Dec/2026:18:56:14.717] gate gate_replicas/gate1 0/0/0/35/36 200 1182 - - ---- 8/8/7/2/0"
        + request,
        "127.0.0.1:2 [05/Dec/2026:18:56:15.165] gate gate_replicas/gate2 0/0/0/-1/37 502 209 - - SH-- 7/7/4/1/0"
        + request,
        "127.0.0.1:3 [05/Dec/2026:18:56:15.201] gate gate_replicas/gate3 0/0/1/20/21 200 1182 - - ---- 7/7/4/1/+1"
        + request,
        'Server gate_replicas/gate2 is DOWN, reason: Layer4 connection problem, info: "Connection refused".',
        "[WARNING]  (13598) : Server gate_replicas/gate2 is DOWN, reason: Layer4 connection problem.",
        "Server gate_replicas/gate2 is UP, reason: Layer7 check passed, code: 200.",
    ]
    log = proxy_log(lines)
    assert log.states == {"----": 2, "SH--": 1}
    assert log.by_server == {"gate1": 1, "gate2": 1, "gate3": 1}
    assert (log.retried, log.redispatched, log.down, log.up) == (1, 1, 1, 1)
