"""The one-pass familiarity (``method="surprise"``) and the concept cache that makes it nearly free."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from estimators.familiarity import Familiarity
from estimators.familiarity_surprise import SURPRISE_CONTEXT
from estimators.testing import ScriptedLLM
from gate.concept_cache import MemoryConceptCache, SqliteConceptCache
from tests.test_familiarity import WhiteBoxLLM


async def test_surprise_scores_each_concept_with_one_forced_pass() -> None:
    llm = WhiteBoxLLM([], table={" Paris": [-0.5, -1.5], " Rome": [-2.0]})
    signal = await Familiarity(method="surprise").assess("Is Paris older than Rome?", llm=llm)
    assert signal.error is None
    assert llm.forced == [(SURPRISE_CONTEXT, " Paris"), (SURPRISE_CONTEXT, " Rome")]
    scores = [c["score"] for c in signal.details["concepts"]]
    assert scores == pytest.approx([math.exp(-1.0), math.exp(-2.0)])
    # rarest first with the paper's weights 2/3, 1/3 (both names are equally rare: question order)
    assert signal.confidence == pytest.approx(2 / 3 * math.exp(-1.0) + 1 / 3 * math.exp(-2.0))
    assert signal.cost.calls == 2 and not llm.calls  # no generation at all
    assert signal.details["method"] == "surprise"
    json.dumps(signal.details)


async def test_a_cached_concept_costs_no_call() -> None:
    cache = MemoryConceptCache()
    llm = WhiteBoxLLM([], table={" Paris": [-1.0]})
    estimator = Familiarity(method="surprise", cache=cache)
    first = await estimator.assess("Where is Paris?", llm=llm)
    second = await estimator.assess("Why is Paris famous?", llm=llm)
    assert first.cost.calls == 1 and second.cost.calls == 0
    assert second.confidence == pytest.approx(first.confidence)
    assert second.details["concepts"][0]["cached"] is True
    assert cache.get("surprise|Paris") == pytest.approx(math.exp(-1.0))


async def test_surprise_on_a_black_box_backend_is_an_error_not_a_guess() -> None:
    signal = await Familiarity(method="surprise").assess("Where is Paris?", llm=ScriptedLLM())
    assert signal.confidence is None
    assert "continuation log-probs" in (signal.error or "")


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        Familiarity(method="vibes")._check_config()


def test_memory_cache_forgets_the_least_recently_used() -> None:
    cache = MemoryConceptCache(max_entries=2)
    cache.put("a", 0.1)
    cache.put("b", 0.2)
    assert cache.get("a") == 0.1  # a is now the most recent
    cache.put("c", 0.3)
    assert cache.get("b") is None and cache.get("a") == 0.1 and cache.get("c") == 0.3


def test_the_file_cache_is_shared_with_another_process(tmp_path: Path) -> None:
    path = tmp_path / "familiarity.sqlite"
    cache = SqliteConceptCache(path, model="local/m")
    cache.put("surprise|Paris", 0.25)
    cache.close()
    code = (
        "from pathlib import Path; from gate.concept_cache import SqliteConceptCache as C; "
        f"c = C(Path({str(path)!r}), model='local/m'); print(c.get('surprise|Paris')); "
        "print(C(Path(" + repr(str(path)) + "), model='other/m').get('surprise|Paris')); c.put('surprise|Rome', 0.5)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["0.25", "None"]  # another model never sees this model's scores
    assert SqliteConceptCache(path, model="local/m").get("surprise|Rome") == 0.5


def test_an_unusable_cache_file_degrades_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    cache = SqliteConceptCache(blocked / "familiarity.sqlite", model="local/m")
    with caplog.at_level(logging.WARNING):
        cache.put("surprise|Paris", 0.25)
        assert cache.get("surprise|Paris") == 0.25
        cache.put("surprise|Rome", 0.5)
    assert sum("familiarity cache" in r.getMessage() for r in caplog.records) == 1
