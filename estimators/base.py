"""Core types shared by every estimator: generations, the LLM protocol, signals and costs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "LLM",
    "Cost",
    "Estimator",
    "Generation",
    "Message",
    "Prompt",
    "Signal",
    "SupportsContinuationLogprobs",
    "SupportsDisagreementStop",
    "TokenLogprob",
    "ToolCall",
    "total_cost",
]

Message = Mapping[str, Any]
"""One chat message in the OpenAI shape: ``{"role": "system" | "user" | "assistant" | "tool", "content": ...}``.

Content is usually a string; an assistant turn that called tools carries ``tool_calls`` (its content may be
``None``) and a ``tool`` turn carries the tool's result and its ``tool_call_id``."""

Prompt = str | Sequence[Message]
"""A raw completion prompt (``str``) or a list of chat messages."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cost(_Frozen):
    """What some LLM work cost: calls made, prompt and completion tokens, wall seconds."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            seconds=self.seconds + other.seconds,
        )


def total_cost(items: Iterable[Generation | Cost]) -> Cost:
    """Sum the cost of generations (their ``usage``) and costs."""
    total = Cost()
    for item in items:
        total = total + (item.usage if isinstance(item, Generation) else item)
    return total


class TokenLogprob(_Frozen):
    """One generated token, its log-probability, and the most likely alternatives at that step."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class ToolCall(_Frozen):
    """One function call the model asked for, in OpenAI's shape (``arguments`` is the model's JSON text)."""

    id: str
    name: str
    arguments: str = ""


class Generation(_Frozen):
    """One completion: its text, optional per-token log-probs, why it stopped, and its share of the cost.

    A call that returns ``n`` generations books the call and its prompt tokens on the first one, so
    summing ``usage`` over the returned list gives the call's total.
    """

    text: str
    tokens: tuple[TokenLogprob, ...] | None = None
    finish_reason: str | None = None
    usage: Cost = Field(default_factory=Cost)
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def logprobs(self) -> list[float] | None:
        """The per-token log-probs, or ``None`` when the endpoint returned none."""
        return None if self.tokens is None else [t.logprob for t in self.tokens]


@runtime_checkable
class LLM(Protocol):
    """Anything that can generate: the litellm client, the embedded model, the scripted fake."""

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
        """Return ``n`` generations; ``logprobs=k`` asks for token log-probs with ``k`` alternatives.

        ``options`` are a client's own request fields under their OpenAI names (``tools``, ``tool_choice``,
        ``response_format``, ``top_p``, ``stop``...), forwarded to the endpoint as they are. Only a caller's
        primary answer carries them; estimators never pass any (their prompts are the gate's, not the
        client's). A backend refuses an option it cannot honour with ``ValueError`` naming it.
        """
        ...


@runtime_checkable
class SupportsContinuationLogprobs(Protocol):
    """An LLM that can score a forced continuation (white-box backends such as the embedded model)."""

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        """Log-probs of each token of ``continuation`` given ``prompt``."""
        ...


@runtime_checkable
class SupportsDisagreementStop(Protocol):
    """An LLM that can end a generation as soon as it can no longer agree with an answer (the embedded model).

    A consistency sample is read for one thing, whether it agrees with the answer (``ExactMatch``): once its words
    rule that out, its remaining tokens would be paid for and never change the verdict. Remote endpoints have no
    such parameter; estimators call this only where ``isinstance(llm, SupportsDisagreementStop)``.
    """

    async def generate_until_disagreeing(
        self,
        prompt: Prompt,
        *,
        answer: str,
        min_span_fraction: float = 0.5,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        logprobs: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """``LLM.generate``, except that a generation ends (finish reason ``"length"``) as soon as no text that starts
        with it could agree with ``answer`` (``ExactMatch(min_span_fraction=...).could_agree``)."""
        ...


class Signal(_Frozen):
    """One estimator's verdict on one answer, with what it cost and why."""

    name: str
    confidence: float | None = None
    raw: float | None = None
    cost: Cost = Field(default_factory=Cost)
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None

    @field_validator("confidence")
    @classmethod
    def _in_unit_interval(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {value!r}")
        return value


class Estimator(Protocol):
    """The contract every signal follows; it never raises for model misbehaviour."""

    name: str

    async def score(
        self,
        question: str,
        answer: str,
        *,
        llm: LLM,
        samples: Sequence[str] | None = None,
        references: Sequence[str] | None = None,
        logprobs: Sequence[float] | None = None,
        conversation: Sequence[Message] | None = None,
    ) -> Signal:
        """Score ``answer`` to ``question``; higher confidence = more likely correct.

        For a conversation, ``question`` is the last user turn resolved against the turns before it (see
        ``gate.conversation``) and ``conversation`` the recent messages ending with that turn: an estimator
        that asks the model the question again asks it there, so that its samples answer what the primary
        answer answered. ``None`` means the question stands alone.
        """
        ...
