"""A client's own request fields, forwarded with the primary answer: which exist, and how a call merges them.

The proxy validates each field (``gate.server.wire``) and hands the ones the client sent to
``LLM.generate(options=...)`` under their OpenAI names. Only these names are forwarded: a backend refuses any
other key, so a request can never set a transport's own controls (litellm's ``api_base``, ``api_key``,
``mock_response``, ``extra_body``...), whatever reaches the options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from estimators.base import Prompt

FORWARDED_FIELDS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "metadata",
        "modalities",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""OpenAI chat-completions fields a client may send that go to the upstream as they are. The rest of the
request is the gate's to set (``model``, ``messages``, ``n``, ``temperature``, ``max_tokens``, ``stream``)."""


def check_forwarded(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as a dict, or ``ValueError`` naming a key that is not a forwarded OpenAI field."""
    fields = dict(options or {})
    unknown = sorted(set(fields) - FORWARDED_FIELDS)
    if unknown:
        raise ValueError(f"options {unknown} are not forwarded request fields; valid: {sorted(FORWARDED_FIELDS)}")
    return fields


def call_fields(
    options: Mapping[str, Any] | None, *, logprobs: int | None, max_tokens: int
) -> tuple[dict[str, Any], int | None]:
    """The fields a remote call sends besides the prompt, and the log-prob alternatives it asks for.

    The client's ``logprobs``/``top_logprobs`` and the gate's own ``logprobs=k`` become one request for
    whichever asks more alternatives (the gate reads them, the client may get its share back). A client's
    ``max_completion_tokens`` replaces ``max_tokens`` (OpenAI's reasoning models refuse the older name).
    """
    fields = check_forwarded(options)
    client_asks, client_top = fields.pop("logprobs", None), fields.pop("top_logprobs", None)
    if client_asks:
        logprobs = max(logprobs or 0, client_top or 0)
    if "max_completion_tokens" not in fields:
        fields["max_tokens"] = max_tokens
    return fields, logprobs


@runtime_checkable
class RefusesRequests(Protocol):
    """A backend that can honour only some requests (the embedded model): it says which part it cannot."""

    def unsupported(self, prompt: Prompt, options: Mapping[str, Any] | None) -> tuple[str, str] | None:
        """``(param, why and what to do instead)`` for the first part of the request it cannot honour, or ``None``."""
        ...
