"""What the embedded model cannot do with a request, said precisely (the proxy answers it as a 400).

The embedded Gemma 3 270M is a small base model prompted in a few-shot ``Q:``/``A:`` format
(:mod:`gate.backends.embedded.prompt_format`) and sampled by the gate's own decoder. It has no chat
template, so no tool-calling format, and it reads text only. Request fields that only label a request
(``user``, ``metadata``...) have no effect on a local model and are accepted; fields that would change the
answer in a way this model cannot (tools, JSON output, penalties) are refused, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from estimators.base import Prompt

MODEL = "the embedded model (Gemma 3 270M, a base model prompted in a Q/A format)"
ELSEWHERE = "point the gate at an upstream that supports it (model: openai/<name> with api_base)"

HONOURED = frozenset({"stop", "seed", "logprobs", "top_logprobs", "max_completion_tokens"})
IGNORED = frozenset(
    {
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prediction",  # a latency hint: the answer is the same without it
        "parallel_tool_calls",  # meaningful only with tools, which are refused
        "reasoning_effort",  # the model does no reasoning to spend effort on
    }
)
"""Fields with no effect on a local model's answer: accepted, not acted on."""

REFUSED = {
    "tools": f"{MODEL} cannot call tools: it has no tool-calling format; {ELSEWHERE}",
    "tool_choice": f"{MODEL} cannot call tools, so a tool_choice other than 'none' or 'auto' cannot be honoured",
    "response_format": f"{MODEL} cannot constrain its output to JSON; send response_format {{'type': 'text'}} "
    f"or none, or {ELSEWHERE}",
    "logit_bias": f"{MODEL} is sampled by the gate's own decoder, which takes no logit_bias",
    "presence_penalty": f"{MODEL} is sampled by the gate's own decoder, which applies no penalties",
    "frequency_penalty": f"{MODEL} is sampled by the gate's own decoder, which applies no penalties",
    "top_p": f"{MODEL} samples with llama.cpp's defaults (top_k 40, top_p 0.95), not a per-request top_p",
    "verbosity": f"{MODEL} has no verbosity control; ask for a length with max_tokens",
    "web_search_options": f"{MODEL} cannot search the web; {ELSEWHERE}",
    "modalities": f"{MODEL} answers in text only",
}


def request_limit(prompt: Prompt, options: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(param, why)`` for the first part of the request the embedded model cannot honour, else ``None``."""
    for name, value in (options or {}).items():
        if name in HONOURED or name in IGNORED or _harmless(name, value):
            continue
        return name, REFUSED.get(name, f"{MODEL} does not support {name}")
    if isinstance(prompt, str):
        return None
    for index, message in enumerate(prompt):
        if (why := _message_limit(message)) is not None:
            return f"messages[{index}]", why
    return None


def _harmless(name: str, value: Any) -> bool:
    """Values of refused fields that ask for nothing beyond what the model does anyway."""
    if name == "tool_choice":
        return value in ("none", "auto")
    if name == "response_format":
        return isinstance(value, Mapping) and value.get("type") == "text"
    if name == "modalities":
        return list(value) == ["text"]
    return False


def _message_limit(message: Mapping[str, Any]) -> str | None:
    role = message.get("role")
    if role == "tool" or message.get("tool_calls") or message.get("function_call"):
        return f"{MODEL} cannot read tool calls or tool results; {ELSEWHERE}"
    content = message.get("content")
    if isinstance(content, list) and any(not _is_text(part) for part in content):
        return f"{MODEL} reads text only: send text content (no image, audio or file parts), or {ELSEWHERE}"
    return None


def _is_text(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "text"
