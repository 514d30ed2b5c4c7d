"""Which upstream client a configuration gets, and closing it: the one place that knows every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

from estimators.base import LLM
from gate.backends.embedded.local import LOCAL_PREFIX, LocalLLM
from gate.backends.litellm_client import LiteLLMClient, check_model_name
from gate.backends.openai_compat import OpenAICompatibleClient
from gate.config import Settings
from gate.errors import ConfigError

T = TypeVar("T")


def create_llm(settings: Settings) -> LLM:
    """The configured upstream: the embedded model for ``local/...``; an OpenAI-compatible ``api_base``
    directly (``transport``: auto or direct); anything else through litellm."""
    if settings.model.startswith(LOCAL_PREFIX):
        return LocalLLM(
            cache_dir=settings.cache_dir,
            n_ctx=settings.local_n_ctx,
            n_threads=settings.local_n_threads,
            extra_buffers=settings.local_extra_buffers,
        )
    common = {
        "api_key": settings.api_key.get_secret_value() if settings.api_key else None,
        "timeout_s": settings.timeout_s,
        "max_retries": settings.max_retries,
        "native_n": settings.native_n,
        "max_response_bytes": settings.max_upstream_bytes,
    }
    if uses_direct_transport(settings):
        assert settings.api_base is not None  # uses_direct_transport checked it
        _check_one_authorization(settings)
        return OpenAICompatibleClient(settings.model, api_base=settings.api_base, **common)
    # a name litellm cannot route fails when the gate is built, not per call
    if check_model_name(settings.model) == "openai":
        _check_one_authorization(settings)
    return LiteLLMClient(settings.model, api_base=settings.api_base, **common)


def _check_one_authorization(settings: Settings) -> None:
    """Refuse ``api_key`` with ``user:password@`` in ``api_base`` for an upstream that takes the key as Bearer.

    Both would be the one Authorization header (aiohttp, under both transports, refuses every request), so
    the gate would start and then answer 502 to everything. Without a key the direct transport sends the
    user info as HTTP Basic authentication.
    """
    if settings.api_key is not None and settings.api_base and urlsplit(settings.api_base).username is not None:
        raise ConfigError(
            "api_base holds user:password and api_key is set: an OpenAI-compatible upstream gets one "
            "Authorization header, the key as a Bearer token or the user info as Basic authentication; "
            "remove one of them"
        )


def uses_direct_transport(settings: Settings) -> bool:
    """Whether requests skip litellm: ``transport: direct``, or ``auto`` for ``openai/<name>`` with an api_base."""
    if settings.transport == "direct":
        if not settings.api_base:
            raise ConfigError("transport 'direct' needs api_base (an OpenAI-compatible endpoint)")
        return True
    return settings.transport == "auto" and settings.model.startswith("openai/") and bool(settings.api_base)


async def close_llm(llm: object) -> None:
    """Close the upstream client's connection pool, where it keeps one (the direct HTTP transport)."""
    close = getattr(llm, "aclose", None)
    if close is not None:
        await close()


def run_then_close(llm: object, work: Awaitable[T]) -> T:
    """``asyncio.run(work)``, then close ``llm``'s connections on the same loop (a command's one-shot run)."""

    async def main() -> T:
        try:
            return await work
        finally:
            await close_llm(llm)

    return asyncio.run(main())
