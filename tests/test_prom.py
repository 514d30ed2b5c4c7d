"""Prometheus text exposition: the primitives, workers sharing one /metrics, and /metrics on the proxy read back
with a small parser."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import pytest

from gate.errors import UpstreamError
from gate.server.metrics import ProxyMetrics
from gate.server.metrics_share import SharedMetrics, clear_snapshots
from gate.server.prom import Counter, Gauge, Histogram, Registry, escape_label, format_value
from tests.test_server import (
    ABSTAIN_Q,
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

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GATE_CONFIG", "GATE_MODE", "GATE_API_KEYS", "GATE_METRICS_AUTH"):
        monkeypatch.delenv(name, raising=False)


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels) and each family's type; fails on anything the text format does not allow."""
    assert text.endswith("\n")
    samples: Samples = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in types and kind in {"counter", "gauge", "histogram"}
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, raw_labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in types, f"{name} has no # TYPE before it"
            labels = _labels(raw_labels or "")
            samples[name, labels] = math.inf if value == "+Inf" else float(value)
    return samples, types


def _labels(raw: str) -> frozenset[tuple[str, str]]:
    pairs, position = [], 0
    while position < len(raw):
        match = LABEL.match(raw, position)
        assert match, f"bad labels: {raw!r}"
        value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), match.group(2))
        pairs.append((match.group(1), value))
        position = match.end()
    return frozenset(pairs)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    found = [(float(dict(k[1])["le"]), v) for k, v in samples.items() if k[0] == f"{name}_bucket"]
    return sorted(found)


# --- the primitives -----------------------------------------------------------------------------------------


def test_label_values_and_help_are_escaped_and_read_back():
    counter = Counter("odd_total", "help with \\ and\nnewline", ("path",))
    counter.inc('a"b\\c\nd')
    text = Registry([counter]).render()
    assert "# HELP odd_total help with \\\\ and\\nnewline" in text
    assert 'odd_total{path="a\\"b\\\\c\\nd"} 1' in text
    samples, _ = parse(text)
    assert value(samples, "odd_total", path='a"b\\c\nd') == 1
    assert escape_label("plain") == "plain"


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count():
    histogram = Histogram("h_seconds", "h", buckets=(0.1, 1.0, 10.0))
    for observation in (0.05, 0.1, 0.5, 1.0, 2.0, 100.0):  # a bound is inclusive: 0.1 counts in le="0.1"
        histogram.observe(observation)
    samples, types = parse(Registry([histogram]).render())
    assert types == {"h_seconds": "histogram"}
    assert buckets(samples, "h_seconds") == [(0.1, 2), (1.0, 4), (10.0, 5), (math.inf, 6)]
    assert value(samples, "h_seconds_count") == 6 and value(samples, "h_seconds_sum") == pytest.approx(103.65)


