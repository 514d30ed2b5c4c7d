"""/metrics through prometheus_client: one app's own registry, workers merged in multiprocess mode, and /metrics
on the proxy read back with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gate.errors import ConfigError, UpstreamError
from gate.server.metrics import LATENCY_BUCKETS, MONITOR_GAUGES, MULTIPROC_ENV, ProxyMetrics
from tests.test_server import (
    ABSTAIN_Q,
    ALL_MODES,
    ANSWER_Q,
    HEDGE_Q,
    MODEL,
    BrokenLLM,
    ask,
    blocking,
    failing,
    make_gate,
    serving,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAMILIES = {
    "gate_requests": "counter",
    "gate_decisions": "counter",
    "gate_tenant_requests": "counter",
    "gate_errors": "counter",
    "gate_signal_failures": "counter",
    "gate_llm_calls": "counter",
    "gate_llm_tokens": "counter",
    "gate_audit_write_failures": "counter",
    "gate_upstream_latency_seconds": "histogram",
    "gate_own_latency_seconds": "histogram",
    "gate_in_flight_requests": "gauge",
    "gate_max_concurrency": "gauge",
    "gate_feedback": "counter",  # labels and the guarantee's monitor (tests/test_feedback.py)
    **{f"gate_monitor_{name}": "gauge" for name in MONITOR_GAUGES},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GATE_CONFIG", "GATE_MODE", "GATE_API_KEYS", "GATE_METRICS_AUTH", "GATE_METRICS_DIR"):
        monkeypatch.delenv(name, raising=False)


def parse(text: str | bytes) -> Samples:
    """Samples by (name, labels), read by prometheus_client's own parser."""
    text = text.decode() if isinstance(text, bytes) else text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def families(text: str | bytes) -> dict[str, str]:
    text = text.decode() if isinstance(text, bytes) else text
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    found = [(float(dict(k[1])["le"]), v) for k, v in samples.items() if k[0] == f"{name}_bucket"]
    return sorted(found)


# --- one app ------------------------------------------------------------------------------------------------


def test_an_unused_app_exposes_every_family_with_zeroes_and_no_created_series():
    text = ProxyMetrics(limit=8).render()
    samples = parse(text)
    assert families(text) == FAMILIES
    assert value(samples, "gate_max_concurrency") == 8 and value(samples, "gate_in_flight_requests") == 0
    assert value(samples, "gate_llm_calls_total") == 0 and value(samples, "gate_own_latency_seconds_count") == 0
    assert b"_created" not in text
    assert b"# HELP gate_requests_total HTTP responses by route, gate mode and status code.\n" in text


def test_apps_in_one_process_keep_their_own_values():
    first, second = ProxyMetrics(limit=1), ProxyMetrics(limit=2)
    first.requests.labels("/healthz", "none", "200").inc()
    first.own_latency.observe(0.001)  # a bound is inclusive: le="0.001" counts it
    first.own_latency.observe(100.0)
    one, two = parse(first.render()), parse(second.render())
    assert value(one, "gate_requests_total", route="/healthz", mode="none", status="200") == 1
    assert value(two, "gate_requests_total", route="/healthz", mode="none", status="200") == 0
    assert buckets(one, "gate_own_latency_seconds")[0] == (0.001, 1)
    assert buckets(one, "gate_own_latency_seconds")[-1] == (math.inf, 2)
    assert value(one, "gate_own_latency_seconds_sum") == pytest.approx(100.001)
    assert value(two, "gate_max_concurrency") == 2


def test_metrics_dir_without_prometheus_client_in_multiprocess_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="metrics_dir is for the workers of gate serve --workers"):
        ProxyMetrics(limit=1, multiprocess_dir=tmp_path)


