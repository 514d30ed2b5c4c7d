"""The pipeline with the scripted fake LLM: precheck, cascade stops, budgets, reasons."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from estimators.base import Generation, Prompt
from estimators.testing import Rule, ScriptedLLM, prompt_text
from gate.pipeline import Budget, Gate
from gate.suite import SignalSpec
from gate.uncalibrated import Uncalibrated

SUITE = (
    SignalSpec("familiarity", "familiarity", "precheck", {"max_concepts": 1, "guesses": 2}),
    SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),
    SignalSpec("consistency", "consistency", "full", {"n_samples": 3, "adaptive": False}),
    SignalSpec("pace", "pace", "full", {"use_llm_judgements": False}),
)
QUESTION = "Who wrote the play Hamlet?"


@dataclass(frozen=True)
class FixedScorer:
    """A stage model that reads one signal as the probability (makes cascade tests exact)."""

    signals: tuple[str, ...]
    read: str
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        value = values.get(self.read)
        return 0.5 if value is None else value


@dataclass(frozen=True)
class FakeCalibration:
    free: FixedScorer | None
    full: FixedScorer
    precheck_threshold: float | None = None
    id: str = "test-artifact"


CAL = FakeCalibration(
    free=FixedScorer(("familiarity", "logprob_min"), read="logprob_min"),
    full=FixedScorer(("familiarity", "logprob_min", "consistency"), read="consistency"),
)


async def test_confident_free_signals_stop_the_cascade_before_sampling() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    gate = Gate(llm, CAL, suite=SUITE)
    result = await gate.assess(QUESTION)
    assert result.stage == "free"
    assert result.decision == "answer"
    assert "consistency" not in result.signals
    assert not any(call.n == 3 for call in llm.calls)  # consistency never sampled its 3 answers
    assert any("decided on the free signals" in reason for reason in result.reasons)


async def test_an_open_decision_runs_the_full_stage() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])  # exp(-1) = 0.37: open
    gate = Gate(llm, CAL, suite=SUITE)
    result = await gate.assess(QUESTION)
    assert result.stage == "full"
    assert result.signals["consistency"].confidence == 1.0
    assert result.decision == "answer"
    assert "3 of 3 samples agree with the answer" in result.reasons


async def test_without_cascade_every_signal_runs_even_when_free_ones_are_decisive() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, cascade=False)
    assert result.stage == "full"
    assert set(result.signals) == {"familiarity", "logprob_min", "consistency"}
    assert result.skipped == {"pace": "no references given and no index configured"}


async def test_disagreeing_samples_lead_to_abstention_with_a_reason() -> None:
    replies = ["William Shakespeare", "Marlowe", "Bacon", "Jonson"]  # the answer, then three samples
    llm = ScriptedLLM(rules=[Rule("user: " + QUESTION, replies, logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION)
    assert result.decision == "abstain"
    assert result.probability == 0.0
    assert "3 of 3 samples disagree with the answer" in result.reasons
    assert result.answer == "William Shakespeare"


async def test_the_precheck_abstains_before_generating_and_names_the_concept() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "no idea")], default="something else")
    calibration = FakeCalibration(free=CAL.free, full=CAL.full, precheck_threshold=0.5)
    result = await Gate(llm, calibration, suite=SUITE).assess(QUESTION)
    assert result.decision == "abstain"
    assert result.stage == "precheck"
    assert result.answer is None
    assert result.answer_cost.calls == 0
    assert "unfamiliar concept" in result.reasons[0] and "no answer was generated" in result.reasons[0]
    assert all(call.logprobs is None for call in llm.calls)  # the answer call (logprobs=5) never happened


async def test_precheck_false_generates_even_for_an_unfamiliar_question() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "no idea")], default="something else")
    calibration = FakeCalibration(free=CAL.free, full=CAL.full, precheck_threshold=0.5)
    result = await Gate(llm, calibration, suite=SUITE).assess(QUESTION, precheck=False)
    assert result.answer is not None
    assert result.stage in {"free", "full"}


async def test_given_answer_and_logprobs_are_scored_without_generating() -> None:
    llm = ScriptedLLM()
    gate = Gate(llm, CAL, suite=SUITE)
    result = await gate.assess(QUESTION, answer="Shakespeare", logprobs=[-0.01, -0.02], signals=["logprob_min"])
    assert llm.calls == []
    assert result.answer == "Shakespeare"
    assert result.signals["logprob_min"].confidence == pytest.approx(0.980, abs=1e-3)
    assert result.decision == "answer"


async def test_a_call_budget_skips_full_stage_signals_and_says_so() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, budget=Budget(max_calls=1))
    assert "consistency" not in result.signals
    assert result.skipped["consistency"].startswith("budget:")
    assert result.decision == "hedge"  # only the free stage's 0.37, read as missing consistency -> 0.5


class SlowSamplingLLM(ScriptedLLM):
    """Answers at once but never finishes sampling: an estimator that hangs."""

    async def generate(self, prompt: Prompt, **kwargs: object) -> list[Generation]:
        if kwargs.get("n", 1) > 1:
            await asyncio.sleep(30)
        return await super().generate(prompt, **kwargs)  # type: ignore[arg-type]


async def test_a_hanging_estimator_is_cut_by_the_time_budget() -> None:
    llm = SlowSamplingLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, budget=Budget(max_seconds=0.2), precheck=False)
    assert result.skipped["consistency"] == "cut by the time budget of 0.2 s"
    assert result.answer == "William Shakespeare"


async def test_pace_uses_given_references() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(
        QUESTION, cascade=False, references=["Hamlet is a tragedy written by William Shakespeare."]
    )
    assert result.signals["pace"].confidence is not None
    assert "pace" not in result.skipped


async def test_a_failing_signal_is_reported_and_the_answer_survives() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, cascade=False, logprobs=None, answer="")
    assert result.signals["logprob_min"].error is not None
    assert f"signal logprob_min failed: {result.signals['logprob_min'].error}" in result.reasons
    assert result.decision in {"answer", "hedge", "abstain"}


async def test_chat_messages_are_accepted_and_the_last_user_turn_is_the_question() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    result = await Gate(llm, CAL, suite=SUITE).assess(messages)
    assert result.question == QUESTION
    assert "system: Be brief." in prompt_text(messages)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("  ", "the question is empty"),
        ([{"role": "system", "content": "hi"}], "no non-empty user message"),
        ([{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}], "last message"),
    ],
)
async def test_bad_prompts_are_clear_errors(prompt: Prompt, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await Gate(ScriptedLLM(), CAL, suite=SUITE).assess(prompt)


async def test_unknown_signal_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: \\['familiarity', 'logprob_min'"):
        await Gate(ScriptedLLM(), CAL, suite=SUITE).assess(QUESTION, signals=["nope"])


async def test_uncalibrated_default_says_so() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    result = await Gate(llm, Uncalibrated(), suite=SUITE).assess(QUESTION)
    assert result.calibration.startswith("uncalibrated")
    assert result.stage == "full"  # no early exit without a fitted free stage


def test_budget_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="max_calls must be positive"):
        Budget(max_calls=0)


class FailingSamplesLLM(ScriptedLLM):
    """Answers, then the endpoint fails for every sampled call."""

    async def generate(self, prompt: Prompt, **kwargs: object) -> list[Generation]:
        from gate.errors import UpstreamError

        if kwargs.get("n", 1) > 1:
            raise UpstreamError("upstream returned 503", status=503, retryable=True)
        return await super().generate(prompt, **kwargs)  # type: ignore[arg-type]


async def test_an_upstream_failure_inside_a_signal_degrades_the_assessment_not_the_answer() -> None:
    llm = FailingSamplesLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    result = await Gate(llm, CAL, suite=SUITE).assess(QUESTION, precheck=False)
    assert result.answer == "William Shakespeare"
    assert result.signals["consistency"].error == "upstream error: upstream returned 503"
    assert "signal consistency failed: upstream error: upstream returned 503" in result.reasons


async def test_the_free_stage_never_decides_on_no_free_signal_at_all() -> None:
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    free = FixedScorer(("logprob_min",), read="missing", abstain=0.6, hedge=0.9)  # 0.5 would abstain at once
    decisive = FakeCalibration(free=free, full=CAL.full)
    result = await Gate(llm, decisive, suite=SUITE).assess(QUESTION, answer="Shakespeare", precheck=False,
                                                          signals=["logprob_min", "consistency"])
    assert result.signals["logprob_min"].confidence is None  # a given answer without log-probs
    assert result.stage == "full" and "consistency" in result.signals


NO_PRECHECK_SUITE = tuple(
    SignalSpec(s.key, s.estimator, "full", s.params) if s.stage == "precheck" else s for s in SUITE
)
NO_PRECHECK_CAL = FakeCalibration(
    free=FixedScorer(("logprob_min",), read="logprob_min"),
    full=FixedScorer(("familiarity", "logprob_min", "consistency"), read="consistency"),
)


async def test_without_a_precheck_stage_familiarity_runs_only_when_the_free_stage_is_undecided() -> None:
    """``precheck: false``: a confident answer costs one call; familiarity joins the full stage."""
    confident = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    decided = await Gate(confident, NO_PRECHECK_CAL, suite=NO_PRECHECK_SUITE).assess(QUESTION)
    assert decided.stage == "free" and set(decided.signals) == {"logprob_min"}
    assert len(confident.calls) == 1  # the answer, nothing else
    unsure = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-1.0)])
    opened = await Gate(unsure, NO_PRECHECK_CAL, suite=NO_PRECHECK_SUITE).assess(QUESTION)
    assert opened.stage == "full" and {"familiarity", "consistency"} <= set(opened.signals)


async def test_signals_the_artifact_does_not_read_are_not_computed() -> None:

    @dataclass(frozen=True)
    class Stage:
        signals: tuple[str, ...]
        abstain: float = 0.2
        hedge: float = 0.9

        def probability(self, values: Mapping[str, float | None]) -> float:
            return 0.5

    @dataclass(frozen=True)
    class ReadsTokenProbabilityOnly:
        id: str = "test"
        precheck_threshold: float | None = None
        free: Stage | None = None
        full: Stage = Stage(signals=("logprob_min",))

    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.05)])
    gate = Gate(llm, ReadsTokenProbabilityOnly())
    result = await gate.assess("Who wrote Hamlet?")
    assert set(result.signals) == {"logprob_min"}
    assert result.gate_cost.calls == 0 and len(llm.calls) == 1  # the answer only: no precheck, no samples
    assert set(result.skipped) == {"familiarity", "logprob_mean", "consistency"}
    assert all("not read by the calibration" in why for why in result.skipped.values())
    everything = await gate.assess("Who wrote Hamlet?", cascade=False)  # what calibration collects
    assert {"familiarity", "consistency"} <= set(everything.signals)


async def test_samples_the_caller_gave_are_read_even_when_the_free_stage_would_stop() -> None:
    """The full stage costs nothing when the samples come with the request: it decides, at no call."""
    llm = ScriptedLLM(rules=[Rule("Hamlet", "William Shakespeare", logprob=-0.01)])
    gate = Gate(llm, CAL, suite=SUITE)
    given = {"answer": "Christopher Marlowe", "logprobs": [-0.01], "precheck": False}
    alone = await gate.assess(QUESTION, signals=["logprob_min", "consistency"], **given)
    assert alone.stage == "free" and alone.decision == "answer"  # confident tokens, nothing else known
    samples = ["William Shakespeare", "Shakespeare", "William Shakespeare"]
    checked = await gate.assess(QUESTION, signals=["logprob_min", "consistency"], samples=samples, **given)
    assert checked.stage == "full" and checked.decision == "abstain"
    assert checked.signals["consistency"].confidence == 0.0 and llm.calls == []