def test_primitives_refuse_misuse():
    counter = Counter("c_total", "c", ("a",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc()
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc("x", amount=-1)
    with pytest.raises(ValueError, match="increasing"):
        Histogram("h", "h", buckets=(1.0, 0.5))
    registry = Registry()
    registry.add(Gauge("g", "g", lambda: 1))
    with pytest.raises(ValueError, match="already registered"):
        registry.add(Gauge("g", "g", lambda: 2))


@pytest.mark.parametrize(
    ("number", "text"),
    [(3, "3"), (3.0, "3"), (0.25, "0.25"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")],
)
def test_values_are_written_as_prometheus_reads_them(number, text):
    assert format_value(number) == text


def test_an_unused_app_exposes_every_family_with_zeroes():
    samples, types = parse(ProxyMetrics(in_flight=lambda: 0, limit=8).render())
    assert types["gate_requests_total"] == "counter" and types["gate_upstream_latency_seconds"] == "histogram"
    assert types["gate_in_flight_requests"] == "gauge" and value(samples, "gate_max_concurrency") == 8
    assert value(samples, "gate_llm_calls_total") == 0 and value(samples, "gate_own_latency_seconds_count") == 0


# --- several workers, one /metrics ---------------------------------------------------------------------------


def worker_registry(requests: dict[str, float], observations: list[float], in_flight: float) -> Registry:
    counter = Counter("r_total", "r", ("status",))
    for status, amount in requests.items():
        counter.inc(status, amount=amount)
    histogram = Histogram("h_seconds", "h", buckets=(0.1, 1.0))
    for observation in observations:
        histogram.observe(observation)
    return Registry([counter, histogram, Gauge("g", "g", lambda: in_flight)])


def test_render_sums_other_processes_snapshots_into_its_own():
    mine = worker_registry({"200": 3}, [0.05, 2.0], in_flight=1)
    other = worker_registry({"200": 4, "429": 2}, [0.5], in_flight=2).snapshot()
    samples, _ = parse(mine.render([json.loads(json.dumps(other))]))  # as it travels: through JSON
    assert value(samples, "r_total", status="200") == 7 and value(samples, "r_total", status="429") == 2
    assert buckets(samples, "h_seconds") == [(0.1, 1), (1.0, 2), (math.inf, 3)]
    assert value(samples, "h_seconds_sum") == pytest.approx(2.55) and value(samples, "g") == 3


def test_workers_share_values_through_the_directory_and_old_snapshots_keep_counts_not_gauges(tmp_path):
    first = SharedMetrics(tmp_path, worker_registry({"200": 1}, [], in_flight=1), worker="1")
    second = SharedMetrics(tmp_path, worker_registry({"200": 5}, [], in_flight=4), worker="2", stale_s=60)
    (tmp_path / "gate-metrics-junk.json").write_text("{not json")  # never fails a scrape
    first.publish()
    samples, _ = parse(second.render())
    assert value(samples, "r_total", status="200") == 6 and value(samples, "g") == 5
    second.stale_s = 0.0  # the first worker's snapshot is now "old": it exited, its gauges no longer count
    samples, _ = parse(second.render())
    assert value(samples, "r_total", status="200") == 6 and value(samples, "g") == 4
    clear_snapshots(tmp_path)
    assert not list(tmp_path.glob("gate-metrics-*.json"))


# --- /metrics on the proxy ---------------------------------------------------------------------------------


async def scrape(client: Any) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)[0]


async def test_counters_and_histograms_move_with_requests():
    async with serving(api_keys=["k"]) as client:
        before = await scrape(client)
        auth = {"authorization": "Bearer k"}
        for question in (ANSWER_Q, HEDGE_Q, ABSTAIN_Q):
            await client.post("/v1/chat/completions", json=_chat(question), headers=auth)
        await client.post("/v1/chat/completions", json={**_chat(ANSWER_Q), "gate": {"mode": "off"}}, headers=auth)
        await client.post("/v1/chat/completions", json={"model": MODEL}, headers=auth)
        await ask(client, ANSWER_Q)  # no key: 401
        await client.get("/nowhere")
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
        assert buckets(after, name)[0][0] == 0.001 and buckets(after, name)[-2][0] == 60
    assert value(after, "gate_in_flight_requests") == 0


def _chat(question: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}]}


async def test_metrics_are_open_by_default_and_behind_the_keys_when_configured():
    async with serving(api_keys=["k"]) as client:
        open_ = await client.get("/metrics")
    async with serving(api_keys=["k"], metrics_auth=True) as client:
        closed = await client.get("/metrics")
        allowed = await client.get("/metrics", headers={"authorization": "Bearer k"})
    assert open_.status_code == 200 and closed.status_code == 401 and allowed.status_code == 200


async def test_errors_are_counted_by_type_upstream_overload_and_internal():
    async with serving(failing(UpstreamError("boom", status=504))) as client:
        await ask(client, ANSWER_Q)
        upstream = await scrape(client)
    async with serving(make_gate(BrokenLLM())) as client:
        await ask(client, ANSWER_Q, gate={"mode": "off"})
        internal = await scrape(client)
    assert value(upstream, "gate_errors_total", type="upstream_timeout") == 1
    assert value(upstream, "gate_decisions_total", decision="answer") == 0
    assert value(internal, "gate_errors_total", type="internal_error") == 1
    assert value(internal, "gate_requests_total", route="/v1/chat/completions", mode="off", status="500") == 1


async def test_the_in_flight_gauge_and_429s():
    gate, release = blocking()
    async with serving(gate, max_concurrency=1) as client:
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