# --- several workers, one /metrics (prometheus_client's multiprocess mode: a fresh process per worker) ----------

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gate.server.metrics import ProxyMetrics

    directory, limit, requests, stop = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    metrics = ProxyMetrics(limit=limit, multiprocess_dir=directory)
    for _ in range(requests):
        metrics.requests.labels("/v1/chat/completions", "enforce", "200").inc()
        metrics.upstream_latency.observe(0.2)
    metrics.in_flight.inc()  # still counted as in flight when this process ends
    if stop == "clean":
        metrics.close()
    elif stop == "scrape":
        sys.stdout.buffer.write(metrics.render())
    """
)


def worker(directory: Path, limit: int, requests: int, stop: str) -> bytes:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}  # before the process imports prometheus_client
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(directory), str(limit), str(requests), stop],
        env=env,
        capture_output=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return done.stdout


def test_workers_sum_counters_of_exited_workers_too_and_gauges_of_live_ones(tmp_path):
    worker(tmp_path, limit=3, requests=2, stop="clean")  # stopped cleanly: its gauges are gone
    worker(tmp_path, limit=4, requests=5, stop="crash")  # ended without a word: its gauges stay
    samples = parse(worker(tmp_path, limit=8, requests=0, stop="scrape"))
    assert value(samples, "gate_requests_total", route="/v1/chat/completions", mode="enforce", status="200") == 7
    assert value(samples, "gate_upstream_latency_seconds_count") == 7
    assert value(samples, "gate_upstream_latency_seconds_sum") == pytest.approx(1.4)
    assert buckets(samples, "gate_upstream_latency_seconds")[:8] == [(b, 0) for b in LATENCY_BUCKETS[:7]] + [(0.25, 7)]
    assert value(samples, "gate_max_concurrency") == 4 + 8 and value(samples, "gate_in_flight_requests") == 1 + 1


# --- /metrics on the proxy ---------------------------------------------------------------------------------


async def scrape(client: Any) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


async def test_counters_and_histograms_move_with_requests():
    async with serving(api_keys=["k"], public_paths=["/metrics"], **ALL_MODES) as client:
        before = await scrape(client)
        auth = {"authorization": "Bearer k"}
        for question in (ANSWER_Q, HEDGE_Q, ABSTAIN_Q):
            await client.post("/v1/chat/completions", json=_chat(question), headers=auth)
        await client.post("/v1/chat/completions", json={**_chat(ANSWER_Q), "gate": {"mode": "off"}}, headers=auth)
        await client.post("/v1/chat/completions", json={"model": MODEL}, headers=auth)
        await ask(client, ANSWER_Q)  # no key: 401
        await client.get("/nowhere", headers=auth)
        after = await scrape(client)
    chat = "/v1/chat/completions"
    assert value(before, "gate_requests_total", route=chat, mode="enforce", status="200") == 0
    assert value(after, "gate_requests_total", route=chat, mode="enforce", status="200") == 3
    assert value(after, "gate_requests_total", route=chat, mode="off", status="200") == 1
    assert value(after, "gate_requests_total", route=chat, mode="none", status="400") == 1
    assert value(after, "gate_requests_total", route=chat, mode="none", status="401") == 1
    assert value(after, "gate_requests_total", route="other", mode="none", status="404") == 1
    assert value(after, "gate_requests_total", route="/metrics", mode="none", status="200") == 1  # the first scrape
    for decision in ("answer", "hedge", "abstain"):
        assert value(after, "gate_decisions_total", decision=decision) == 1
    assert value(after, "gate_errors_total", type="invalid_api_key") == 1
    assert value(after, "gate_errors_total", type="invalid_request_error") == 2  # the 400 and the 404
    assert value(after, "gate_llm_calls_total") >= 3  # the familiarity precheck spends calls on every gated request
    assert value(after, "gate_upstream_latency_seconds_count") == 4  # three gated answers and the pass-through
    assert value(after, "gate_own_latency_seconds_count") == 4
    for name in ("gate_upstream_latency_seconds", "gate_own_latency_seconds"):
        counts = [count for _, count in buckets(after, name)]
        assert counts == sorted(counts) and counts[-1] == value(after, f"{name}_count")
        assert [bound for bound, _ in buckets(after, name)] == [*LATENCY_BUCKETS, math.inf]
    assert value(after, "gate_in_flight_requests") == 0


def _chat(question: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}]}


async def test_metrics_are_open_without_keys_behind_them_when_configured_unless_listed_public():
    async with serving() as client:
        local = await client.get("/metrics")
    async with serving(api_keys=["k"]) as client:
        closed = await client.get("/metrics")
        allowed = await client.get("/metrics", headers={"authorization": "Bearer k"})
    async with serving(api_keys=["k"], public_paths=["/healthz", "/metrics"]) as client:
        listed = await client.get("/metrics")
        ready = await client.get("/readyz")  # no longer listed: behind the keys like the rest
    assert local.status_code == 200 and closed.status_code == 401 and allowed.status_code == 200
    assert listed.status_code == 200 and ready.status_code == 401


async def test_errors_are_counted_by_type_upstream_overload_and_internal():
    async with serving(failing(UpstreamError("boom", status=504))) as client:
        await ask(client, ANSWER_Q)
        upstream = await scrape(client)
    async with serving(make_gate(BrokenLLM()), **ALL_MODES) as client:
        await ask(client, ANSWER_Q, gate={"mode": "off"})
        internal = await scrape(client)
    assert value(upstream, "gate_errors_total", type="upstream_timeout") == 1
    assert value(upstream, "gate_decisions_total", decision="answer") == 0
    assert value(internal, "gate_errors_total", type="internal_error") == 1
    assert value(internal, "gate_requests_total", route="/v1/chat/completions", mode="off", status="500") == 1


async def test_the_in_flight_gauge_and_429s():
    gate, release = blocking()
    async with serving(gate, max_concurrency=1, **ALL_MODES) as client:
        first = asyncio.create_task(ask(client, ANSWER_Q, gate={"mode": "off"}))
        while client.app.state.server.slots.in_use == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        await ask(client, ANSWER_Q)
        during = await scrape(client)
        release.set()
        await first
        after = await scrape(client)
    assert value(during, "gate_in_flight_requests") == 1 and value(after, "gate_in_flight_requests") == 0
    assert value(during, "gate_errors_total", type="too_many_requests") == 1
