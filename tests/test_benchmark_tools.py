"""The benchmarks' own parts: the instant stub upstream, the wrk output parser, pooling signal caches."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json

import numpy as np
import pytest

from benchmarks import calibration as calibration_benchmark
from benchmarks import quality
from benchmarks.overhead import Target as LoadTarget
from benchmarks.overhead import parse_wrk, wrk_script
from benchmarks.quality import calibrator_lines, cross_fit, read_caches, stratified_folds, what_if_lines
from benchmarks.stub_upstream import ANSWER, Faults, StubProtocol
from calibration import fitting, fusion_selection
from calibration.fitting import Target
from estimators.base import Cost
from gate.offline.calibrate import FitOptions, fit_artifact
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


async def _post_to_stub(faults: Faults, n: int) -> bytes:
    """One chat POST with ``n`` to a stub with ``faults``: the raw answer (empty when none came in 0.5 s)."""
    server = await asyncio.get_running_loop().create_server(lambda: StubProtocol(faults), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    body = json.dumps({"model": "stub", "n": n, "messages": [{"role": "user", "content": "hi"}]}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(65536), timeout=0.5)
    except TimeoutError:
        answer = b""
    writer.close()
    server.close()
    return answer


async def test_the_reliability_stub_answers_n_choices_fails_or_hangs_as_seeded():
    ok = await _post_to_stub(Faults(), n=3)
    assert len(json.loads(ok.split(b"\r\n\r\n", 1)[1])["choices"]) == 3
    assert (await _post_to_stub(Faults(fail_rate=1.0), n=1)).startswith(b"HTTP/1.1 500 ")
    assert await _post_to_stub(Faults(hang_rate=1.0), n=1) == b""
    first, second = (Faults(fail_rate=0.1, hang_rate=0.05, seed=7) for _ in range(2))
    drawn = [first.draw() for _ in range(2000)]
    assert drawn == [second.draw() for _ in range(2000)]  # seeded: the same faults on every run
    assert 150 < drawn.count("fail") < 250 and 60 < drawn.count("hang") < 140


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
    # Fusion "auto" as gate calibrate runs it, on fewer cross-validation splits (3 instead of 2 x 5): faster.
    monkeypatch.setattr(fitting, "choose_fusion", functools.partial(fusion_selection.choose_fusion, folds=3, repeats=1))
    # Half the rows open-domain, half with passages, as in the real caches.
    rows = [dataclasses.replace(row, dataset="sciq" if i % 2 else "trivia")
            for i, row in enumerate(synthetic_rows(n=150, seed=5))]
    y = np.array([row.correct for row in rows])
    folds = stratified_folds(rows, 2)
    target = Target(answer_level=0.5, hedge_level=0.3)
    main = cross_fit(rows, folds, suite=DEFAULT_SUITE, target=target, model="local/m")
    assert all(a.data["fit"]["full"]["fusion_candidates"] for a in main.artifacts)  # fusion "auto", as gate calibrate
    # Refitting a fold's own calibrator kind on its fusion gives back its probabilities: the table's other
    # kinds are what gate calibrate would have fitted with --calibrator KIND.
    for fold, artifact in zip((0, 1), main.artifacts, strict=True):
        train = [row for row, f in zip(rows, folds, strict=True) if f != fold]
        held = [row for row, f in zip(rows, folds, strict=True) if f == fold]
        kind = artifact.data["fit"]["full"]["calibrator"]
        refitted = quality.refit_calibrator(artifact, train, held, kind, seed=0)
        np.testing.assert_allclose(refitted, main.fused[folds == fold])
    lines = calibrator_lines(rows, y, folds, main)
    table = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    first, auto, *kinds = table
    assert first == "fusion score, no calibrator" and kinds == ["temperature", "platt", "isotonic", "histogram"]
    assert auto.startswith("auto (chose: ") and "isotonic" not in auto and "histogram" not in auto
    assert lines[0].count("AUROC, ") == 3  # pooled, open-domain, with passages

    def distinct(name: str) -> int:
        return int(table[name].rsplit(" | ", 1)[1].split(" of ")[0])

    # Order kept: nothing merged (a fold's fusion may read one clipped signal alone, so a few ties are its own).
    assert distinct(auto) == distinct("temperature") == distinct("fusion score, no calibrator") > 0.9 * len(rows)
    assert distinct("histogram") < len(rows) / 4

    # The what-if signal: a similarity that knows the label must lift the fused gate above the suite's signals.
    rng = np.random.default_rng(0)
    similarity = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.1, len(y)), 0, 1)
    similarity[::10] = np.nan  # missing where consistency drew no samples
    lines = what_if_lines(rows, y, folds, main, similarity, suite=DEFAULT_SUITE, target=target, model="local/m")
    by_name = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines if line.startswith("| ")}
    assert set(by_name) >= {"fused gate, the cache's suite", "fused gate + sample similarity",
                            "with similarity - the cache's suite", "with similarity - SelfCheck-style alone"}
    # The suite alone already reaches about 0.95 on these rows: the gain is small but there, in every fold.
    assert float(by_name["with similarity - the cache's suite"][0].split(" ")[0]) > 0, lines
    assert "kept the similarity in the full stage of 2 of 2 folds" in lines[-1], lines[-1]


def _fake_cross_fit(rows, y):
    n = len(rows)
    p = np.where(y, 0.7, 0.3)
    costs = (np.ones(n), np.full(n, 10.0), np.ones(n))
    return quality.CrossFitted(p, p, p, np.full(n, "hedge", dtype=object), np.full(n, "full", dtype=object), costs,
                               costs, [])


def test_the_methods_follow_the_caches_suite_and_name_what_was_not_collected(monkeypatch):
    monkeypatch.setattr(quality, "N_RESAMPLES", 10)
    rows = synthetic_rows(n=60, seed=1)  # the default suite: no P(True), verbalized or PACE
    y = np.array([row.correct for row in rows])
    similarity = np.full(len(rows), np.nan)
    methods = quality.build_methods(rows, DEFAULT_SUITE, _fake_cross_fit(rows, y), similarity)
    names = [m.name for m in methods]
    assert names[:2] == [quality.FUSED, quality.CASCADE]
    assert "familiarity (precheck)" in names and "token prob: exp(min log-prob)" in names
    assert "consistency: agreement of 5 samples" in names
    assert not {"verbalized confidence", "PACE-style"} & set(names)
    assert names.count("mean token log-prob") == 1  # a peer's method and a suite signal: shown once
    lines = quality.metrics_table(methods, y, np.ones(len(rows), dtype=bool))
    rows_shown = [line.split(" | ")[0].lstrip("| ") for line in lines[2:] if line.startswith("| ")]
    assert "P(True)" not in rows_shown
    assert "P(True) (not collected: not in the caches' signal suite)" in lines[-1]
    assert "SelfCheck-style (MiniLM) (no score on these rows)" in lines[-1]
    assert not any("nan" in line for line in lines)
    baselines = [m for m in methods if m.kind == "baseline"]
    verdict = quality.comparison_lines(methods[0], baselines, y, np.ones(len(rows), dtype=bool))[-1]
    assert "not compared" in verdict and "P(True)" in verdict
    # The decisions table reads "none answered" rather than NaN.
    decisions = quality.decision_lines(y, {"x": _fake_cross_fit(rows, y)})
    assert "- (none answered)" in decisions[-1] and "nan" not in decisions[-1]


def test_the_suite_and_target_come_from_the_cache_and_the_options():
    head = {"suite": [{**spec.to_dict(), "stage": "expensive" if spec.stage == "full" else spec.stage}
                      for spec in DEFAULT_SUITE]}
    assert quality.suite_of(head) == DEFAULT_SUITE  # an older cache's stage names read under today's
    text = quality.describe_target(Target(answer_level=0.55, hedge_level=0.3, confidence_level=0.9))
    assert text.startswith("error among answered <= 0.45, among answered or hedged <= 0.70") and "90%" in text
    assert quality.fit_options(Target()).fusion == FitOptions().fusion == "auto"
    assert quality.describe_suite(DEFAULT_SUITE) == (
        "precheck (familiarity) -> free (familiarity, logprob_mean, logprob_min) -> full (all 4)"
    )
    assert quality.describe_suite(without_precheck(DEFAULT_SUITE)) == "free (logprob_mean, logprob_min) -> full (all 4)"


def test_the_calibration_benchmark_reads_an_artifact_whose_stages_read_a_subset(tmp_path, monkeypatch):
    monkeypatch.setattr(calibration_benchmark, "RESAMPLES", 50)
    monkeypatch.setattr(fitting, "choose_fusion", functools.partial(fusion_selection.choose_fusion, folds=3, repeats=1))
    rows = synthetic_rows(n=400, seed=0)
    options = FitOptions(target=Target(answer_level=0.6, hedge_level=0.4), n_resamples=20)
    artifact = fit_artifact(rows, model="local/m", suite=DEFAULT_SUITE, options=options)
    assert set(artifact.full.signals) < {spec.key for spec in DEFAULT_SUITE}  # noise signals left out
    cache = tmp_path / "c.jsonl"
    open_cache(cache, "local/m", DEFAULT_SUITE)
    for row in rows:
        append_row(cache, row)
    text = calibration_benchmark.build(artifact.save(tmp_path / "a.json"), cache)
    assert "nan" not in text.lower()
    table = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    for key in artifact.full.signals:
        assert "full" in table[key].split(" | ")[1]
    assert "error among answered <= 0.40, among answered or hedged <= 0.60" in text
    assert {"full stage alone", "cascade (as served)"} <= set(table)
    assert "free stage, abstain at p < " in text  # the early exit, named


def test_the_best_signal_is_scored_on_the_rows_it_has():
    y = np.array([True, False, True, False, True, False])
    signals = {"a": np.array([0.9, 0.1, np.nan, np.nan, 0.8, 0.2]), "b": np.array([0.6, 0.5, 0.4, 0.7, 0.6, 0.3])}
    key, score, seen = calibration_benchmark.best_signal(y, signals)
    assert key == "a" and score == 1.0 and seen.sum() == 4
    assert calibration_benchmark.best_signal(y, {"c": np.full(6, np.nan)}) is None


def test_the_two_turn_form_names_the_entity_first_and_refers_back_to_it_with_a_pronoun() -> None:
    from benchmarks.two_turn import two_turn

    first, reply, follow_up = two_turn("What is Diana Ross's address?")
    assert first == {"role": "user", "content": "I have a question about Diana Ross."}
    assert "Diana Ross" in reply["content"]
    assert follow_up == {"role": "user", "content": "What is its address?"}
    assert two_turn("Who wrote Hamlet?")[-1]["content"] == "Who wrote it?"
    assert two_turn("what is the largest lake in africa") is None  # no named entity to refer back to


@pytest.mark.parametrize(
    "question",
    [
        "The Sikorsky R-4 was a type of what?",  # after a determiner: "The it was ..."
        "Which ship was sunk by a German submarine in 1915?",  # a modifier: "a it submarine"
        "Which country does musician Falco come from?",  # after a title: "musician it"
        "Which African country is bordered by Benin, Ghana, Togo, Niger, and Mali?",  # in a list
        "In Mork and Mindy, what was the Orkan phrase for 'Goodbye'?",  # part of a longer name
    ],
)
def test_no_follow_up_where_a_pronoun_cannot_stand(question: str) -> None:
    from benchmarks.two_turn import two_turn

    assert two_turn(question) is None
