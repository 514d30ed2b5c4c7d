"""The benchmarks' own parts: the instant stub upstream, the wrk output parser, pooling signal caches."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
import pytest

from benchmarks import quality
from benchmarks.overhead import Target as LoadTarget
from benchmarks.overhead import parse_wrk, wrk_script
from benchmarks.quality import calibrator_lines, cross_fit, read_caches, stratified_folds, what_if_lines
from benchmarks.stub_upstream import ANSWER, StubProtocol
from calibration.fitting import Target
from estimators.base import Cost
from gate.offline.signal_cache import CachedRow, append_row, open_cache
from gate.suite import DEFAULT_SUITE, without_precheck
from tests.test_artifact import synthetic_rows

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:9200/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    23.40ms   30.15ms 139.57ms   88.00%
    Req/Sec   653.00    100.00   800.00     70.00%
  Latency Distribution
     50%   23.31ms
     75%   30.00ms
     90%   60.00ms
     99%    1.40s
  2025 requests in 3.10s, 1.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    653.22
Transfer/sec:    400.00KB
"""


def test_parse_wrk_reads_percentiles_in_any_unit_and_counts_failures():
    run = parse_wrk(WRK_OUTPUT)
    assert (run.rps, run.p50_ms, run.p99_ms, run.requests, run.failures) == (653.22, 23.31, 1400.0, 2025, 7)


def test_paced_wrk_scripts_pause_a_random_time_after_each_response():
    target = LoadTarget("gate off", "http://127.0.0.1:1/v1/chat/completions", {"gate": {"mode": "off"}}, "sk-x")
    unpaced, paced = wrk_script(target), wrk_script(target, pause_ms=200)
    assert "delay" not in unpaced and 'wrk.body = "{\\"gate\\": {\\"mode\\": \\"off\\"}}"' in unpaced
    assert 'wrk.headers["Authorization"] = "Bearer sk-x"' in unpaced
    assert paced.startswith(unpaced) and "return math.random(0, 400)" in paced  # mean 200 ms, not lock-step


async def test_the_stub_answers_pipelined_keep_alive_requests_in_order():
    server = await asyncio.get_running_loop().create_server(StubProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"model": "stub", "messages": [{"role": "user", "content": "hi"}]}).encode()
    post = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    writer.write(post + b"GET /v1/models HTTP/1.1\r\n\r\n" + post[:20])  # two and a half requests at once
    await writer.drain()
    answers = []
    for _ in range(2):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        answers.append(json.loads(await reader.readexactly(length)))
    writer.write(post[20:])  # the rest of the third
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    third = json.loads(await reader.readexactly(int(head.split(b"content-length: ")[1].split(b"\r\n")[0])))
    writer.close()
    server.close()
    assert answers[0]["choices"][0]["message"]["content"] == ANSWER and answers[1]["object"] == "list"
    assert third["choices"][0]["logprobs"]["content"][0]["logprob"] < 0


def _cache(path, ids, *, model="local/m", suite=DEFAULT_SUITE):
    open_cache(path, model, suite)
    for row_id in ids:
        row = CachedRow(row_id, row_id.split("-")[0], "q?", ("a",), "a", True, {}, Cost(calls=1))
        append_row(path, row)
    return path


def test_read_caches_pools_caches_of_the_same_model_and_signals(tmp_path):
    first = _cache(tmp_path / "a.jsonl", ["trivia-2", "trivia-1"])
    second = _cache(tmp_path / "b.jsonl", ["hotpot-1"], suite=without_precheck(DEFAULT_SUITE))  # same signals
    head, rows = read_caches([first, second])
    assert head["model"] == "local/m" and [row.id for row in rows] == ["hotpot-1", "trivia-1", "trivia-2"]


@pytest.mark.parametrize(
    ("other", "message"),
    [({"model": "local/other"}, "another model"), ({"ids": ["trivia-1"]}, "share question ids")],
)
def test_read_caches_refuses_caches_it_cannot_pool(tmp_path, other, message):
    first = _cache(tmp_path / "a.jsonl", ["trivia-1"])
    second = _cache(tmp_path / "b.jsonl", other.get("ids", ["hotpot-1"]), model=other.get("model", "local/m"))
    with pytest.raises(ValueError, match=message):
        read_caches([first, second])


def test_the_calibrator_table_shows_what_step_calibrators_do_to_the_ranking(monkeypatch):
    monkeypatch.setattr(quality, "N_RESAMPLES", 20)  # the intervals are not what this checks
    # Half the rows open-domain (no PACE), half with passages (PACE), as in the real caches.
    rows = [dataclasses.replace(row, dataset="sciq" if row.confidence("pace") == row.confidence("pace") else "trivia")
            for row in synthetic_rows(n=150, seed=3)]
    y = [row.correct for row in rows]
    folds = stratified_folds(rows, 2)
    target = Target(answer_level=0.5, hedge_level=0.3)
    main = cross_fit(rows, folds, suite=DEFAULT_SUITE, target=target, model="local/m")
    lines = calibrator_lines(rows, np.array(y), folds, main, target=target, model="local/m")
    table = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    first, auto, *kinds = table
    assert first == "fusion score, no calibrator" and kinds == ["temperature", "platt", "isotonic", "histogram"]
    assert auto.startswith("auto (chose: ") and "isotonic" not in auto and "histogram" not in auto

    def distinct(name: str) -> int:
        return int(table[name].rsplit(" | ", 1)[1].split(" of ")[0])

    assert distinct(auto) == distinct("fusion score, no calibrator") == len(rows)  # order kept: nothing merged
    assert distinct("histogram") < len(rows) / 4

    # The what-if signal: a similarity that knows the label must lift the fused gate above the shipped signals.
    rng = np.random.default_rng(0)
    similarity = np.clip(0.5 + 0.3 * (np.array(y) - 0.5) + rng.normal(0, 0.1, len(y)), 0, 1)
    similarity[::10] = np.nan  # missing where consistency drew no samples
    lines = what_if_lines(rows, np.array(y), folds, main, similarity, target=target, model="local/m")
    by_name = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines if line.startswith("| ")}
    assert set(by_name) >= {"fused gate, shipped signals", "fused gate + sample similarity",
                            "with similarity - shipped signals", "with similarity - SelfCheck-style alone"}
    assert float(by_name["with similarity - shipped signals"][0].split(" ")[0]) > 0.05
