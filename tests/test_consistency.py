"""Consistency: agreement, clusters and semantic entropy by hand, adaptive stopping, seeds, properties."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from estimators.base import Cost, Generation, Prompt, SupportsDisagreementStop
from estimators.consistency import Consistency, cluster_probabilities, semantic_entropy
from estimators.equivalence import EntailmentMatch, ExactMatch
from estimators.testing import Rule, ScriptedLLM
from estimators.text import normalize_answer
from gate.backends.embedded.local import LocalLLM

QUESTION = "What is the capital of France?"


async def test_supplied_samples_by_hand_and_without_calls() -> None:
    llm = ScriptedLLM()
    samples = ["Paris", "paris.", "Lyon", "", "Marseille"]
    signal = await Consistency().score(QUESTION, "Paris", llm=llm, samples=samples)
    assert llm.calls == []
    assert signal.cost == Cost()
    assert signal.confidence == pytest.approx(0.4)
    details = signal.details
    assert details["agreement"] == pytest.approx(0.4)
    assert details["n_samples_used"] == 5
    assert details["samples"] == samples
    # Primary + the two Paris samples; Lyon; Marseille; the empty sample on its own.
    assert details["clusters"] == [[0, 1, 2], [3], [5], [4]]
    assert details["n_clusters"] == 4
    assert details["cluster_probabilities"] == pytest.approx([0.4, 0.2, 0.2, 0.2])
    entropy = -(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2))
    assert signal.raw == pytest.approx(entropy)
    assert details["semantic_entropy"] == pytest.approx(entropy)
    assert details["normalised_entropy"] == pytest.approx(entropy / math.log(5))
    assert details["probability_source"] == "counts"
    assert details["stopped_early"] is False
    json.dumps(details)


async def test_two_even_clusters_have_entropy_log_two() -> None:
    signal = await Consistency().score(QUESTION, "Paris", llm=ScriptedLLM(), samples=["Lyon", "Paris", "Lyon", "Paris"])
    assert signal.confidence == 0.5
    assert signal.details["clusters"] == [[0, 2, 4], [1, 3]]
    assert signal.raw == pytest.approx(math.log(2))
    assert signal.details["normalised_entropy"] == pytest.approx(math.log(2) / math.log(4))


async def test_a_cluster_holding_only_the_primary_gets_no_mass() -> None:
    signal = await Consistency().score(QUESTION, "Nice", llm=ScriptedLLM(), samples=["Lyon"])
    assert signal.confidence == 0.0
    assert signal.details["clusters"] == [[0], [1]]
    assert signal.details["cluster_probabilities"] == [0.0, 1.0]
    assert signal.raw == 0.0
    assert signal.details["normalised_entropy"] == 0.0


async def test_drawn_samples_are_weighted_by_sequence_likelihood() -> None:
    llm = ScriptedLLM([Rule("capital", ["Paris", "Lyon city", "Paris"], logprob=-0.5)])
    signal = await Consistency(n_samples=3, adaptive=False).score(QUESTION, "Paris", llm=llm)
    # Sequence log-likelihoods: -0.5, -1.0 (two tokens), -0.5.
    paris, lyon = 2 * math.exp(-0.5), math.exp(-1.0)
    expected = [paris / (paris + lyon), lyon / (paris + lyon)]
    assert signal.details["probability_source"] == "likelihood"
    assert signal.details["cluster_probabilities"] == pytest.approx(expected)
    assert signal.raw == pytest.approx(-sum(p * math.log(p) for p in expected))
    assert signal.confidence == pytest.approx(2 / 3)
    (call,) = llm.calls
    assert call.prompt == f"user: {QUESTION}"
    assert (call.n, call.temperature, call.seed, call.logprobs, call.max_tokens) == (3, 1.0, 0, 1, 12)
    assert signal.cost.calls == 1


async def test_counts_are_used_when_the_endpoint_gives_no_logprobs() -> None:
    llm = ScriptedLLM([Rule("capital", ["Paris", "Lyon city", "Paris"])], with_logprobs=False)
    signal = await Consistency(n_samples=3, adaptive=False).score(QUESTION, "Paris", llm=llm)
    assert signal.details["probability_source"] == "counts"
    assert signal.details["cluster_probabilities"] == pytest.approx([2 / 3, 1 / 3])


async def test_unanimous_samples_stop_early() -> None:
    llm = ScriptedLLM([Rule("capital", "Paris")])
    signal = await Consistency(n_samples=10, batch_size=3).score(QUESTION, "Paris", llm=llm)
    # Beta(4, 1) puts 1 - 0.7**4 = 0.76 above 0.7; Beta(7, 1) puts 0.92 there, past 0.9: stop after two batches.
    assert signal.details["stopped_early"] is True
    assert signal.details["n_samples_used"] == 6
    assert signal.confidence == 1.0
    assert [call.seed for call in llm.calls] == [0, 3]
    assert [call.n for call in llm.calls] == [3, 3]
    assert signal.cost.calls == 2


async def test_unanimous_disagreement_also_stops_early() -> None:
    llm = ScriptedLLM([Rule("capital", "Lyon")])
    signal = await Consistency(n_samples=10, batch_size=3, seed=5).score(QUESTION, "Paris", llm=llm)
    assert signal.details["n_samples_used"] == 6
    assert signal.confidence == 0.0
    assert [call.seed for call in llm.calls] == [5, 8]


async def test_split_samples_draw_the_whole_budget_with_distinct_seeds() -> None:
    llm = ScriptedLLM([Rule("capital", ["Paris", "Lyon"])])
    signal = await Consistency(n_samples=6).score(QUESTION, "Paris", llm=llm)
    assert signal.details["stopped_early"] is False
    assert signal.details["n_samples_used"] == 6
    assert signal.confidence == 0.5
    assert [call.seed for call in llm.calls] == [0, 2, 4]
    assert all(call.temperature == 1.0 for call in llm.calls)


async def test_defaults_cannot_stop_before_five_samples() -> None:
    llm = ScriptedLLM([Rule("capital", "Paris")])
    signal = await Consistency().score(QUESTION, "Paris", llm=llm)
    # Four unanimous samples give only 1 - 0.7**5 = 0.83 above the band; the last batch holds one sample.
    assert [call.n for call in llm.calls] == [2, 2, 1]
    assert signal.details["n_samples_used"] == 5


async def test_non_adaptive_draws_everything_in_one_call() -> None:
    llm = ScriptedLLM([Rule("capital", "Paris")])
    signal = await Consistency(adaptive=False, seed=7, temperature=0.8).score(QUESTION, "Paris", llm=llm)
    (call,) = llm.calls
    assert (call.n, call.seed, call.temperature) == (5, 7, 0.8)
    assert signal.details["stopped_early"] is False


async def test_top_up_draws_only_the_missing_samples() -> None:
    llm = ScriptedLLM([Rule("capital", "Lyon")])
    signal = await Consistency(n_samples=3, top_up=True).score(QUESTION, "Paris", llm=llm, samples=["Paris"])
    assert [call.n for call in llm.calls] == [2]
    assert signal.details["samples"] == ["Paris", "Lyon", "Lyon"]
    assert signal.confidence == pytest.approx(1 / 3)
    assert signal.details["n_drawn"] == 2


async def test_empty_drawn_sample_disagrees_and_stands_alone() -> None:
    llm = ScriptedLLM([Rule("capital", ["Paris", ""])])
    signal = await Consistency(n_samples=2, adaptive=False).score(QUESTION, "Paris", llm=llm)
    assert signal.confidence == 0.5
    assert signal.details["clusters"] == [[0, 1], [2]]
    # The empty sample has no tokens, so likelihoods are not available for every sample.
    assert signal.details["probability_source"] == "counts"


async def test_entailment_judge_costs_are_reported_and_primary_verdicts_reused() -> None:
    def judge(prompt: str, _turn: int) -> str:
        pair = prompt.rsplit("Answer 1: ", 1)[1].split("\nIf", maxsplit=1)[0]
        first, second = pair.split("\nAnswer 2: ")
        return "Yes" if first[0] == second[0] else "No"  # same first letter = same meaning

    llm = ScriptedLLM([Rule("Answer 1:", judge)])
    consistency = Consistency(equivalence=EntailmentMatch(llm))
    signal = await consistency.score(QUESTION, "Paris", llm=llm, samples=["Paname", "Lyon", "Lille", "Nice"])
    assert signal.details["clusters"] == [[0, 1], [2, 3], [4]]
    # Agreement: Paname 2 calls, Lyon 1, Lille 1, Nice 1; clustering: Lyon~Lille 2, Lyon~Nice 1.
    assert signal.cost.calls == 8
    assert signal.details["equivalence"] == "entailment"


async def test_empty_primary_and_missing_samples_are_errors() -> None:
    llm = ScriptedLLM()
    signal = await Consistency().score(QUESTION, " ", llm=llm)
    assert (signal.confidence, signal.error) == (None, "empty answer")
    signal = await Consistency().score(QUESTION, "Paris", llm=llm, samples=[])
    assert (signal.confidence, signal.error) == (None, "no samples to compare with")
    assert llm.calls == []


async def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="band"):
        Consistency(band=(0.8, 0.2))
    with pytest.raises(ValueError, match="n_samples"):
        Consistency(n_samples=0)
    with pytest.raises(TypeError, match="Equivalence"):
        Consistency(equivalence="exact")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        await Consistency().score(QUESTION, "Paris", llm=ScriptedLLM(), samples="Paris")
    with pytest.raises(TypeError, match="3"):
        await Consistency().score(QUESTION, "Paris", llm=ScriptedLLM(), samples=["Paris", 3])  # type: ignore[list-item]


def test_cluster_probabilities_validate_their_input() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        cluster_probabilities([[0]], 0)
    with pytest.raises(ValueError, match="2 log-likelihoods for 3"):
        cluster_probabilities([[0, 1, 2, 3]], 3, [-1.0, -2.0])


ANSWERS = st.sampled_from(["Paris", "paris", "Lyon", "the Lyon", "Nice", "", "Paris France"])


@settings(max_examples=60, deadline=None)
@given(primary=ANSWERS.filter(bool), samples=st.lists(ANSWERS, min_size=1, max_size=8))
def test_probabilities_sum_to_one_for_any_samples(primary: str, samples: list[str]) -> None:
    signal = asyncio.run(Consistency().score(QUESTION, primary, llm=ScriptedLLM(), samples=samples))
    probabilities = signal.details["cluster_probabilities"]
    assert math.fsum(probabilities) == pytest.approx(1.0)
    assert all(p >= 0.0 for p in probabilities)
    assert signal.raw is not None and signal.raw >= 0.0
    assert 0.0 <= signal.details["normalised_entropy"] <= 1.0 + 1e-12
    assert probabilities[0] == pytest.approx(signal.confidence)
    assert sorted(i for cluster in signal.details["clusters"] for i in cluster) == list(range(len(samples) + 1))


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    log_likelihoods=st.lists(st.floats(min_value=-500.0, max_value=0.0), min_size=1, max_size=10),
)
def test_likelihood_weights_sum_to_one(data: st.DataObject, log_likelihoods: list[float]) -> None:
    n = len(log_likelihoods)
    labels = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    clusters = [[0]] + [[i + 1 for i in range(n) if labels[i] == label] for label in sorted(set(labels))]
    probabilities = cluster_probabilities(clusters, n, log_likelihoods)
    assert math.fsum(probabilities) == pytest.approx(1.0)
    assert probabilities[0] == 0.0
    assert semantic_entropy(probabilities) >= 0.0


@pytest.mark.integration
async def test_on_the_embedded_model(local_llm: LocalLLM) -> None:
    consistency = Consistency(n_samples=4, adaptive=False, max_tokens=16)
    signal = await consistency.score(QUESTION, "Paris", llm=local_llm)
    assert signal.error is None
    assert signal.confidence is not None and 0.0 <= signal.confidence <= 1.0
    assert signal.details["n_samples_used"] == 4
    assert math.fsum(signal.details["cluster_probabilities"]) == pytest.approx(1.0)
    assert signal.cost.calls == 1
    json.dumps(signal.details)


def test_samples_are_cut_to_the_length_that_could_still_agree_with_the_answer() -> None:
    short, long = "Paris", "The capital of France is Paris, on the Seine, and it has been since the tenth century."
    assert Consistency().sample_tokens(short) == 12  # MIN_SAMPLE_TOKENS
    assert Consistency().sample_tokens("x" * 40) == 24  # twice 40 characters at 4 a token, plus 4
    assert Consistency().sample_tokens(long) == 32  # never past max_tokens
    assert Consistency(fit_to_answer=False).sample_tokens(short) == 32
    judge = EntailmentMatch(ScriptedLLM())  # a judge of meaning: a cut sample could mean something else
    assert Consistency(equivalence=judge).sample_tokens(short) == 32


async def test_the_samples_are_drawn_at_the_fitted_length() -> None:
    llm = ScriptedLLM(rules=[Rule("capital", "Paris")])
    await Consistency(adaptive=False).score(QUESTION, "Paris", llm=llm)
    assert [call.max_tokens for call in llm.calls] == [12]


@dataclass
class DisagreementStoppingLLM(ScriptedLLM):
    """A scripted LLM that ends replies as the embedded model does: whole words at a time, as soon as a reply can no
    longer agree with the answer."""

    asked: list[tuple[str, float]] = field(default_factory=list)

    async def generate_until_disagreeing(
        self, prompt: Prompt, *, answer: str, min_span_fraction: float = 0.5, **kwargs: Any
    ) -> list[Generation]:
        self.asked.append((answer, min_span_fraction))
        judge = ExactMatch(min_span_fraction=min_span_fraction)
        return [
            generation.model_copy(update={"text": _cut_when_settled(generation.text, judge, answer)})
            for generation in await self.generate(prompt, **kwargs)
        ]


def _cut_when_settled(text: str, judge: ExactMatch, answer: str) -> str:
    kept = ""
    for word in text.split():
        kept = f"{kept} {word}" if kept else word
        if not judge.could_agree(answer, kept + " "):
            break
    return kept


async def test_an_llm_that_can_stop_disagreeing_samples_is_asked_to_and_a_plain_one_is_not() -> None:
    replies = ["Paris", "It is Paris, the capital of France.", "Lyon or Marseille"]
    stopping = DisagreementStoppingLLM(rules=[Rule("capital", replies)])
    signal = await Consistency(adaptive=False, n_samples=3).score(QUESTION, "Paris", llm=stopping)
    assert stopping.asked == [("Paris", 0.5)]
    assert signal.details["samples"] == ["Paris", "It is", "Lyon or"]  # two words without "Paris": settled
    assert signal.details["n_agree"] == 1 and signal.details["cut_when_settled"]
    plain = ScriptedLLM(rules=[Rule("capital", "Paris")])
    assert isinstance(stopping, SupportsDisagreementStop) and not isinstance(plain, SupportsDisagreementStop)
    whole = await Consistency(adaptive=False).score(QUESTION, "Paris", llm=plain)
    assert len(plain.calls) == 1 and not whole.details["cut_when_settled"]  # asked through generate alone
    other_judge = DisagreementStoppingLLM(rules=[Rule("capital", "Paris")])
    await Consistency(adaptive=False, equivalence=EntailmentMatch(ScriptedLLM())).score(QUESTION, "P", llm=other_judge)
    assert other_judge.asked == []  # only ExactMatch's verdicts can be settled early


WORDS = ["Paris", "the", "France", "of", "capital", "a", "city,", "Lyon.", "U.S."]
words = st.lists(st.sampled_from(WORDS), max_size=9)


@given(answer=words, samples=st.lists(words, min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_stopping_disagreeing_samples_never_changes_an_agreement(answer: list[str], samples: list[list[str]]) -> None:
    text = " ".join(answer)
    assume(normalize_answer(text))
    replies = [" ".join(sample) for sample in samples]
    consistency = Consistency(adaptive=False, n_samples=len(replies))
    stopping = DisagreementStoppingLLM(rules=[Rule("capital", replies)])
    plain = ScriptedLLM(rules=[Rule("capital", replies)])
    cut = asyncio.run(consistency.score(QUESTION, text, llm=stopping)).details
    whole = asyncio.run(consistency.score(QUESTION, text, llm=plain)).details
    assert cut["clusters"][0] == whole["clusters"][0]  # the answer's cluster: the samples that agree with it
