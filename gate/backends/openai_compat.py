"""A direct client for OpenAI-compatible endpoints: one pooled HTTP connection, no litellm in the path.

litellm costs about 11 ms of CPU per call on this project's 2-core machine (its logging, cost and
model-info bookkeeping; see ``benchmarks/results/overhead.md``), more than the whole gate's own work.
For an endpoint that already speaks OpenAI's wire format (``openai/<name>`` with ``api_base``: vLLM,
llama.cpp's server, Ollama, another proxy) that work buys nothing, so the gate posts the request itself
over a pooled ``aiohttp`` session (httpx's connection pool cost about 3 ms per request under load in the
same profile; aiohttp is already installed as litellm's own transport). Retries, error classification
and response parsing are ``LiteLLMClient``'s, so both clients behave the same; only the transport differs.
A response body is read up to ``max_response_bytes`` (the ``max_upstream_bytes`` setting) and no further:
beyond it the connection is dropped and the call fails with ``UpstreamTooLargeError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import aiohttp

from estimators.base import Cost, Generation, Prompt
from gate.backends.litellm_client import LiteLLMClient, classify_error, parse_response
from gate.backends.options import call_fields
from gate.errors import UpstreamError, UpstreamTooLargeError

OPENAI_PREFIX = "openai/"


class UpstreamStatusError(Exception):
    """A non-2xx answer, shaped like the provider errors ``classify_error`` reads (``status_code``, ``message``)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class OpenAICompatibleClient(LiteLLMClient):
    """``LiteLLMClient``'s behaviour over a direct HTTP transport to an OpenAI-compatible ``api_base``."""

    def __init__(self, model: str, *, api_base: str, **kwargs: Any) -> None:
        super().__init__(model, api_base=api_base, **kwargs)
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Read once: aiohttp's trust_env re-reads the environment and ~/.netrc in a worker thread on every
        # request, which cost more than the gate's own work per request under load (py-spy, overhead.md).
        self._proxy = env_proxy(self.api_base or "")

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient(model={self.model_name!r}, api_base={self.api_base!r})"  # never the key

    def _supports_native_n(self) -> bool:
        return self.native_n != "never"  # the OpenAI wire format has n; "never" is for servers that ignore it

    async def _request(self, prompt: Prompt, n: int, logprobs: int | None, options: dict[str, Any]) -> Any:
        body: dict[str, Any] = {
            "model": self.model_name.removeprefix(OPENAI_PREFIX),
            "n": n,
            **{k: v for k, v in options.items() if v is not None},
        }
        if isinstance(prompt, str):
            route, body["prompt"] = "completions", prompt
            if logprobs is not None:
                body["logprobs"] = logprobs
        else:
            route, body["messages"] = "chat/completions", list(prompt)
            if logprobs is not None:
                body.update(logprobs=True, top_logprobs=logprobs)
        try:
            async with self._session().post(route, json=body, proxy=self._proxy) as response:
                status, raw = response.status, await self._read(response)
        except aiohttp.ClientError as exc:  # refused, reset, closed mid-answer; timeouts are TimeoutError
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise UpstreamError(f"cannot reach {self.model_name}: {reason}", status=502, retryable=True) from exc
        if status >= 300:
            raise UpstreamStatusError(status, _error_message(raw))
        return _json(raw, self.model_name)

    async def stream_text(
        self,
        prompt: Prompt,
        *,
        temperature: float,
        max_tokens: int,
        options: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> AsyncIterator[str | Generation]:
        """The answer's text as the endpoint streams it (``stream: true``), piece by piece; last, the whole answer
        with its usage when the endpoint sends one (``stream_options`` is not asked for: not every
        OpenAI-compatible server takes it). ``logprobs`` is not asked for either: the streamed answer has none.

        For the gate's claim-by-claim replies (``gate.claim_stream``). No retry once the request is sent: text
        may already have gone on to the client. Errors are classified as :meth:`generate` classifies them.
        """
        fields, _ = call_fields(options, logprobs=None, max_tokens=max_tokens)
        body: dict[str, Any] = {
            "model": self.model_name.removeprefix(OPENAI_PREFIX),
            "messages": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt),
            "stream": True,
            "temperature": temperature,
            **{k: v for k, v in fields.items() if v is not None},
        }
        try:
            async with self._session().post("chat/completions", json=body, proxy=self._proxy) as response:
                if response.status >= 300:
                    raise UpstreamStatusError(response.status, _error_message(await self._read(response)))
                if not response.content_type.startswith("text/event-stream"):
                    # a server that ignores stream: its one completion, checked as generate checks it
                    [generation] = parse_response(_json(await self._read(response), self.model_name), chat=True)
                    yield generation.text
                    yield generation
                    return
                read, done, texts, usage = 0, False, [], Cost(calls=1)
                async for line in response.content:  # one SSE line at a time
                    read += len(line)
                    if read > self.max_response_bytes:
                        response.close()
                        raise UpstreamTooLargeError(self.max_response_bytes)
                    data = line.decode("utf-8", errors="replace").strip()
                    if not data.startswith("data:"):
                        continue  # blank lines between events, comments, event names
                    data = data.removeprefix("data:").strip()
                    if data == "[DONE]":
                        done = True
                        break
                    pieces, reported = _delta(data)
                    for piece in pieces:
                        yield piece
                    texts += pieces
                    usage = reported or usage
                if not done:  # the connection closed mid-answer: what came is not the whole answer
                    raise UpstreamError(f"{self.model_name} stopped streaming before the end of its answer", status=502)
                yield Generation(text="".join(texts), usage=usage)
        except (aiohttp.ClientError, UpstreamStatusError, TimeoutError) as exc:
            raise classify_error(exc, self.model_name, secrets=self._secrets) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, or ``UpstreamTooLargeError`` as soon as it is known to be over the limit (declared or read).

        The limit counts decoded bytes: a compressed body is counted as it is decompressed (no zip bomb).
        """
        limit = self.max_response_bytes
        declared, encoded = response.content_length, response.headers.get("content-encoding", "identity")
        if declared is not None and declared > limit:
            response.close()  # the connection is dropped, not drained
            raise UpstreamTooLargeError(limit)
        if declared is not None and encoded == "identity":
            return await response.read()  # the parser reads no more than the declared length
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):  # decoded chunks
            body += chunk
            if len(body) > limit:
                response.close()
                raise UpstreamTooLargeError(limit)
        return bytes(body)

    def _session(self) -> aiohttp.ClientSession:
        """One pooled session per event loop (a session's connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            base = self.api_base.rstrip("/") + "/" if self.api_base else ""
            self._http = aiohttp.ClientSession(
                base_url=base,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=256),
            )
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY`` choose for ``url``, as httpx and litellm do.

    ``None`` means connect directly. Variables are read in either case, as ``urllib`` reads them.
    """
    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass_environment(parts.netloc):
        return None
    proxies = getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _json(raw: bytes, model: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise UpstreamError(f"{model} answered with a body that is not JSON", status=502) from None


def _delta(data: str) -> tuple[list[str], Cost | None]:
    """The text pieces of one streamed chunk (its choices' ``delta.content``), and the usage it carries."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise UpstreamError("the upstream streamed a chunk that is not JSON", status=502) from None
    if not isinstance(chunk, dict):
        raise UpstreamError("the upstream streamed a chunk that is not an object", status=502)
    if isinstance(chunk.get("error"), dict):
        raise UpstreamError(f"the upstream failed while streaming: {chunk['error'].get('message')}", status=502)
    choices = chunk.get("choices") or []
    deltas = [c.get("delta") for c in choices if isinstance(c, dict)]
    texts = [d["content"] for d in deltas if isinstance(d, dict) and isinstance(d.get("content"), str) and d["content"]]
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return texts, None
    tokens = {key: usage.get(key) for key in ("prompt_tokens", "completion_tokens")}
    if not all(isinstance(value, int) and value >= 0 for value in tokens.values()):
        return texts, None
    return texts, Cost(calls=1, **tokens)


def _error_message(raw: bytes) -> str:
    """The upstream's own error message when it sent OpenAI's error shape, else the start of its body."""
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message:
        message = raw[:200].decode("utf-8", "replace") or "(empty body)"
    return message.splitlines()[0] if message.strip() else "(empty body)"
