"""The embedded model as litellm's ``local`` provider: stream chunks, sync calls, errors and pricing."""

import asyncio
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimators.base import Generation, TokenLogprob
from gate.backends.embedded.local import LocalLLM
from gate.backends.litellm_client import import_litellm
from gate.integrations.litellm_local import register_local_provider, stream_pieces

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def generation(*tokens: str) -> Generation:
    text = "".join(tokens).strip()
    return Generation(text=text, tokens=tuple(TokenLogprob(token=t, logprob=-0.5) for t in tokens))


def test_one_piece_per_token_with_the_answers_outer_spaces_stripped():
    pieces = stream_pieces(generation(" William", " Shakespeare", " "))
    assert [text for text, _ in pieces] == ["William", " Shakespeare"]
    assert [len(tokens) for _, tokens in pieces] == [1, 2]  # the trailing space rides with its neighbour


def test_without_tokens_the_whole_text_is_one_piece_and_nothing_is_no_piece():
    assert stream_pieces(Generation(text="Paris")) == [("Paris", None)]
    assert stream_pieces(Generation(text="")) == []


@given(st.lists(st.text(alphabet=" ab\n", max_size=3), min_size=1, max_size=8))
def test_pieces_join_to_the_answer_and_keep_every_token(tokens):
    made = generation(*tokens)
    pieces = stream_pieces(made)
    assert "".join(text for text, _ in pieces) == made.text
    if made.text:
        assert tuple(token for _, group in pieces for token in group) == made.tokens


def test_registration_prices_the_model_at_zero_without_touching_the_network(monkeypatch):
    here, lookups = threading.get_ident(), []
    real = socket.getaddrinfo

    def spy(host, *args, **kwargs):
        if threading.get_ident() == here:  # litellm may have a cost-map retry thread of its own running
            lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    register_local_provider(LocalLLM())
    litellm = import_litellm()
    info = litellm.get_model_info("local/gemma-3-270m")
    assert (info["input_cost_per_token"], info["output_cost_per_token"]) == (0.0, 0.0)
    assert len(litellm.get_model_cost_map(url="https://cost-map.invalid/map.json")) > 100  # the packaged copy
    assert lookups == []


async def test_an_unknown_local_model_is_a_not_found_error_sync_and_async():
    register_local_provider(LocalLLM())  # the model is never loaded: the name is refused first
    litellm = import_litellm()
    with pytest.raises(litellm.NotFoundError, match="unknown local model 'local/nope': use 'local/gemma-3-270m'"):
        await asyncio.to_thread(litellm.completion, model="local/nope", messages=QUESTION)
    with pytest.raises(litellm.NotFoundError, match="unknown local model 'local/nope'"):
        await litellm.acompletion(model="local/nope", messages=QUESTION)


@pytest.mark.integration
async def test_sync_calls_answer_as_the_async_ones(local_llm: LocalLLM):
    register_local_provider(local_llm)
    litellm = import_litellm()
    asked = {"model": "local/gemma-3-270m", "messages": QUESTION, "max_tokens": 8, "logprobs": True, "top_logprobs": 2}
    expected = await litellm.acompletion(**asked)
    from_thread = await asyncio.to_thread(litellm.completion, **asked)  # plain sync code: no loop in the thread
    in_loop = litellm.completion(**asked)  # sync call from a thread whose event loop is running
    for response in (from_thread, in_loop):
        assert response.choices[0].message.content == expected.choices[0].message.content
        assert response.choices[0].logprobs == expected.choices[0].logprobs
    streamed = [chunk async for chunk in await litellm.acompletion(**asked, stream=True)]
    streamed_sync = await asyncio.to_thread(lambda: list(litellm.completion(**asked, stream=True)))
    assert [c.choices[0].delta.content for c in streamed_sync] == [c.choices[0].delta.content for c in streamed]
    assert [c.choices[0].logprobs for c in streamed_sync] == [c.choices[0].logprobs for c in streamed]


async def test_what_the_embedded_model_cannot_do_is_refused_through_litellm_not_dropped():
    register_local_provider(LocalLLM())  # refused before the model would load
    litellm = import_litellm()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    with pytest.raises(litellm.BadRequestError, match=r"tools: the embedded model .* cannot call tools"):
        await litellm.acompletion(model="local/gemma-3-270m", messages=QUESTION, tools=tools)
