"""Registers the embedded model with litellm as the custom provider ``local``.

After ``register_local_provider()``, ``litellm.completion`` and ``litellm.acompletion`` with
``model="local/gemma-3-270m"`` work wherever litellm takes a model name (the LiteLLM proxy's config included),
streamed or not. litellm hands text completions to custom providers as a single user message, so through
litellm they are answered in the Q/A chat format; use ``LocalLLM`` directly for raw completion prompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from estimators.base import Generation, TokenLogprob, total_cost
from gate.backends.embedded.local import LOCAL_MODEL_NAME, LOCAL_PREFIX, LocalLLM
from gate.backends.litellm_client import import_litellm
from gate.backends.options import FORWARDED_FIELDS
from gate.server.replies import stream_pieces as pieces_of

PROVIDER = LOCAL_PREFIX.rstrip("/")
T = TypeVar("T")


def register_local_provider(local: LocalLLM | None = None) -> None:
    """Route ``local/...`` model names in litellm to the embedded model, priced at zero (idempotent)."""
    litellm = import_litellm()
    handler = local_handler(local or LocalLLM())
    others = [entry for entry in litellm.custom_provider_map if entry.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": handler}]


def local_handler(local: LocalLLM) -> Any:
    """litellm's ``CustomLLM`` handler for the ``local`` provider; the model goes in litellm's cost map at zero."""
    litellm = import_litellm()
    # Without a cost-map entry litellm cannot price the answers (no response_cost; completion_cost and
    # get_model_info raise ModelNotMappedError). register_model keeps the entry across litellm's cost-map
    # reloads; the cache cost is given so that it does not warn that it defaults to 0.
    free = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "cache_read_input_token_cost": 0.0}
    entry = {**free, "litellm_provider": PROVIDER, "mode": "chat", "max_input_tokens": local.n_ctx}
    litellm.register_model({LOCAL_PREFIX + LOCAL_MODEL_NAME: entry})
    return _handler_class(litellm)(local)


def _handler_class(litellm: Any) -> type:
    """The ``CustomLLM`` subclass; built lazily so importing this module does not import litellm."""
    from litellm.llms.custom_llm import CustomLLMError  # litellm does not export it at the top level

    class LocalProvider(litellm.CustomLLM):
        def __init__(self, local: LocalLLM) -> None:
            super().__init__()
            self.local = local

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            generations = await self._generate(model, messages, _params(args, kwargs))
            return to_model_response(litellm, generations, model=LOCAL_PREFIX + model)

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            return run_sync(self.acompletion(model, messages, *args, **kwargs))

        async def astreaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            for chunk in await self._stream_chunks(model, messages, _params(args, kwargs)):
                yield chunk

        def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[Any]:
            return iter(run_sync(self._stream_chunks(model, messages, _params(args, kwargs))))

        async def _stream_chunks(self, model: str, messages: list, params: dict[str, Any]) -> list[Any]:
            # The embedded model answers in a few hundred milliseconds, so it generates the whole answer
            # and then streams it token by token: what a client sees is the real stream format. The chunks
            # are litellm's own stream objects, which pass through with their log-probs (when asked for).
            [generation] = await self._generate(model, messages, {**params, "n": 1}, with_tokens=True)
            chunks = []
            for text, tokens in stream_pieces(generation):
                logprobs = _openai_logprobs(generation.model_copy(update={"tokens": tokens}))
                choice = {"index": 0, "delta": {"role": "assistant", "content": text}}
                if params.get("logprobs") and logprobs is not None:
                    choice["logprobs"] = logprobs
                chunks.append(litellm.ModelResponseStream(model=LOCAL_PREFIX + model, choices=[choice]))
            finish = {"index": 0, "delta": {}, "finish_reason": generation.finish_reason or "stop"}
            return [*chunks, litellm.ModelResponseStream(model=LOCAL_PREFIX + model, choices=[finish])]

        async def _generate(
            self, model: str, messages: list, params: dict[str, Any], *, with_tokens: bool = False
        ) -> list[Generation]:
            if model != LOCAL_MODEL_NAME:
                asked, known = LOCAL_PREFIX + model, LOCAL_PREFIX + LOCAL_MODEL_NAME
                raise CustomLLMError(status_code=404, message=f"unknown local model {asked!r}: use {known!r}")
            # litellm hands every OpenAI field over; one the model cannot honour (tools...) is refused, not dropped
            fields = {name: value for name, value in params.items() if name in FORWARDED_FIELDS and value is not None}
            if (refused := self.local.unsupported(messages, fields)) is not None:
                raise CustomLLMError(status_code=400, message=f"{refused[0]}: {refused[1]}")
            return await self.local.generate(
                messages,
                n=int(params.get("n") or 1),
                temperature=float(params.get("temperature") or 0.0),
                max_tokens=int(params.get("max_tokens") or 64),
                logprobs=_logprobs(params, with_tokens=with_tokens),
                stop=_as_list(params.get("stop")),
                seed=params.get("seed"),
            )

    return LocalProvider


def run_sync(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end from sync code, also from a thread whose event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # Sync litellm.completion called from async code: asyncio.run refuses a running loop, so the work gets a
    # fresh loop in a helper thread. The caller's loop is blocked meanwhile, as by any sync call.
    with ThreadPoolExecutor(1, thread_name_prefix="local-sync") as helper:
        return helper.submit(asyncio.run, work).result()


def stream_pieces(generation: Generation) -> list[tuple[str, tuple[TokenLogprob, ...] | None]]:
    """The answer as a stream delivers it: one piece per token where tokens are known, else the whole text.

    Each piece comes with its tokens (a token whose text is empty rides with its neighbour), so the pieces'
    texts join to the answer and their tokens to the answer's tokens.
    """
    if generation.tokens:
        return pieces_of(generation.text, generation.tokens)
    return [(generation.text, None)] if generation.text else []


def _params(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request's OpenAI parameters, as litellm hands them to a custom provider (keyword or 8th positional)."""
    return dict(kwargs.get("optional_params") or (args[7] if len(args) > 7 else {}))


def _logprobs(params: dict[str, Any], *, with_tokens: bool) -> int | None:
    if params.get("logprobs"):
        return int(params.get("top_logprobs") or 0)
    return 0 if with_tokens else None  # token boundaries come with log-probs; 0 alternatives costs nothing


def _as_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def to_model_response(litellm: Any, generations: list[Generation], *, model: str) -> Any:
    """Our generations as a litellm ``ModelResponse`` in the OpenAI chat shape, log-probs included."""
    cost = total_cost(generations)
    choices = [
        {
            "index": index,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": generation.finish_reason or "stop",
            "logprobs": _openai_logprobs(generation),
        }
        for index, generation in enumerate(generations)
    ]
    usage = {
        "prompt_tokens": cost.prompt_tokens,
        "completion_tokens": cost.completion_tokens,
        "total_tokens": cost.prompt_tokens + cost.completion_tokens,
    }
    return litellm.ModelResponse(model=model, choices=choices, usage=usage)


def _openai_logprobs(generation: Generation) -> dict[str, Any] | None:
    if generation.tokens is None:
        return None
    return {
        "content": [
            {
                "token": token.token,
                "logprob": token.logprob,
                "bytes": None,
                "top_logprobs": [{"token": alt, "logprob": value, "bytes": None} for alt, value in token.top],
            }
            for token in generation.tokens
        ]
    }
