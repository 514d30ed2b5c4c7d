"""Long answers judged claim by claim in the pipeline (``gate.claim_judge``), with the scripted fake LLM.

The claim artifacts are built here (a one-signal ``FittedStage``), so nothing depends on shipped files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from calibration._candidates import ThresholdResult
from calibration.artifact import Artifact, ArtifactError, FittedStage
from calibration.fusion import WeightedMeanFusion
from calibration.thresholds import DecisionThresholds
from estimators.testing import Rule, ScriptedLLM
from gate.claim_judge import ClaimJudge, RouteCalibration
from gate.claim_verdict import ClaimVerdict, answer_decision, claim_decision
from gate.pipeline import Gate
from gate.suite import SignalSpec

MODEL = "openai/stub"
SUITE = (SignalSpec("logprob_min", "logprob", "free", {"aggregate": "min"}),)
QUESTION = "Who was Ada Lovelace?"
ANSWER = "Ada Lovelace was a mathematician. She was born in 1815. She lived on the Moon."
SAMPLE = "Ada Lovelace was a mathematician. She was born in 1815 in London."
TOOL_TURNS: list[Any] = [
    {"role": "system", "content": "You are a weather assistant. Use the tools."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": json.dumps({"city": "Paris", "temperature_c": 18})},
]


@dataclass(frozen=True)
class ReadLogprob:
    """A whole-answer stage that reads the answer's weakest token probability (today's path, exact)."""

    signals: tuple[str, ...] = ("logprob_min",)
    abstain: float = 0.3
    hedge: float = 0.7

    def probability(self, values: Mapping[str, float | None]) -> float:
        value = values.get("logprob_min")
        return 0.5 if value is None else value


@dataclass(frozen=True)
class WholeAnswer:
    free: ReadLogprob | None = None
    full: ReadLogprob = ReadLogprob()
    precheck_threshold: float | None = None
    id: str = "whole-answer-artifact"


def claim_artifact(signal: str, *, abstain: float, hedge: float, model: str = MODEL) -> Artifact:
    """A claim artifact in the shipped format: one stage that reads ``signal`` as it is, with two thresholds."""
    fusion = WeightedMeanFusion().fit([[0.5]], feature_names=[signal])
    chosen = ThresholdResult(hedge, "ltt:binomial", 0.1, 0.1, True, 0.05, 0.6, 100, "chosen for the test")
    floor = ThresholdResult(abstain, "ltt:binomial", 0.3, 0.1, True, 0.2, 0.9, 100, "chosen for the test")
    thresholds = DecisionThresholds(abstain=abstain, hedge=hedge, answer_result=chosen, hedge_result=floor)
    stage = FittedStage(signals=(signal,), fusion=fusion, calibrator=None, thresholds=thresholds)
    suite = [{"key": signal, "estimator": signal, "stage": "full", "params": {}}]
    return Artifact(model=model, suite=suite, stages={"full": stage})


def saved_claim_artifact(tmp_path: Path, signal: str, *, abstain: float = 0.3, hedge: float = 0.5) -> Path:
    return claim_artifact(signal, abstain=abstain, hedge=hedge).save(tmp_path / f"{signal}.calibration.json")


def first_then(first: str, rest: str) -> Any:
    """A reply script: ``first`` for the primary answer, ``rest`` for every sample after it."""
    return lambda prompt, turn: first if turn == 0 else rest


def gate_with(llm: ScriptedLLM, judge: ClaimJudge | None = None) -> Gate:
    return Gate(llm, WholeAnswer(), suite=SUITE, claims=judge)


# --- verdicts ----------------------------------------------------------------------------------------------------


def verdict(decision: str, probability: float = 0.5) -> ClaimVerdict:
    return ClaimVerdict(text="x.", start=0, end=2, probability=probability, decision=decision, reason="r")  # type: ignore[arg-type]


def test_claim_decisions_follow_the_two_thresholds() -> None:
    assert [claim_decision(p, abstain=0.3, hedge=0.7) for p in (0.7, 0.69, 0.3, 0.29)] == [
        "keep",
        "flag",
        "flag",
        "withhold",
    ]


def test_the_answer_decision_follows_from_its_claims() -> None:
    assert answer_decision([verdict("keep"), verdict("keep")]) == "answer"
    assert answer_decision([verdict("keep"), verdict("flag")]) == "hedge"
    assert answer_decision([verdict("flag"), verdict("withhold")]) == "abstain"  # nothing kept


# --- closed-book route -------------------------------------------------------------------------------------------


async def test_a_long_answer_is_judged_claim_by_claim_against_samples_drawn_in_one_call() -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", first_then(ANSWER, SAMPLE), logprob=-0.01)])
    result = await gate_with(llm, ClaimJudge()).assess(QUESTION)
    assert result.claims is not None and result.claim_route == "closed"
    assert [c.text for c in result.claims] == [
        "Ada Lovelace was a mathematician.",
        "She was born in 1815.",
        "She lived on the Moon.",
    ]
    assert all(ANSWER[c.start : c.end] == c.text for c in result.claims)
    assert [c.decision for c in result.claims] == ["keep", "keep", "withhold"]
    assert "not in references: Moon" in result.claims[2].evidence and "withheld" in result.claims[2].reason
    assert "Moon" not in result.claims[2].reason  # the reason quotes nothing of the claim
    assert result.decision == "hedge"  # some claims kept, one not
    assert result.probability == min(c.probability for c in result.claims)
    assert result.calibration.startswith("uncalibrated: no claim artifact for the closed route")
    assert "claim_consistency" in result.signals
    [_, sampling] = llm.calls  # the answer, then one call for all samples
    assert sampling.n == 5 and sampling.temperature == 1.0
    summary = result.summary()
    assert summary["claim_route"] == "closed"
    assert summary["claims"][2] == {
        "text": "She lived on the Moon.",
        "span": [ANSWER.index("She lived"), len(ANSWER)],
        "probability": 0.0,
        "decision": "withhold",
        "reason": result.claims[2].reason,
        "evidence": result.claims[2].evidence,
    }


async def test_samples_the_caller_already_has_are_reused() -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", ANSWER)])
    result = await gate_with(llm, ClaimJudge()).assess(QUESTION, samples=[SAMPLE, SAMPLE])
    assert len(llm.calls) == 1  # only the answer: no sampling call
    assert result.claims is not None and [c.decision for c in result.claims] == ["keep", "keep", "withhold"]


async def test_a_short_answer_keeps_the_whole_answer_path() -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", "Ada Lovelace was a mathematician.", logprob=-0.01)])
    result = await gate_with(llm, ClaimJudge()).assess(QUESTION)
    assert result.claims is None and result.decision == "answer"
    assert set(result.signals) == {"logprob_min"} and len(llm.calls) == 1


async def test_claims_off_for_a_request_judges_the_answer_whole() -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", first_then(ANSWER, SAMPLE), logprob=-0.01)])
    result = await gate_with(llm, ClaimJudge()).assess(QUESTION, claims=False)
    assert result.claims is None and "claim_consistency" not in result.signals


async def test_no_claim_kept_abstains_with_the_weakest_claim_as_the_reason() -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", first_then(ANSWER, "I do not know anything about that person."))])
    result = await gate_with(llm, ClaimJudge()).assess(QUESTION)
    assert result.claims is not None and {c.decision for c in result.claims} == {"withhold"}
    assert result.decision == "abstain"
    assert result.reasons[0].startswith("claim 1 of 3: agreement of the model's sampled answers 0")


# --- grounded route ----------------------------------------------------------------------------------------------


async def test_references_given_to_the_library_judge_claims_without_any_llm_call(tmp_path: Path) -> None:
    llm = ScriptedLLM(rules=[Rule("Ada", "unused")])
    grounded = RouteCalibration.from_path(saved_claim_artifact(tmp_path, "claim_support"), "grounded", model=MODEL)
    references = ["Ada Lovelace was an English mathematician, born in 1815 in London."]
    result = await gate_with(llm, ClaimJudge(grounded=grounded)).assess(QUESTION, answer=ANSWER, references=references)
    assert llm.calls == []  # the answer was given and the grounded route asks the model nothing
    assert result.claim_route == "grounded" and result.kind == "grounded"
    assert result.claims is not None and [c.decision for c in result.claims] == ["keep", "keep", "withhold"]
    assert result.calibration == grounded.id and result.thresholds == {"abstain": 0.3, "hedge": 0.5}


async def test_an_answer_to_a_tool_result_is_checked_against_it_instead_of_passing_unassessed() -> None:
    def weather(prompt: str, turn: int) -> str:
        return "It is 25 degrees in Paris." if "contradict" in prompt else "It is 18 degrees in Paris."

    llm = ScriptedLLM(rules=[Rule("temperature_c", weather)])
    without = await gate_with(llm).assess(TOOL_TURNS)
    assert without.decision == "not_assessed"  # before: no PACE, so no way to check the answer
    grounded = RouteCalibration(claim_artifact("claim_support", abstain=0.3, hedge=0.5).full, "grounded-test")
    judge = ClaimJudge(grounded=grounded)
    kept = await gate_with(llm, judge).assess(TOOL_TURNS)
    assert kept.claim_route == "grounded" and kept.claims is not None
    assert [c.decision for c in kept.claims] == ["keep"] and kept.decision == "answer"
    system = {"role": "system", "content": "Answer from the tool (contradict)."}
    wrong = await gate_with(llm, judge).assess([system, *TOOL_TURNS[1:]])
    assert wrong.claims is not None and [c.decision for c in wrong.claims] == ["withhold"]
    assert wrong.decision == "abstain" and "25" in wrong.claims[0].evidence
    assert len(llm.calls) == 3  # one answer per assessment, nothing else


# --- claim artifacts ---------------------------------------------------------------------------------------------


def test_a_claim_artifact_for_another_signal_or_model_is_refused(tmp_path: Path) -> None:
    path = saved_claim_artifact(tmp_path, "claim_support")
    with pytest.raises(ArtifactError, match="needs one that reads 'claim_consistency'"):
        RouteCalibration.from_path(path, "closed", model=MODEL)
    with pytest.raises(ArtifactError, match="fitted for model 'openai/stub', not 'openai/other'"):
        RouteCalibration.from_path(path, "grounded", model="openai/other")
    assert RouteCalibration.from_path(None, "grounded", model=MODEL).id.startswith("uncalibrated:")
