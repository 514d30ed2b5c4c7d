"""What a client reads of a long answer under each claim policy, and which policies a request may pick."""

from __future__ import annotations

import pytest

from estimators.claims import split_claims
from gate.assessment import Assessment
from gate.claim_render import marked, struck
from gate.claim_verdict import ClaimVerdict, answer_decision, answer_probability
from gate.config import Settings
from gate.errors import ConfigError
from gate.server.policy import Policy
from gate.server.wire import ChatRequest, ForbiddenError

ANSWER = "Rome was founded in 753 BC. It had a million cats. Augustus was its first emperor."
LIST = "Facts:\n- Rome was founded in 753 BC.\n- It had a million cats.\n- Augustus was its first emperor."
NOTE = "Note: {count} removed."


def judged(text: str, decisions: list[str]) -> tuple[ClaimVerdict, ...]:
    claims = [c for c in split_claims(text) if c.text != "Facts:"]
    probability = {"keep": 0.9, "flag": 0.4, "withhold": 0.1}
    return tuple(
        ClaimVerdict(text=c.text, start=c.start, end=c.end, probability=probability[d], decision=d, reason="r")  # type: ignore[arg-type]
        for c, d in zip(claims, decisions, strict=True)
    )


def test_mark_replaces_each_claim_that_is_not_kept_by_the_template() -> None:
    claims = judged(ANSWER, ["keep", "flag", "keep"])
    assert marked(ANSWER, claims, "[unverified: {claim}]") == (
        "Rome was founded in 753 BC. [unverified: It had a million cats.] Augustus was its first emperor."
    )
    assert marked(ANSWER, claims, "{claim} (p={probability})").count("(p=0.40)") == 1


def test_strike_removes_what_is_not_kept_and_says_so() -> None:
    claims = judged(ANSWER, ["keep", "withhold", "keep"])
    assert (
        struck(ANSWER, claims, NOTE)
        == "Rome was founded in 753 BC. Augustus was its first emperor.\n\nNote: 1 removed."
    )
    listed = struck(LIST, judged(LIST, ["keep", "flag", "keep"]), NOTE)
    assert listed == (
        "Facts:\n- Rome was founded in 753 BC.\n- Augustus was its first emperor.\n\nNote: 1 removed."
    )  # the list item goes with its marker
    assert struck(ANSWER, judged(ANSWER, ["flag", "withhold", "flag"]), NOTE) is None  # nothing left
    assert struck(ANSWER, judged(ANSWER, ["keep"] * 3), NOTE) == ANSWER


def assessment(decisions: list[str]) -> Assessment:
    claims = judged(ANSWER, decisions)
    return Assessment(
        question="Tell me about Rome.",
        answer=ANSWER,
        decision=answer_decision(claims),
        probability=answer_probability(claims),
        reasons=["weakest claim"],
        calibration="test",
        claims=claims,
        claim_route="closed",
    )


def policy(**settings: object) -> Policy:
    return Policy.from_settings(Settings(model="openai/stub", **settings))  # type: ignore[arg-type]


def test_render_applies_the_policy_in_enforce_and_only_annotates_in_observe() -> None:
    result, rules = assessment(["keep", "withhold", "keep"]), policy(claim_strike_note=NOTE)
    annotated = rules.render("enforce", result, claims="annotate")
    assert annotated.texts == [ANSWER] and annotated.gate["claims_policy"] == "annotate"
    assert [c["decision"] for c in annotated.gate["claims"]] == ["keep", "withhold", "keep"]
    assert "cats" not in rules.render("enforce", result, claims="strike").texts[0]
    assert "[unverified: It had a million cats.]" in rules.render("enforce", result, claims="mark").texts[0]
    observed = rules.render("observe", result, claims="strike")
    assert observed.texts == [ANSWER] and observed.gate["claims_policy"] == "annotate"


def test_no_claim_kept_abstains_under_every_policy() -> None:
    result, rules = assessment(["flag", "withhold", "flag"]), policy()
    for claims in ("annotate", "mark", "strike"):
        [text] = rules.render("enforce", result, claims=claims).texts  # type: ignore[arg-type]
        assert text.startswith("I can't answer this reliably") and "cats" not in text


def request(claims: str | None) -> ChatRequest:
    gate = {} if claims is None else {"gate": {"claims": claims}}
    return ChatRequest.model_validate({"model": "openai/stub", "messages": [{"role": "user", "content": "Hi"}], **gate})


def test_a_request_may_ask_for_a_stricter_claim_policy_never_a_laxer_one() -> None:
    rules = policy(claims="mark")
    assert rules.plan(request(None), signals=[]).claims == "mark"
    assert rules.plan(request("strike"), signals=[]).claims == "strike"
    with pytest.raises(ForbiddenError, match="would show more of an unsupported claim"):
        rules.plan(request("annotate"), signals=[])
    with pytest.raises(ForbiddenError):
        rules.plan(request("off"), signals=[])
    assert rules.plan(request("off"), signals=[], privileged=True).claims == "off"


def test_bad_claim_templates_are_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"claim_mark must show the claim with \{claim\}"):
        policy(claim_mark="[unverified]")
    with pytest.raises(ConfigError, match=r"claim_mark uses \['answer'\]"):
        policy(claim_mark="{claim} {answer}")
    with pytest.raises(ConfigError, match="claim_strike_note is not a valid template"):
        policy(claim_strike_note="removed {count")
