"""The embedded model for real: log-probs, samples, seeds, concurrency, and litellm routing."""

import asyncio
import math

import pytest

from estimators.base import LLM, SupportsContinuationLogprobs, total_cost
from gate.backends.embedded.local import LocalLLM
from gate.backends.embedded.prompt_format import render_chat

pytestmark = pytest.mark.integration

HAMLET = [{"role": "user", "content": "Who wrote Hamlet?"}]


async def test_protocols_and_greedy_answer_is_reproducible(local_llm: LocalLLM):
    assert isinstance(local_llm, LLM) and isinstance(local_llm, SupportsContinuationLogprobs)
    first = await local_llm.generate(HAMLET, max_tokens=12)
    second = await local_llm.generate(HAMLET, max_tokens=12)
    assert first[0].text == second[0].text != ""
    assert "\n" not in first[0].text and first[0].finish_reason == "stop"


async def test_logprobs_shape_and_top_alternatives(local_llm: LocalLLM):
    [gen] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=5)
    assert gen.tokens and len(gen.tokens) == gen.usage.completion_tokens
    assert "".join(t.token for t in gen.tokens).strip() == gen.text
    for token in gen.tokens:
        assert token.logprob <= 0 and len(token.top) == 5
        values = [value for _, value in token.top]
        assert values == sorted(values, reverse=True)
        assert token.top[0][1] == pytest.approx(token.logprob, abs=1e-6)  # greedy takes the most likely token


async def test_logprobs_do_not_depend_on_the_previous_request(local_llm: LocalLLM):
    [first] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    await local_llm.generate([{"role": "user", "content": "Who wrote Macbeth?"}], max_tokens=4)
    [again] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    assert again.logprobs == first.logprobs


async def test_generation_logprobs_match_forced_continuation(local_llm: LocalLLM):
    [gen] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    forced = await local_llm.continuation_logprobs(render_chat(HAMLET), " " + gen.text)
    assert forced == pytest.approx(gen.logprobs, abs=1e-6)


async def test_forced_continuation_prefers_the_right_city(local_llm: LocalLLM):
    prompt = "The capital city of France is"
    paris = await local_llm.continuation_logprobs(prompt, " Paris")
    ulaanbaatar = await local_llm.continuation_logprobs(prompt, " Ulaanbaatar")
    assert sum(paris) > sum(ulaanbaatar) and all(v <= 0 for v in paris + ulaanbaatar)


async def test_seeded_samples_are_reproducible_and_cost_one_call(local_llm: LocalLLM):
    question = [{"role": "user", "content": "Name a famous painter."}]
    a = await local_llm.generate(question, n=4, temperature=1.0, seed=7, max_tokens=10)
    b = await local_llm.generate(question, n=4, temperature=1.0, seed=7, max_tokens=10)
    assert [g.text for g in a] == [g.text for g in b]
    cost = total_cost(a)
    assert cost.calls == 1 and cost.prompt_tokens > 0 and a[1].usage.prompt_tokens == 0


async def test_concurrent_callers_get_their_own_answers(local_llm: LocalLLM):
    questions = ["Who wrote Hamlet?", "What is the capital of Italy?", "Who painted the Mona Lisa?"]
    sequential = [(await local_llm.generate([{"role": "user", "content": q}]))[0].text for q in questions]
    together = await asyncio.gather(*(local_llm.generate([{"role": "user", "content": q}]) for q in questions))
    assert [g[0].text for g in together] == sequential


async def test_raw_prompt_is_completed_as_is(local_llm: LocalLLM):
    [gen] = await local_llm.generate("1, 2, 3, 4,", max_tokens=4, stop=["\n"])
    assert gen.text.strip().startswith("5")


async def test_prompt_longer_than_context_is_a_clear_error():
    small = LocalLLM(n_ctx=256)
    with pytest.raises(ValueError, match="context holds 256"):
        await small.generate("word " * 400)


async def test_bad_arguments_are_rejected(local_llm: LocalLLM):
    with pytest.raises(ValueError, match="temperature"):
        await local_llm.generate(HAMLET, temperature=5.0)
    with pytest.raises(ValueError, match="n must be"):
        await local_llm.generate(HAMLET, n=0)


async def test_litellm_routes_local_model_name(local_llm: LocalLLM):
    from gate.backends.litellm_client import LiteLLMClient, import_litellm
    from gate.integrations.litellm_local import register_local_provider

    register_local_provider(local_llm)
    litellm = import_litellm()
    direct = await local_llm.generate(HAMLET, max_tokens=12, logprobs=2)
    response = await litellm.acompletion(
        model="local/gemma-3-270m", messages=HAMLET, max_tokens=12, logprobs=True, top_logprobs=2
    )
    assert response.choices[0].message.content == direct[0].text
    assert response.choices[0].logprobs.content[0].logprob == direct[0].logprobs[0]
    via_client = await LiteLLMClient("local/gemma-3-270m").generate(HAMLET, max_tokens=12, logprobs=2)
    assert via_client[0].text == direct[0].text
    assert via_client[0].logprobs == direct[0].logprobs
    assert math.isfinite(via_client[0].usage.seconds)


async def test_litellm_streams_the_local_model_token_by_token_with_logprobs(local_llm: LocalLLM):
    from gate.backends.litellm_client import import_litellm
    from gate.integrations.litellm_local import register_local_provider

    register_local_provider(local_llm)
    litellm = import_litellm()
    [direct] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=2)
    stream = await litellm.acompletion(
        model="local/gemma-3-270m", messages=HAMLET, max_tokens=12, stream=True, logprobs=True, top_logprobs=2
    )
    chunks = [chunk async for chunk in stream]
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == direct.text and len([p for p in pieces if p]) > 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = [
        entry.logprob
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert streamed == pytest.approx(direct.logprobs)
