"""The cost study's cache tools: familiarity read at fewer concepts, and shards merged once per question."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.collect import fewer_concepts, interleaved, merge
from estimators.base import Cost, Signal
from gate.offline.signal_cache import CachedRow, read_cache
from gate.suite import DEFAULT_SUITE


def _familiarity(scores: list[float | None]) -> Signal:
    concepts = [{"concept": f"c{i}", "score": s, "token_logprobs": [-1.0, -2.0]} for i, s in enumerate(scores)]
    return Signal(name="familiarity", confidence=0.5, cost=Cost(calls=len(scores), seconds=1.0),
                  details={"method": "surprise", "concepts": concepts})


def test_fewer_concepts_keeps_the_rarest_and_its_share_of_the_cost() -> None:
    signal = fewer_concepts(_familiarity([0.2, 0.8]), 1)
    assert signal.confidence == pytest.approx(0.2)
    assert signal.cost.calls == 1 and signal.cost.seconds == pytest.approx(0.5) and signal.cost.completion_tokens == 2
    assert [c["concept"] for c in signal.details["concepts"]] == ["c0"]
    assert fewer_concepts(_familiarity([0.3]), 1).confidence == 0.5  # already within the limit: unchanged
    unscored = fewer_concepts(_familiarity([None, 0.9]), 1)
    assert unscored.confidence is None and unscored.error == "no concept could be scored"


def test_interleaving_mixes_the_sets_in_proportion() -> None:
    items = [("a", i) for i in range(4)] + [("b", i) for i in range(2)]
    order = [dataset for dataset, _ in interleaved(items)]
    assert sorted(order) == sorted(d for d, _ in items)
    assert order[:3].count("b") == 1  # b's first item comes within the first half, not after all of a


def test_merge_takes_each_question_once_at_the_shipped_suite(tmp_path: Path) -> None:
    header = {"kind": "llm-gate-signal-cache", "version": 1, "model": "local/m",
              "suite": [dict(spec.to_dict(), params={**spec.to_dict()["params"], "max_concepts": 2})
                        if spec.key == "familiarity" else spec.to_dict() for spec in DEFAULT_SUITE]}
    for shard, ids in ((0, ["q1", "q2"]), (1, ["q2", "q3"])):
        rows = [CachedRow(i, "set", "?", ("a",), "a", True, {"familiarity": _familiarity([0.1, 0.9])}, Cost())
                for i in ids]
        text = json.dumps(header) + "\n" + "".join(r.to_json() + "\n" for r in rows)
        (tmp_path / f"core-{shard}of2.signals.jsonl").write_text(text)
    head, rows = read_cache(merge("core", tmp_path, DEFAULT_SUITE))
    assert sorted(r.id for r in rows) == ["q1", "q2", "q3"]
    assert head["suite"] == [spec.to_dict() for spec in DEFAULT_SUITE]
    assert all(math.isclose(r.confidence("familiarity"), 0.1) for r in rows)
