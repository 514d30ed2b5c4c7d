"""The assessment cache at the proxy: an identical greedy request is served from it, at no LLM call."""

from __future__ import annotations

from estimators.testing import ScriptedLLM
from tests.test_server import ANSWER_Q, RULES, ask, content, make_gate, serving


async def test_a_repeated_greedy_request_costs_no_call_and_gets_the_same_decision() -> None:
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm), assessment_cache_ttl_s=60) as client:
        first = await ask(client, ANSWER_Q, temperature=0)
        calls = len(llm.calls)
        again = await ask(client, ANSWER_Q, temperature=0)
        assert len(llm.calls) == calls  # nothing generated or scored again
        other = await ask(client, ANSWER_Q, temperature=0, max_tokens=20)  # another request: assessed anew
        assert len(llm.calls) > calls
    assert content(again) == content(first) == "William Shakespeare"
    assert again.json()["gate"]["decision"] == first.json()["gate"]["decision"] == "answer"
    assert again.json()["gate"]["cost"]["calls"] == 0 and first.json()["gate"]["cost"]["calls"] >= 1
    assert other.status_code == 200


async def test_sampled_requests_and_the_default_configuration_are_never_cached() -> None:
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm), assessment_cache_ttl_s=60) as client:
        await ask(client, ANSWER_Q, temperature=1)
        calls = len(llm.calls)
        await ask(client, ANSWER_Q, temperature=1)
        assert len(llm.calls) == 2 * calls  # a sampled request expects a fresh draw
    llm = ScriptedLLM(rules=RULES)
    async with serving(make_gate(llm)) as client:  # off by default
        await ask(client, ANSWER_Q, temperature=0)
        calls = len(llm.calls)
        await ask(client, ANSWER_Q, temperature=0)
        assert len(llm.calls) == 2 * calls


async def test_two_replicas_share_the_cache_on_redis(redis_url) -> None:
    first_llm, second_llm = ScriptedLLM(rules=RULES), ScriptedLLM(rules=RULES)
    shared = {"assessment_cache_ttl_s": 60, "state": redis_url, "state_timeout_s": 5}
    async with serving(make_gate(first_llm), **shared) as client:
        await ask(client, ANSWER_Q, temperature=0)
    async with serving(make_gate(second_llm), **shared) as client:
        response = await ask(client, ANSWER_Q, temperature=0)
    assert first_llm.calls and not second_llm.calls  # the second replica answered from Redis
    assert content(response) == "William Shakespeare"
