"""Pace: features by hand, the fixed combination, references given or retrieved, failures, cost, combiner."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import numpy as np
import pytest

from estimators.base import Signal
from estimators.pace import FIXED_WEIGHTS, PACE_FEATURES, Pace, pace_feature_vector
from estimators.pace_combiner import PaceCombiner
from estimators.testing import Rule, ScriptedLLM
from retrieval.base import Hit

QUESTION = "How many legs does an insect have?"
REFERENCES = ["Insects have six legs and three body parts.", "Spiders have eight legs."]
RCE_MARK = "Proposed answer:"  # only the RCE prompt asks about a proposed answer; COE gets the default


class VocabEmbedder:
    """Counts of a fixed vocabulary, L2-normalised: cosines are easy to compute by hand."""

    name = "test/vocab"
    vocabulary = ("legs", "six", "insects", "spiders", "eight")
    dimension = len(vocabulary) + 1  # the last bucket catches texts with no vocabulary word

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = np.zeros((len(texts), self.dimension))
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            rows[i, :-1] = [words.count(v) for v in self.vocabulary]
            rows[i, -1] = 0.0 if rows[i].any() else 1.0
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class FixedSearcher:
    """Returns the same hits for any query and records the queries."""

    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits
        self.calls: list[tuple[str, int]] = []

    def search(self, query: str, k: int = 5) -> list[Hit]:
        self.calls.append((query, k))
        return self.hits[:k]


def _llm(rce: str | list[str], coe: str | list[str]) -> ScriptedLLM:
    return ScriptedLLM([Rule(RCE_MARK + " six", rce), Rule(RCE_MARK, rce)], default=coe)


def _scores(*values: int) -> list[str]:
    return [f"Passage 1 is relevant.\nScore: {v}" for v in values]


async def test_fixed_combination_exact_value_without_embedder() -> None:
    llm = _llm(rce=_scores(9, 10, 8), coe=_scores(8, 6, 7))
    signal = await Pace().score(QUESTION, "six", llm=llm, references=REFERENCES)
    features = signal.details["features"]
    assert features["rce"] == 9.0
    assert features["coe"] == 7.0
    assert features["rce_std"] == pytest.approx(math.sqrt(2 / 3))
    assert features["answer_in_references"] == 1.0
    assert features["answer_overlap"] == 1.0
    assert features["answer_sentence_similarity"] is None
    assert features["retrieval_max"] is None
    # (0.35 * 0.9 + 0.15 * 0.7 + 0.3 * 1) / (0.35 + 0.15 + 0.3): similarity is missing and drops out
    assert signal.confidence == pytest.approx(0.72 / 0.8)
    assert signal.raw == 9.0
    assert signal.details["combiner"] == "fixed (unfitted)"
    assert "no embedder; similarity features are missing" in signal.details["notes"]
    assert signal.error is None


async def test_fixed_combination_exact_value_with_embedder() -> None:
    llm = _llm(rce=_scores(9, 10, 8), coe=_scores(8, 6, 7))
    signal = await Pace(embedder=VocabEmbedder()).score(QUESTION, "six", llm=llm, references=REFERENCES)
    features = signal.details["features"]
    # "question six" = legs+six; the only sentence naming "six" = legs+six+insects: cosine 2 / sqrt(6)
    assert features["answer_sentence_similarity"] == pytest.approx(2 / math.sqrt(6))
    # the question has only "legs"; each reference has legs plus two other words: cosine 1 / sqrt(3)
    assert features["retrieval_max"] == pytest.approx(1 / math.sqrt(3))
    expected = 0.35 * 0.9 + 0.15 * 0.7 + 0.3 * 1 + 0.2 * 2 / math.sqrt(6)
    assert signal.confidence == pytest.approx(expected)
    assert sum(FIXED_WEIGHTS.values()) == pytest.approx(1.0)


async def test_grounding_features_by_hand() -> None:
    llm = _llm(rce=_scores(0), coe=_scores(0))
    embedder = VocabEmbedder()
    pace = Pace(embedder=embedder, n_samples=1)
    wrong = await pace.score(QUESTION, "ten legs", llm=llm, references=REFERENCES)
    features = wrong.details["features"]
    assert features["answer_in_references"] == 0.0  # "ten legs" is not a span of either reference
    assert features["answer_overlap"] == 0.5  # "legs" occurs, "ten" does not
    # "question ten legs" is pure "legs"; both sentences name "legs" and two other vocabulary words
    assert features["answer_sentence_similarity"] == pytest.approx(1 / math.sqrt(3))
    partial = await pace.score(QUESTION, "the six", llm=llm, references=REFERENCES)
    assert partial.details["features"]["answer_in_references"] == 1.0  # articles are normalised away
    absent = await pace.score(QUESTION, "twelve", llm=llm, references=REFERENCES)
    assert absent.details["features"]["answer_overlap"] == 0.0
    assert absent.details["features"]["answer_sentence_similarity"] == 0.0  # no sentence names the answer


async def test_function_words_do_not_count_as_overlap() -> None:
    llm = _llm(rce=_scores(5), coe=_scores(5))
    signal = await Pace(n_samples=1).score(QUESTION, "six of them", llm=llm, references=REFERENCES)
    assert signal.details["features"]["answer_overlap"] == 0.5  # "six" and "them"; "of" is ignored


async def test_given_references_are_used_and_the_searcher_is_not_called() -> None:
    searcher = FixedSearcher([Hit("x", "Unrelated text about rocks.", 0.9)])
    llm = _llm(rce=_scores(7), coe=_scores(7))
    signal = await Pace(searcher=searcher, n_samples=1).score(QUESTION, "six", llm=llm, references=REFERENCES)
    assert searcher.calls == []
    assert signal.details["references"] == {"source": "given", "count": 2}
    assert all("Insects have six legs" in call.prompt for call in llm.calls)


async def test_references_are_retrieved_when_not_given() -> None:
    hits = [Hit("a", REFERENCES[0], 0.8, {"title": "insects"}), Hit("b", REFERENCES[1], 0.6), Hit("c", "More.", 0.1)]
    searcher = FixedSearcher(hits)
    llm = _llm(rce=_scores(7), coe=_scores(7))
    embedder = VocabEmbedder()
    signal = await Pace(searcher=searcher, embedder=embedder, k=2, n_samples=1).score(QUESTION, "six", llm=llm)
    assert searcher.calls == [(QUESTION, 2)]
    assert signal.details["references"] == {"source": "retrieved", "count": 2, "ids": ["a", "b"], "scores": [0.8, 0.6]}
    assert signal.details["features"]["retrieval_max"] == 0.8  # the hit score, not a recomputed cosine
    assert "More." not in llm.calls[0].prompt
    assert len(embedder.calls[0]) == 3  # question, statement and the one sentence naming "six"


@pytest.mark.parametrize(
    ("searcher", "references"),
    [(None, None), (None, []), (None, ["  ", ""]), (FixedSearcher([]), None)],
)
async def test_no_references_gives_none(searcher: FixedSearcher | None, references: list[str] | None) -> None:
    llm = _llm(rce=_scores(7), coe=_scores(7))
    signal = await Pace(searcher=searcher).score(QUESTION, "six", llm=llm, references=references)
    assert signal.confidence is None
    assert signal.error == "no references"
    assert llm.calls == []


async def test_empty_answer_gives_none_without_calls() -> None:
    llm = _llm(rce=_scores(7), coe=_scores(7))
    signal = await Pace().score(QUESTION, " the ", llm=llm, references=REFERENCES)
    assert signal.confidence is None
    assert signal.error == "empty answer"
    assert llm.calls == []


async def test_unparseable_judgements_leave_the_grounding_features() -> None:
    llm = _llm(rce="I am not sure about this one.", coe="Score: eleven")
    signal = await Pace().score(QUESTION, "six", llm=llm, references=REFERENCES)
    features = signal.details["features"]
    assert features["rce"] is None and features["coe"] is None and features["rce_std"] is None
    assert signal.confidence == 1.0  # only containment is left, and the answer is contained
    assert signal.raw is None
    assert signal.error is None
    assert "no RCE rating parsed; rce is missing" in signal.details["notes"]
    assert "no COE rating parsed; coe is missing" in signal.details["notes"]
    rce = signal.details["ratings"]["rce"]
    assert rce["parsed"] == 0
    assert rce["samples"][0] == {
        "text": "I am not sure about this one.\nScore:I am not sure about this one.",  # the follow-up also failed
        "score": None,
        "error": "not a number after 'Score:': 'I'",
        "asked_for_score": True,
    }
    assert signal.details["ratings"]["coe"]["samples"][0]["asked_for_score"] is False  # it had a (bad) score
    assert signal.cost.calls == 2 + 3  # the three RCE samples without a score line were each asked for one
    json.dumps(signal.details, allow_nan=False)


async def test_a_sample_without_a_score_line_is_asked_for_one() -> None:
    reasoning = "Passage 1 mentions six legs."
    llm = ScriptedLLM(
        [Rule(f"Reasoning: {reasoning}\nScore:", " 8"), Rule(RCE_MARK, [f" {reasoning}", " Fine.\nScore: 6"])],
        default="Score: 5",
    )
    signal = await Pace(n_samples=2, seed=4).score(QUESTION, "six", llm=llm, references=REFERENCES)
    samples = signal.details["ratings"]["rce"]["samples"]
    assert samples[0] == {"text": f"{reasoning}\nScore: 8", "score": 8.0, "error": None, "asked_for_score": True}
    assert samples[1]["asked_for_score"] is False
    assert signal.details["features"]["rce"] == 7.0
    follow_up = llm.calls[-1]
    assert follow_up.prompt.endswith(f"Proposed answer: six\nReasoning: {reasoning}\nScore:")
    assert (follow_up.n, follow_up.temperature, follow_up.stop, follow_up.seed) == (1, 0.0, ("\n",), 4)
    assert signal.cost.calls == 3


async def test_partly_parsed_ratings_average_what_parsed() -> None:
    llm = _llm(rce=["Score: 4", "no idea", "Score: 6"], coe=_scores(5))
    signal = await Pace().score(QUESTION, "six", llm=llm, references=REFERENCES)
    assert signal.details["features"]["rce"] == 5.0
    assert signal.details["features"]["rce_std"] == 1.0
    assert signal.details["ratings"]["rce"]["parsed"] == 2


async def test_cost_and_calls() -> None:
    llm = _llm(rce=_scores(9), coe=_scores(7))
    signal = await Pace(n_samples=4, temperature=0.5, seed=3).score(QUESTION, "six", llm=llm, references=REFERENCES)
    # one call per prompt (COE, RCE), each asking for n_samples ratings
    assert [(c.n, c.temperature, c.seed) for c in llm.calls] == [(4, 0.5, 3), (4, 0.5, 3)]
    assert all(c.stop and c.max_tokens > 0 for c in llm.calls)
    assert signal.cost.calls == 2
    assert signal.cost.prompt_tokens == sum(len(c.prompt.split()) for c in llm.calls)
    assert signal.cost.completion_tokens == 2 * 4 * len(_scores(9)[0].split())
    assert len(signal.details["ratings"]["coe"]["samples"]) == 4


async def test_without_llm_judgements_no_calls_are_made() -> None:
    llm = _llm(rce=_scores(9), coe=_scores(7))
    signal = await Pace(use_llm_judgements=False, embedder=VocabEmbedder()).score(
        QUESTION, "six", llm=llm, references=REFERENCES
    )
    assert llm.calls == []
    assert signal.cost.calls == 0
    assert signal.details["ratings"] == {}
    assert signal.confidence == pytest.approx((0.3 + 0.2 * 2 / math.sqrt(6)) / 0.5)
    assert "LLM judgements disabled; RCE and COE are missing" in signal.details["notes"]


async def test_a_fitted_combiner_gives_the_confidence() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (50, len(PACE_FEATURES)))
    y = (x[:, 0] > 5).astype(int)
    combiner = PaceCombiner().fit(x, y)
    llm = _llm(rce=_scores(9), coe=_scores(7))
    signal = await Pace(combiner=combiner, embedder=VocabEmbedder()).score(
        QUESTION, "six", llm=llm, references=REFERENCES
    )
    vector = pace_feature_vector(signal)
    assert vector.shape == (len(PACE_FEATURES),)
    assert signal.confidence == combiner.predict_proba(vector[None, :])[0, 1]
    assert signal.details["combiner"] == "logistic (fitted)"


async def test_an_unfitted_combiner_is_a_programming_error() -> None:
    llm = _llm(rce=_scores(9), coe=_scores(7))
    with pytest.raises(ValueError, match="not fitted"):
        await Pace(combiner=PaceCombiner()).score(QUESTION, "six", llm=llm, references=REFERENCES)


def test_feature_vector_of_a_failed_signal_is_an_error() -> None:
    with pytest.raises(ValueError, match="no PACE features"):
        pace_feature_vector(Signal(name="pace", error="no references"))


@pytest.mark.parametrize(
    ("kwargs", "call", "error", "message"),
    [
        ({}, {"references": "Insects have six legs."}, TypeError, "sequence of str"),
        ({}, {"references": [1, 2]}, TypeError, "sequence of str"),
        ({}, {"question": None}, TypeError, "must be str"),
        ({"k": 0}, {}, ValueError, "k must be a positive integer"),
        ({"n_samples": 1.5}, {}, ValueError, "n_samples must be a positive integer"),
        ({"temperature": 3.0}, {}, ValueError, "temperature must lie in"),
        ({"searcher": object()}, {}, TypeError, "searcher must implement"),
        ({"embedder": object()}, {}, TypeError, "embedder must implement"),
        ({"combiner": object()}, {}, TypeError, "combiner must be a PaceCombiner"),
    ],
)
async def test_programming_errors_raise(kwargs: dict, call: dict, error: type, message: str) -> None:
    arguments = {"question": QUESTION, "answer": "six", "references": REFERENCES, **call}
    with pytest.raises(error, match=message):
        await Pace(**kwargs).score(arguments.pop("question"), arguments.pop("answer"), llm=_llm("", ""), **arguments)


def test_constructor_stores_configuration_only() -> None:
    pace = Pace(k=5)
    assert pace.k == 5
    assert Pace.name == "pace"
    assert set(vars(pace)) == {
        "searcher",
        "embedder",
        "k",
        "n_samples",
        "temperature",
        "seed",
        "combiner",
        "use_llm_judgements",
        "max_reference_chars",
    }


async def test_long_references_are_clipped_in_the_prompt_only() -> None:
    long_reference = "Filler words here. " * 100 + "Insects have six legs."
    llm = _llm(rce=_scores(5), coe=_scores(5))
    signal = await Pace(n_samples=1, max_reference_chars=100).score(
        QUESTION, "six", llm=llm, references=[long_reference]
    )
    assert "Insects have six legs" not in llm.calls[0].prompt
    assert signal.details["features"]["answer_in_references"] == 1.0


@pytest.mark.integration
async def test_on_the_embedded_model_with_sciq_passages(local_llm: object) -> None:
    references = [  # SciQ validation support passages (CC BY-NC 3.0)
        "A wetland is an area that is wet for all or part of the year. Wetlands are home to certain types of plants.",
        "Blood vessels include arteries, veins, and capillaries.",
        "A frameshift mutation is a deletion or insertion of one or more nucleotides that changes the reading "
        "frame of the base sequence. Deletions remove nucleotides, and insertions add nucleotides.",
    ]
    question = "What is an area of land called that is wet for all or part of the year?"
    pace = Pace(n_samples=1)
    right = await pace.score(question, "wetland", llm=local_llm, references=references)
    wrong = await pace.score(question, "plains", llm=local_llm, references=references)
    for signal in (right, wrong):
        assert signal.error is None
        assert 0.0 <= signal.confidence <= 1.0
        samples = [s for kind in ("coe", "rce") for s in signal.details["ratings"][kind]["samples"]]
        assert len(samples) == 2
        assert signal.cost.calls == 2 + sum(s["asked_for_score"] for s in samples)
        assert signal.cost.completion_tokens > 0
        json.dumps(signal.details, allow_nan=False)
    assert right.details["features"]["answer_in_references"] == 1.0
    assert wrong.details["features"]["answer_in_references"] == 0.0
    # Not asserted: that "wetland" outscores "plains". The model's ratings depend on which llama.cpp kernels
    # ran (with extra buffer types off, an Intel machine gave 0.5625 vs 0.625); how well PACE ranks answers
    # is measured in benchmarks/results/signals_passages.md and quality.md, not pinned here.
