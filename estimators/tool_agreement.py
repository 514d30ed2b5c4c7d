"""Agreement of sampled tool calls with the model's own: does the model call the same tools the same way again?

The consistency signal (``estimators.consistency``) compares text answers; a tool call has no text to compare,
but it has a name and arguments. The model is asked again, ``n_samples`` times at ``temperature`` with the
same tools offered, and each sample *agrees* when it calls the same set of tools with the same arguments
(JSON compared after parsing, so key order and spacing do not matter; arguments that are not JSON are
compared as stripped text). A sample that answers in text, or calls other tools, disagrees. The confidence
is the agreement rate. One LLM call (``n`` samples in one request), on the same conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from estimators._checks import check_positive_int
from estimators.base import LLM, Generation, Message, Signal, ToolCall, total_cost

__all__ = ["ToolCallAgreement", "same_calls"]

CallKey = tuple[tuple[str, str], ...]


class ToolCallAgreement:
    """How often samples repeat the model's tool calls.

    Parameters
    ----------
    n_samples : int, default 5
    temperature : float, default 1.0
    seed : int, default 0
    max_tokens : int, default 256
        Room for a sample's arguments.
    """

    name = "tool_agreement"

    def __init__(self, n_samples: int = 5, temperature: float = 1.0, seed: int = 0, max_tokens: int = 256) -> None:
        check_positive_int("n_samples", n_samples)
        check_positive_int("max_tokens", max_tokens)
        self.n_samples, self.temperature, self.seed, self.max_tokens = n_samples, temperature, seed, max_tokens

    async def score(
        self, calls: Sequence[ToolCall], *, llm: LLM, messages: Sequence[Message], options: Mapping[str, Any]
    ) -> Signal:
        """Score ``calls`` (the primary answer's) by sampling the same request, tools offered as in ``options``.

        Returns
        -------
        Signal
            ``confidence`` is the share of samples that made the same calls; ``details`` hold ``agree`` (per
            sample), ``sampled`` (each sample's calls as ``[name, arguments]`` pairs, or its text) and ``n_samples``.
            An endpoint that returns no samples gives an error signal, never an exception.
        """
        if not calls:
            return Signal(name=self.name, error="the answer called no tools")
        generations: list[Generation] = await llm.generate(
            list(messages),
            n=self.n_samples,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            options=options,
        )
        cost = total_cost(generations)
        if not generations:
            return Signal(name=self.name, cost=cost, error="the endpoint returned no samples")
        wanted = same_calls_key(calls)
        agree = [bool(g.tool_calls) and same_calls_key(g.tool_calls) == wanted for g in generations]
        sampled = [[list(pair) for pair in same_calls_key(g.tool_calls)] or g.text for g in generations]
        rate = sum(agree) / len(agree)
        details = {"agree": agree, "sampled": sampled, "n_samples": len(agree)}
        return Signal(name=self.name, confidence=rate, raw=rate, cost=cost, details=details)


def same_calls(first: Sequence[ToolCall], second: Sequence[ToolCall]) -> bool:
    """Whether two answers call the same tools with the same arguments (order, ids and JSON layout aside)."""
    return same_calls_key(first) == same_calls_key(second)


def same_calls_key(calls: Sequence[ToolCall]) -> CallKey:
    return tuple(sorted((call.name, _canonical(call.arguments)) for call in calls))


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except (ValueError, TypeError):
        return arguments.strip()
