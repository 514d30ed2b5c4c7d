"""The self-familiarity precheck: masking, both scoring paths, aggregation, threshold, errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy import stats

from estimators.base import SupportsContinuationLogprobs
from estimators.familiarity import (
    MASK,
    Familiarity,
    ThresholdEstimate,
    aggregate_familiarity,
    back_prompt,
    estimate_threshold,
    explain_prompt,
    familiarity_weights,
    mask_concept,
    score_common_concepts,
    surface_forms,
)
from estimators.testing import Rule, ScriptedLLM


@dataclass
class WhiteBoxLLM(ScriptedLLM):
    """A scripted LLM that also scores forced continuations from a fixed table."""

    table: dict[str, list[float]] = field(default_factory=dict)
    forced: list[tuple[str, str]] = field(default_factory=list)

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        self.forced.append((prompt, continuation))
        return list(self.table.get(continuation, [-9.0]))


PARIS_RULES = [
    Rule('Explain "Paris"', "Paris is the capital of France, on the river Seine."),
    Rule(
        '"___ is the capital of France, on the river Seine."',
        ["Paris", "the city of Paris", "Lyon", "paris.", "Parisian"],
    ),
]


# --- masking -------------------------------------------------------------------------------------


def test_surface_forms_longest_first_without_stopwords() -> None:
    assert surface_forms("The Rack") == ["THE RACK", "The Rack", "The rack", "the rack", "RACK", "Rack", "rack"]
    forms = surface_forms("Æthelburh of Wilton")
    assert "of" not in forms and "OF" not in forms and "Of" not in forms
    assert forms[0] == "ÆTHELBURH OF WILTON" and {"Wilton", "wilton", "WILTON", "Æthelburh"} <= set(forms)
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)


def test_mask_hides_every_form_and_leaves_stopwords() -> None:
    text = "Easy Living is a 1937 film. The living room is easy to see; EASY LIVING! easy-living"
    assert mask_concept(text, "Easy Living") == (
        f"{MASK} is a 1937 film. The {MASK} room is {MASK} to see; {MASK}! {MASK}-{MASK}"
    )
    assert mask_concept("Æthelburh of Wilton was abbess of Wilton Abbey.", "Æthelburh of Wilton") == (
        f"{MASK} was abbess of {MASK} Abbey."
    )
    assert mask_concept("The Rack is a film. The director liked racks.", "The Rack") == (
        f"{MASK} is a film. The director liked {MASK}."
    )


def test_mask_swallows_derived_forms_but_not_inner_matches() -> None:
    assert mask_concept("Peruvian food from Peru; a superuser.", "Peru") == f"{MASK} food from {MASK}; a superuser."
    assert mask_concept("Nothing to hide here.", "Zorblaxian Flux") == "Nothing to hide here."


def test_prompts_do_not_leak_the_concept() -> None:
    prompt = back_prompt(mask_concept("Paris is the capital of France.", "Paris"), "Paris")
    assert "Paris" not in prompt and prompt.endswith(f'"{MASK} is the capital of France."\nName:')
    assert explain_prompt("Paris").endswith('Explain "Paris" in one short paragraph.\n')
    # A worked example that names the concept is left out of both prompts.
    assert "Compass" in explain_prompt("Paris")
    assert "Compass" not in explain_prompt("compass") and "Compass" not in back_prompt("x", "compass")
    assert "Bach" in back_prompt("x", "compass")


# --- aggregation ---------------------------------------------------------------------------------


def test_weights_are_normalised_powers_of_two() -> None:
    assert familiarity_weights(1) == [1.0]
    assert familiarity_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert sum(familiarity_weights(5)) == pytest.approx(1.0)


def test_aggregate_weighted_min_first() -> None:
    result = aggregate_familiarity([0.1, 0.5, 0.9])
    assert result["weighted"] == pytest.approx((4 * 0.1 + 2 * 0.5 + 1 * 0.9) / 7)
    assert result["min"] == 0.1
    assert result["first"] == 0.1
    with pytest.raises(ValueError, match="empty"):
        aggregate_familiarity([])


# --- the forced-continuation path ----------------------------------------------------------------


async def test_forced_continuation_score_is_exact() -> None:
    llm = WhiteBoxLLM(PARIS_RULES, table={" Paris": [-0.5, -1.5], "paris": [-0.2, -4.0], " paris": [-3.0]})
    assert isinstance(llm, SupportsContinuationLogprobs)
    signal = await Familiarity().assess("Where is Paris?", llm=llm)
    assert signal.error is None
    assert signal.confidence == pytest.approx(math.exp(-1.0))
    assert signal.raw == pytest.approx(math.exp(-1.0))
    assert signal.details["method"] == "forced_continuation"
    assert "constrained beam search" in signal.details["method_note"]
    (concept,) = signal.details["concepts"]
    assert concept["concept"] == "Paris" and concept["variant"] == " Paris"
    assert concept["log_rarity"] == -1000.0 and concept["error"] is None
    assert concept["masked"] == f"{MASK} is the capital of France, on the river Seine."
    # Variants: as written / lower (Title equals as written), each with and without a leading space.
    assert [c for _, c in llm.forced] == [" Paris", "Paris", " paris", "paris"]
    assert all("Paris" not in prompt for prompt, _ in llm.forced)
    assert all(prompt.endswith(f'"{concept["masked"]}"\nName:') for prompt, _ in llm.forced)
    json.dumps(signal.details)  # the audit trail must serialise
    # One greedy explanation plus four forced continuations.
    assert signal.cost.calls == 5
    assert llm.calls[0].temperature == 0.0 and llm.calls[0].max_tokens == 60


async def test_concepts_aggregate_rarest_first_with_a_threshold() -> None:
    rules = [
        Rule('Explain "The Great Outdoors"', "The Great Outdoors is a 1988 comedy film."),
        Rule('Explain "American"', "American means from the United States."),
    ]
    table = {" The Great Outdoors": [math.log(0.2)], " American": [math.log(0.8)]}
    llm = WhiteBoxLLM(rules, table=table)
    question = "The 1988 American comedy film, The Great Outdoors, starred whom?"
    signal = await Familiarity(threshold=0.5).assess(question, llm=llm)
    assert [c["concept"] for c in signal.details["concepts"]] == ["The Great Outdoors", "American"]
    assert signal.confidence == pytest.approx((2 * 0.2 + 1 * 0.8) / 3)
    assert signal.details["aggregate"] == pytest.approx({"weighted": 0.4, "min": 0.2, "first": 0.2})
    assert signal.details["familiar"] is False
    assert signal.details["unfamiliar_concepts"] == ["The Great Outdoors"]
    assert "The Great Outdoors" in signal.details["reason"]
    familiar = await Familiarity(threshold=0.3).assess(question, llm=WhiteBoxLLM(rules, table=table))
    assert familiar.details["familiar"] is True and familiar.details["unfamiliar_concepts"] == ["The Great Outdoors"]


async def test_max_concepts_keeps_the_rarest() -> None:
    llm = WhiteBoxLLM([Rule("Explain", "Something.")])
    question = "J. R. R. Tolkien wrote The Lord of the Rings in Oxford."
    signal = await Familiarity(max_concepts=1).assess(question, llm=llm)
    assert [c["concept"] for c in signal.details["concepts"]] == ["J. R. R. Tolkien"]


async def test_empty_explanation_scores_zero() -> None:
    llm = WhiteBoxLLM([Rule("Explain", "")])
    signal = await Familiarity().assess("Where is Paris?", llm=llm)
    assert signal.confidence == 0.0
    assert signal.cost.calls == 1 and llm.forced == []


async def test_no_usable_logprobs_is_an_error_not_an_exception() -> None:
    no_logprobs: dict[str, list[float]] = {v: [] for v in (" Paris", "Paris", " paris", "paris")}
    llm = WhiteBoxLLM([Rule("Explain", "Paris is a city.")], table=no_logprobs)
    signal = await Familiarity().assess("Where is Paris?", llm=llm)
    assert signal.confidence is None
    assert signal.error == "no concept could be scored"
    assert signal.details["concepts"][0]["error"] == "no variant of the concept could be scored"


# --- the sampling approximation ------------------------------------------------------------------


async def test_sampled_approximation_fraction_is_exact() -> None:
    llm = ScriptedLLM(PARIS_RULES)
    signal = await Familiarity(guesses=5, seed=7).assess("Where is Paris?", llm=llm)
    # "Paris", "the city of Paris" and "paris." name the concept; "Lyon" and "Parisian" do not.
    assert signal.confidence == pytest.approx(3 / 5)
    assert signal.details["method"] == "sampled_approximation"
    assert "not the paper's method" in signal.details["method_note"]
    assert signal.details["concepts"][0]["guesses"] == ["Paris", "the city of Paris", "Lyon", "paris.", "Parisian"]
    guess_call = llm.calls[1]
    assert (guess_call.n, guess_call.temperature, guess_call.seed) == (5, 1.0, 7)
    assert "Paris" not in guess_call.prompt
    assert signal.cost.calls == 2


# --- errors and the estimator contract -----------------------------------------------------------


async def test_no_concepts_returns_an_error_without_calls() -> None:
    llm = ScriptedLLM()
    signal = await Familiarity().score("What is it?", "irrelevant", llm=llm)
    assert signal.confidence is None and signal.error == "no concepts"
    assert signal.name == "familiarity"
    assert llm.calls == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"max_concepts": 0}, "max_concepts"),
        ({"explain_tokens": 0}, "explain_tokens"),
        ({"guesses": True}, "guesses"),
        ({"seed": "0"}, "seed"),
    ],
)
async def test_invalid_configuration_raises(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await Familiarity(**config).assess("Where is Paris?", llm=ScriptedLLM())


async def test_score_ignores_the_answer_and_stores_nothing_on_self() -> None:
    estimator = Familiarity()
    before = dict(vars(estimator))
    llm = WhiteBoxLLM(PARIS_RULES, table={" Paris": [-1.0]})
    first = await estimator.score("Where is Paris?", "Lyon", llm=llm)
    second = await estimator.score("Where is Paris?", "Paris", llm=WhiteBoxLLM(PARIS_RULES, table={" Paris": [-1.0]}))
    assert first.confidence == second.confidence == pytest.approx(math.exp(-1.0))
    assert vars(estimator) == before


# --- the threshold -------------------------------------------------------------------------------


def test_threshold_of_constant_scores_is_that_constant() -> None:
    assert estimate_threshold([0.3] * 20) == ThresholdEstimate(threshold=0.3, ci_low=0.3, ci_high=0.3, n=20)


def test_threshold_is_the_midpoint_of_a_percentile_bootstrap_interval() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    result = estimate_threshold(scores, n_resamples=2000, seed=1)
    assert result.n == 101
    assert result.threshold == pytest.approx((result.ci_low + result.ci_high) / 2)
    assert result.ci_low <= np.percentile(scores, 5) <= result.ci_high
    # An independent computation: scipy's percentile bootstrap of the 5th percentile.
    reference = stats.bootstrap(
        (scores,), lambda x, axis: np.percentile(x, 5, axis=axis), n_resamples=2000, method="percentile", random_state=1
    ).confidence_interval
    assert result.ci_low == pytest.approx(reference.low, abs=0.01)
    assert result.ci_high == pytest.approx(reference.high, abs=0.01)
    assert estimate_threshold(scores, seed=1) == estimate_threshold(scores, seed=1)


@pytest.mark.parametrize(
    ("scores", "options", "message"),
    [
        ([], {}, "non-empty"),
        ([0.1, float("nan")], {}, "finite"),
        ([0.1, 0.2], {"percentile": 0.0}, "percentile"),
        ([0.1, 0.2], {"percentile": 100.0}, "percentile"),
        ([0.1, 0.2], {"n_resamples": 0}, "n_resamples"),
    ],
)
def test_threshold_rejects_bad_input(scores: list[float], options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_threshold(scores, **options)


async def test_score_common_concepts_scores_bare_concepts_in_order() -> None:
    rules = [
        Rule('Explain "Gravity"', "Gravity pulls things down."),
        Rule('Explain "Democracy"', "Rule by the people."),
    ]
    llm = WhiteBoxLLM(rules, table={" Gravity": [math.log(0.9)], " Democracy": [math.log(0.6)]})
    scores = await score_common_concepts(llm, ["Gravity", "Democracy"], Familiarity())
    assert scores == pytest.approx([0.9, 0.6])


async def test_score_common_concepts_leaves_out_failures() -> None:
    table_without_democracy = {" Gravity": [math.log(0.5)]} | {
        v: [] for v in (" Democracy", "Democracy", " democracy", "democracy")
    }
    llm = WhiteBoxLLM([Rule("Explain", "Something.")], table=table_without_democracy)
    assert await score_common_concepts(llm, ["Gravity", "Democracy"], Familiarity()) == pytest.approx([0.5])


# --- the embedded model --------------------------------------------------------------------------


@pytest.mark.integration
async def test_embedded_model_knows_paris_better_than_an_invented_concept(local_llm) -> None:
    estimator = Familiarity()
    known = await estimator.assess("What is the capital city Paris known for?", llm=local_llm)
    invented = await estimator.assess("Who discovered the Zorblaxian Flux?", llm=local_llm)
    for signal in (known, invented):
        assert signal.error is None, signal.error
        assert 0.0 <= signal.confidence <= 1.0
        assert signal.details["method"] == "forced_continuation"
        assert signal.cost.calls >= 3
    assert known.details["concepts"][0]["concept"] == "Paris"
    assert invented.details["concepts"][0]["concept"] == "Zorblaxian Flux"
    assert known.confidence > invented.confidence
