"""Render chat messages into the few-shot Q/A completion format a base model understands."""

from __future__ import annotations

from collections.abc import Sequence

from estimators.base import Message

DEFAULT_PREAMBLE = "Answer each question with a short, factual answer."

# A handful of generic examples teach the base model the format: one short line per answer.
FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("Who wrote the novel Pride and Prejudice?", "Jane Austen"),
    ("How many legs does a spider have?", "Eight"),
)

QA_STOP: tuple[str, ...] = ("\n",)
"""Stop sequences for the rendered format: an answer is one line."""

VALID_ROLES = frozenset({"system", "developer", "user", "assistant"})


def render_chat(messages: Sequence[Message]) -> str:
    """Turn chat messages into a ``Q:``/``A:`` prompt ending in ``A:`` for the next answer.

    System (and developer) messages become the preamble; user turns become questions and assistant turns
    answers. Content is a string or a list of text parts (joined, as OpenAI reads them).
    """
    if not messages:
        raise ValueError("messages is empty; expected at least one user message")
    preamble: list[str] = []
    turns: list[str] = []
    for index, message in enumerate(messages):
        role, content = message.get("role"), _text_parts(message.get("content"))
        if role not in VALID_ROLES or not isinstance(content, str):
            raise ValueError(
                f"message {index} has role={role!r}, content type {type(content).__name__}; "
                f"expected role in {sorted(VALID_ROLES)} and string content"
            )
        text = " ".join(content.split())
        if role in ("system", "developer"):
            preamble.append(text)
        elif role == "user":
            turns.append(f"Q: {text}")
        else:
            turns.append(f"A: {text}")
    if messages[-1].get("role") != "user":
        raise ValueError(f"the last message must be from the user, got role={messages[-1].get('role')!r}")
    header = " ".join(preamble) or DEFAULT_PREAMBLE
    examples = [f"Q: {q}\nA: {a}" for q, a in FEW_SHOT_EXAMPLES]
    return "\n".join([header, "", *examples, *turns, "A:"])


def _text_parts(content: object) -> object:
    """A list of text parts as one string; anything else as it is (checked by the caller)."""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(part.get("text", "")) for part in content)
    return content
