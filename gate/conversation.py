"""A chat request as the signals read it: the question resolved against the turns before it, and its references.

The proxy passes a request's messages upstream unchanged; the gate only reads them. Three things come out:

- ``question``: what the signals reason about. A follow-up such as "And in which year was he born?" means
  nothing alone, so the question is the last user turn *resolved* against what came before: the most recent
  earlier turns (user and assistant text) are prefixed, newest kept first, within a token budget. No LLM call
  rewrites it: the antecedent is simply in the text, where the concept extractor and the judge prompts see it.
  System prompts are instructions to the model, not part of the question, and are left out.
- ``messages``: the conversation as the model saw it (system prompt included, cut to the same budget), for
  signals that ask the model again (consistency draws its samples in the same conversation).
- ``references``: text the answer should agree with: tool results, and long passages the user pasted into the
  conversation (``PASTED_WORDS`` words or more), for PACE.

Token counts are estimated at ``CHARS_PER_TOKEN`` characters a token: the budget bounds prompt growth, it does
not need the tokenizer's exact count (and calling it would cost a round trip to a remote endpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from estimators.base import Message, Prompt

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_CONTEXT_TOKENS", "PASTED_WORDS", "Conversation", "message_text"]

CHARS_PER_TOKEN = 4
DEFAULT_CONTEXT_TOKENS = 512
"""Earlier turns kept in the resolved question and the signals' conversation (the question itself always stays)."""
PASTED_WORDS = 50
"""A user turn this long (in words) carries a passage to check the answer against, not only a question."""

_QUESTION_ROLES = ("user",)
_ANSWERED_AFTER = ("user", "tool")  # the answer under assessment follows the last user turn or a tool result


@dataclass(frozen=True)
class Conversation:
    """The parts of a chat request the signals read; build it with :meth:`from_prompt`.

    Attributes
    ----------
    messages : tuple of Message
        The whole request, as sent upstream.
    question : str
        The last user turn, alone.
    earlier : tuple of Message
        The user and assistant turns before it that carry text (oldest first; system and tool turns excluded).
    references : tuple of str
        Tool results and long pasted passages, in order of appearance.
    """

    messages: tuple[Message, ...]
    question: str
    earlier: tuple[Message, ...]
    references: tuple[str, ...]

    @classmethod
    def from_prompt(cls, prompt: Prompt) -> Conversation:
        """Read a prompt (a string is one user turn).

        Raises
        ------
        ValueError
            When there is no non-empty user turn, or the request does not end with a user turn or a tool result
            (there is then nothing for a model to answer next).
        """
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError("the question is empty")
            return cls(({"role": "user", "content": prompt},), prompt, (), ())
        messages = tuple(prompt)
        last_user = _last_user_turn(messages)
        if messages[-1].get("role") not in _ANSWERED_AFTER:
            raise ValueError(
                f"the last message must be the user's question or a tool result, got role {messages[-1].get('role')!r}"
            )
        earlier = tuple(
            {"role": m["role"], "content": message_text(m)}
            for m in messages[:last_user]
            if m.get("role") in ("user", "assistant") and message_text(m).strip()
        )
        references = tuple(_references(messages))
        return cls(messages, message_text(messages[last_user]), earlier, references)

    @property
    def is_follow_up(self) -> bool:
        """Whether turns came before the question (the signals then read it resolved)."""
        return bool(self.earlier)

    def resolved_question(self, max_tokens: int = DEFAULT_CONTEXT_TOKENS) -> str:
        """The question with the most recent earlier turns before it, within ``max_tokens`` (estimated).

        >>> Conversation.from_prompt([
        ...     {"role": "user", "content": "Who wrote Hamlet?"},
        ...     {"role": "assistant", "content": "William Shakespeare."},
        ...     {"role": "user", "content": "And in which year was he born?"},
        ... ]).resolved_question()
        'Who wrote Hamlet? William Shakespeare. And in which year was he born?'
        """
        kept = _recent(self.earlier, max_tokens * CHARS_PER_TOKEN - len(self.question))
        return " ".join([*(_sentence(message_text(m)) for m in kept), " ".join(self.question.split())])

    def recent_messages(self, max_tokens: int = DEFAULT_CONTEXT_TOKENS) -> list[Message]:
        """The conversation up to and including the question, for asking the model again within the budget.

        System turns are always kept (they shape every answer); of the earlier turns the most recent ones that
        fit are kept; the question is the last message. Tool turns are left out: a model asked again without
        its tools cannot continue a tool exchange, and the tool's text is a reference instead.
        """
        system = [{"role": "system", "content": message_text(m)} for m in self.messages if m.get("role") == "system"]
        room = max_tokens * CHARS_PER_TOKEN - len(self.question) - sum(len(m["content"]) for m in system)
        return [*system, *_recent(self.earlier, room), {"role": "user", "content": self.question}]


def message_text(message: Message) -> str:
    """A message's text: the string content, or its text parts joined (images and other parts carry none)."""
    content: Any = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "\n".join(text for text in texts if isinstance(text, str))
    return ""


def _last_user_turn(messages: Sequence[Message]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") in _QUESTION_ROLES and message_text(messages[index]).strip():
            return index
    raise ValueError("messages hold no non-empty user message to assess")


def _references(messages: Sequence[Message]) -> list[str]:
    def is_reference(message: Message, text: str) -> bool:
        if message.get("role") == "tool":
            return bool(text)
        return message.get("role") == "user" and len(text.split()) >= PASTED_WORDS

    return [text for message in messages if is_reference(message, text := message_text(message).strip())]


def _recent(turns: Sequence[Message], room_chars: int) -> list[Message]:
    """The newest turns whose text fits in ``room_chars``, in their original order (a turn is kept whole or not)."""
    kept: list[Message] = []
    for turn in reversed(turns):
        size = len(message_text(turn)) + 1
        if size > room_chars:
            break
        kept.append(turn)
        room_chars -= size
    return kept[::-1]


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "?", "!", ":")) else text + "."
