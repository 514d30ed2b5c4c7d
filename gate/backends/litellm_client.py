"""The ``LLM`` protocol over litellm: any provider, chat or text, n samples, log-probs, retries, usage.

An answer larger than ``max_response_bytes`` (the ``max_upstream_bytes`` setting) fails with
``UpstreamTooLargeError``. litellm's transports read a whole body before they return it, so here the limit
bounds what the gate parses further and relays, measured as the answer litellm parsed, re-serialised as
JSON; the direct transport (``gate.backends.openai_compat``) stops reading at the limit itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from estimators.base import Cost, Generation, Prompt, TokenLogprob, ToolCall
from gate.backends.options import call_fields
from gate.errors import MalformedResponseError, UnknownModelError, UpstreamError, UpstreamTooLargeError
from gate.secrets import mask_secrets, upstream_secrets

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 10_000_000
LOGPROB_ROUNDING = 1e-6  # endpoints print log-probs rounded: up to this much above 0 reads as 0


@functools.cache
def import_litellm() -> Any:
    """Import litellm without network access: local cost map, no telemetry, no banner."""
    # litellm fetches its model cost map from the internet at import unless told to use its local copy.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMClient:
    """Generates through ``litellm.acompletion`` / ``atext_completion`` for any provider litellm knows."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        native_n: str = "auto",
        backoff_s: float = 0.5,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.model_name = model
        self.api_base = api_base
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.native_n = native_n
        self.backoff_s = backoff_s
        self.max_response_bytes = max_response_bytes
        self._secrets = upstream_secrets(api_key, api_base)  # masked in every error message the client makes

    def __repr__(self) -> str:
        return f"LiteLLMClient(model={self.model_name!r}, api_base={self.api_base!r})"  # never the key

    async def generate(
        self,
        prompt: Prompt,
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        logprobs: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        """Return ``n`` generations, from one call when the provider takes ``n``, else concurrent calls.

        ``options`` (a client's own fields: tools, response_format, top_p...) go to the endpoint as they are.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        fields, logprobs = call_fields(options, logprobs=logprobs, max_tokens=max_tokens)
        options = {"temperature": temperature, "stop": list(stop) if stop else None, "seed": seed, **fields}
        if n == 1 or self._supports_native_n():
            return await self._call(prompt, n, logprobs, options)
        seed = options["seed"]
        seeds = [None if seed is None else seed + i for i in range(n)]
        batches = await asyncio.gather(
            *(self._call(prompt, 1, logprobs, {**options, "seed": s} if s is not None else options) for s in seeds)
        )
        return [g for batch in batches for g in batch]

    def _supports_native_n(self) -> bool:
        if self.native_n != "auto":
            return self.native_n == "always"
        return provider_supports_n(self.model_name)

    async def _call(self, prompt: Prompt, n: int, logprobs: int | None, options: dict[str, Any]) -> list[Generation]:
        started = time.perf_counter()
        response = await self._with_retries(prompt, n, logprobs, options)
        generations = parse_response(response, chat=not isinstance(prompt, str))
        if len(generations) != n:
            raise MalformedResponseError(f"{len(generations)} choices for n={n}")
        usage = _get(response, "usage")
        if isinstance(usage, str | int | float | bool | list):
            raise MalformedResponseError(f"usage is {type(usage).__name__}, not an object")
        total = Cost(
            calls=1,
            prompt_tokens=_token_count(_get(usage, "prompt_tokens")),
            completion_tokens=_token_count(_get(usage, "completion_tokens")),
            seconds=time.perf_counter() - started,
        )
        return book_usage(generations, total)

    async def _with_retries(self, prompt: Prompt, n: int, logprobs: int | None, options: dict[str, Any]) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                return await self._request(prompt, n, logprobs, options)
            except Exception as exc:  # litellm's exception classes; classified in one place
                error = classify_error(exc, self.model_name, secrets=self._secrets)
                if not error.retryable or attempt == self.max_retries:
                    raise error from exc
                delay = self.backoff_s * 2**attempt * (1 + random.random() / 2)
                logger.info("upstream %s failed (%s); retry %d in %.2fs", self.model_name, error, attempt + 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _request(self, prompt: Prompt, n: int, logprobs: int | None, options: dict[str, Any]) -> Any:
        litellm = import_litellm()
        check_model_name(self.model_name)
        common = {
            "model": self.model_name,
            "n": n,
            "timeout": self.timeout_s,
            "num_retries": 0,  # retries are ours, counted and logged above
            "api_base": self.api_base,
            "api_key": self._api_key,
            **{k: v for k, v in options.items() if v is not None},
        }
        if "metadata" in common:  # litellm keeps its own "metadata" (logging tags): the client's goes in the body
            common["extra_body"] = {"metadata": common.pop("metadata")}
        if isinstance(prompt, str):
            if logprobs is not None:
                common["logprobs"] = logprobs
            response = await litellm.atext_completion(prompt=prompt, **common)
        else:
            if logprobs is not None:
                common.update(logprobs=True, top_logprobs=logprobs)
            response = await litellm.acompletion(messages=list(prompt), **common)
        if response_size(response) > self.max_response_bytes:
            raise UpstreamTooLargeError(self.max_response_bytes)
        return response


@functools.cache
def provider_supports_n(model: str) -> bool:
    """Whether litellm lists ``n`` among the model's parameters (asked once per model)."""
    litellm = import_litellm()
    try:
        return "n" in (litellm.get_supported_openai_params(model=model) or [])
    except Exception as exc:  # litellm raises plain exceptions for models it cannot map
        logger.debug("cannot tell whether %s supports n (%s); making separate calls", model, exc)
        return False


@functools.cache
def check_model_name(model: str) -> str:
    """Return the provider litellm routes ``model`` to, or raise ``UnknownModelError``."""
    litellm = import_litellm()
    try:
        _, provider, _, _ = litellm.get_llm_provider(model=model)
    except Exception as exc:  # litellm raises BadRequestError for names it cannot route
        raise UnknownModelError(
            f"unknown model {model!r}: litellm cannot route it; use '<provider>/<model>' "
            f"(e.g. 'openai/gpt-4o-mini', or 'openai/<name>' with api_base for an OpenAI-compatible server)"
        ) from exc
    return str(provider)


def response_size(response: Any) -> int:
    """The size in bytes of ``response`` as JSON: about the size of the body litellm parsed it from."""
    dump = getattr(response, "model_dump_json", None)  # litellm's responses are pydantic models
    if callable(dump):
        try:
            return len(dump(warnings=False).encode())
        except ValueError:  # pydantic cannot write a lone surrogate (legal in JSON's escapes) as UTF-8
            response = response.model_dump(warnings=False)
    return len(json.dumps(response, default=str).encode())


def book_usage(generations: list[Generation], total: Cost) -> list[Generation]:
    """Book the whole call's cost on the first generation, so summing over the list gives the total."""
    return [g.model_copy(update={"usage": total if i == 0 else Cost()}) for i, g in enumerate(generations)]


def parse_response(response: Any, *, chat: bool) -> list[Generation]:
    """Normalise a chat or text completion response (and its log-probs) into ``Generation`` objects.

    A response that is not the OpenAI shape (choices that are not a list of choices, content or tokens that
    are not text, log-probs that are not numbers) raises ``MalformedResponseError``: a 502 at the proxy, a
    lost signal inside an assessment, never a crash or an empty answer passed off as the model's.
    """
    choices = _get(response, "choices")
    if not isinstance(choices, list | tuple):
        raise MalformedResponseError(f"choices is {type(choices).__name__}, not a list")
    if not choices:
        raise UpstreamError("the upstream response has no choices", status=502)
    try:
        return [_generation(choice, chat=chat) for choice in choices]
    except (TypeError, ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise MalformedResponseError(str(exc).splitlines()[0][:200]) from None


def _generation(choice: Any, *, chat: bool) -> Generation:
    if isinstance(choice, str | int | float | bool | list) or choice is None:
        raise TypeError(f"a choice is {type(choice).__name__}, not an object")
    if chat:
        message = _get(choice, "message")
        if message is None:
            raise TypeError("a choice has no message")
        text, tokens = _get(message, "content"), _chat_logprobs(_get(choice, "logprobs"))
        tool_calls = _tool_calls(_get(message, "tool_calls"))
    else:
        text, tokens = _get(choice, "text"), _text_logprobs(_get(choice, "logprobs"))
        tool_calls = ()
    finish = _get(choice, "finish_reason")
    if not isinstance(text, str | None) or not isinstance(finish, str | None):
        raise TypeError(f"content {type(text).__name__} / finish_reason {type(finish).__name__} are not text")
    return Generation(text=text or "", tokens=tokens, finish_reason=finish, tool_calls=tool_calls)


def _tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    """The function calls of an assistant message (OpenAI's ``tool_calls``), checked to be text."""
    if not calls:
        return ()
    if not isinstance(calls, list | tuple):
        raise TypeError(f"tool_calls is {type(calls).__name__}, not a list")
    parsed = []
    for call in calls:
        function = _get(call, "function")
        call_id, name, arguments = _get(call, "id"), _get(function, "name"), _get(function, "arguments")
        if isinstance(arguments, dict):  # some servers send the arguments as an object, not as JSON text
            arguments = json.dumps(arguments)
        if not isinstance(name, str) or not name or not isinstance(arguments, str | None):
            raise TypeError(f"a tool call has name {name!r} and arguments of type {type(arguments).__name__}")
        if not isinstance(call_id, str) or not call_id:
            # A client must quote the id in its tool message: a server that sends none gets one made up here.
            call_id = f"call_{uuid.uuid4().hex[:24]}"
        parsed.append(ToolCall(id=call_id, name=name, arguments=arguments or ""))
    return tuple(parsed)


def _token_count(value: Any) -> int:
    """A usage count: missing is 0; anything but a whole number within reason is a malformed response."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9 or value != int(value):
        raise MalformedResponseError(f"usage count {value!r} is not a token count")
    return int(value)


def _number(value: Any) -> float:
    """A log-prob: a finite real number at most 0 (not a bool, not text, not null, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a log-prob is {value!r}, not a number")
    # Python's JSON reader accepts NaN and Infinity; a probability above 1 is no probability either
    # (endpoints round: a hair above 0 is a certain token). Estimators then never see such a value.
    if not math.isfinite(value) or value > LOGPROB_ROUNDING:
        raise ValueError(f"a log-prob is {value!r}, not a finite number at most 0")
    return min(float(value), 0.0)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a token is {value!r}, not text")
    return value


def _chat_logprobs(logprobs: Any) -> tuple[TokenLogprob, ...] | None:
    content = _get(logprobs, "content")
    if not content:
        return None
    return tuple(
        TokenLogprob(
            token=_text(_get(item, "token")),
            logprob=_number(_get(item, "logprob")),
            top=tuple(
                (_text(_get(alt, "token")), _number(_get(alt, "logprob"))) for alt in _get(item, "top_logprobs") or ()
            ),
        )
        for item in content
    )


def _text_logprobs(logprobs: Any) -> tuple[TokenLogprob, ...] | None:
    tokens, values = _get(logprobs, "tokens"), _get(logprobs, "token_logprobs")
    if not tokens or values is None:
        return None
    tops = _get(logprobs, "top_logprobs") or [None] * len(tokens)
    return tuple(
        TokenLogprob(
            token=token,
            logprob=_number(value),
            top=tuple(sorted(((t, _number(v)) for t, v in (top or {}).items()), key=lambda tv: -tv[1])),
        )
        for token, value, top in zip(tokens, values, tops, strict=False)
        if value is not None
    )


def _get(obj: Any, key: str) -> Any:
    """Read a field from a litellm object or a plain dict alike."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def classify_error(exc: Exception, model: str, *, secrets: Iterable[str | None] = ()) -> UpstreamError:
    """Map a provider exception to an ``UpstreamError`` with an HTTP status and whether to retry.

    The provider's message is masked here (``secrets`` and anything key-shaped), so no log line or response
    built from the error can carry a key the provider echoed.
    """
    if isinstance(exc, UpstreamError):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    lines = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = (lines[0] if lines else name).split("Traceback (most recent call last)")[0].rstrip(" :")
    message = mask_secrets(first[:300] or name, secrets)  # httpx's timeouts carry no message; litellm's a traceback
    if name == "NotFoundError":
        return UnknownModelError(f"{model} is not served by the upstream: {message}")
    causes = list(_chain(exc))
    timed_out = any(isinstance(c, TimeoutError | httpx.TimeoutException) for c in causes)
    if name in {"Timeout", "APITimeoutError"} or timed_out:
        return UpstreamError(f"{model} timed out: {message}", status=504, retryable=True)
    # litellm reports a refused connection as a 500 "InternalServerError"; the cause chain says what it was.
    if name == "APIConnectionError" or any(isinstance(c, ConnectionError | httpx.TransportError) for c in causes):
        return UpstreamError(f"cannot reach {model}: {message}", status=502, retryable=True)
    if isinstance(status, int):
        gateway_status = status if status in {400, 401, 403, 404, 429} else 502
        retryable = status in RETRY_STATUSES
        return UpstreamError(f"{model} answered {status}: {message}", status=gateway_status, retryable=retryable)
    return UpstreamError(f"{model} failed ({name}): {message}", status=502, retryable=False)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
