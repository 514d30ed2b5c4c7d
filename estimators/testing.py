"""A scripted, deterministic LLM for unit tests of estimators, fusion and the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from estimators.base import Cost, Generation, Message, Prompt, TokenLogprob, ToolCall

__all__ = ["Call", "Rule", "ScriptedLLM", "prompt_text", "user_message"]

Reply = str | Sequence[str] | Callable[[str, int], str]
"""A fixed text; a list of texts handed out in turn (cycling); or ``f(prompt_text, call_index)``."""


def prompt_text(prompt: Prompt) -> str:
    """Flatten a prompt to text so rules can match on it."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in prompt)


@dataclass(frozen=True)
class Rule:
    """Answer prompts containing ``contains`` with ``reply``; ``logprob`` is given to every token.

    ``tool_calls``: when the call offers tools (``options["tools"]``), the model calls these instead, with
    ``reply`` as the text beside them (often empty) and finish reason ``tool_calls``.
    """

    contains: str
    reply: Reply
    logprob: float = -0.1
    top: Sequence[tuple[str, float]] = ()
    tool_calls: Sequence[ToolCall] = ()


@dataclass(frozen=True)
class Call:
    """One recorded call, for assertions."""

    prompt: str
    n: int
    temperature: float
    max_tokens: int
    logprobs: int | None
    stop: tuple[str, ...]
    seed: int | None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ScriptedLLM:
    """Replies by the first rule whose ``contains`` occurs in the prompt; unmatched prompts get ``default``.

    Tokens are whitespace-separated words, each with its rule's ``logprob``. ``with_logprobs=False``
    behaves like an endpoint that never returns log-probs. Every call is recorded in ``calls``.
    """

    rules: Sequence[Rule] = ()
    default: str = ""
    with_logprobs: bool = True
    calls: list[Call] = field(default_factory=list)
    _turns: dict[int, int] = field(default_factory=dict)

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
        """Return ``n`` scripted generations (``options`` are recorded; ``tools`` among them enable tool calls)."""
        text = prompt_text(prompt)
        options = dict(options or {})
        self.calls.append(Call(text, n, temperature, max_tokens, logprobs, tuple(stop or ()), seed, options))
        rule_index, rule = self._match(text)
        calls = tuple(rule.tool_calls) if options.get("tools") else ()
        wants_logprobs = logprobs is not None or bool(options.get("logprobs"))
        out = []
        for i in range(n):
            reply = self._next_reply(rule_index, rule, text)
            usage = Cost(
                calls=1 if i == 0 else 0,
                prompt_tokens=len(text.split()) if i == 0 else 0,
                completion_tokens=len(reply.split()),
            )
            tokens = self._tokens(reply, rule) if wants_logprobs and self.with_logprobs else None
            finish = "tool_calls" if calls else "stop"
            out.append(Generation(text=reply, tokens=tokens, finish_reason=finish, usage=usage, tool_calls=calls))
        return out

    def _match(self, text: str) -> tuple[int, Rule]:
        for index, rule in enumerate(self.rules):
            if rule.contains in text:
                return index, rule
        return -1, Rule(contains="", reply=self.default)

    def _next_reply(self, index: int, rule: Rule, text: str) -> str:
        turn = self._turns.get(index, 0)
        self._turns[index] = turn + 1
        if callable(rule.reply):
            return rule.reply(text, turn)
        if isinstance(rule.reply, str):
            return rule.reply
        return rule.reply[turn % len(rule.reply)]

    @staticmethod
    def _tokens(reply: str, rule: Rule) -> tuple[TokenLogprob, ...]:
        words = reply.split()
        return tuple(TokenLogprob(token=w, logprob=rule.logprob, top=tuple(rule.top)) for w in words)


def user_message(text: str) -> list[Message]:
    """A one-message chat prompt."""
    return [{"role": "user", "content": text}]
