"""Which requests the gate can assess: the kind of a chat request, decided by explainable rules, no LLM call.

Contract
--------
``classify(messages, tools=None, *, tool_choice=None) -> RequestKind``

``messages`` are OpenAI chat messages: dicts with ``role`` (system, developer, user, assistant, tool,
function) and ``content`` (a string, ``None``, or a list of content parts, of which the ``text`` parts are
read and the others ignored); assistant messages may carry ``tool_calls``. ``tools`` and ``tool_choice`` are
the request's fields of those names. The result's ``kind`` is one of:

- ``"tool_call"``: the request offers tools (and ``tool_choice`` is not ``"none"``), or its last message is a
  tool result. The answer may be a tool call (not assessed by default); ``references`` holds the tool results
  of the current step, against which a final text answer can be grounded.
- ``"grounded"``: a task over text the conversation supplies (summarise, extract, answer from a pasted
  passage, a document in the system prompt, text pasted in an earlier turn, earlier tool results).
  ``references`` holds that text; the answer is to be checked against it (PACE).
- ``"non_factual"``: creative writing (poems, stories, jokes, letters), rewriting or translating text the user
  supplied, code, chit-chat, opinions and personal advice. Nothing in the answer can be checked as a fact.
- ``"factual"``: a question or request about real-world facts, short ("Who wrote Hamlet?") or long
  ("Explain how vaccines work"). **An expository request is factual**: "Write a short paragraph about the
  history of the Roman Empire" asks for prose whose sentences are factual claims, so the gate judges them;
  only the creative forms (poem, story, joke, song...) are non-factual. "Summarise the plot of Hamlet" with no
  text supplied is factual too: the summary comes from the model's memory.

``reason`` is one sentence naming the rule and the words that matched; ``rule`` is the rule's short name (for
metrics and tests; ``follow_up:<rule>`` and ``context:<rule>`` when the conversation decided). The last user
turn is classified in the context of the conversation: a system prompt is never the question (it supplies
references only when it marks a block as context: "Context:", ``<context>``, "### Document", "these facts:"),
a short follow-up with no pattern of its own ("make it shorter", "another one") takes the kind of the request
it follows, and when earlier turns supplied text (pasted passages, tool results) every later request is
grounded on it, except the explicit non-factual ones (creative, rewrite, code, chit-chat).

Precedence within one message, surest first: code, creative or personal writing, rewriting of a given text,
a task over supplied text (grounded), chit-chat, an expository request (factual), opinion or advice, a
question, and the factual default.

Bias: passing a factual question as non-factual lets it escape the gate, so that is the costly error. The
non-factual rules need an explicit pattern, a request that mixes a creative or opinion part with a factual
question is factual, and a request no rule recognises is factual, with a reason that says it was a default.

Errors: ``ValueError`` naming what was received, when ``messages`` is not a non-empty list of message dicts,
a role or content part is not one OpenAI defines, or there is no user message with text (and the last message
is not a tool result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gate.request_kind_rules import CODE_IN_MESSAGE, Reading, read_text
from gate.request_kind_text import Supplied, points_at_text, split_supplied, words

__all__ = ["Kind", "RequestKind", "classify"]

Kind = Literal["factual", "grounded", "non_factual", "tool_call"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_NON_FACTUAL = {
    "code": "code: the request asks for code ({evidence!r})",
    "creative": "creative or personal writing: the request asks for {evidence!r}",
    "rewrite": "rewriting: {evidence!r} edits or translates a given text and adds no facts to check",
    "chit_chat": "chit-chat: {evidence!r} asks no factual question",
    "opinion": "opinion: the request asks {evidence!r} and no factual question",
    "advice": "personal advice: the request asks {evidence!r} and no factual question",
}
# Sure enough to win over supplied context; opinion and advice over supplied text still draw on that text.
_EXPLICIT = frozenset({"code", "creative", "rewrite", "chit_chat"})
_FOLLOW_UP_WORDS = 8  # a turn this short with no pattern of its own continues the request before it


@dataclass(frozen=True)
class RequestKind:
    """The kind of a request, why, and the supplied texts its answer should be checked against."""

    kind: Kind
    reason: str
    references: tuple[str, ...] = ()
    rule: str = ""


@dataclass(frozen=True)
class _Turn:
    role: str
    text: str


def classify(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None, *, tool_choice: Any = None
) -> RequestKind:
    """The kind of the request whose last user turn ends ``messages``; see the module docstring."""
    turns = _turns(messages)
    if tools is not None and (isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence)):
        raise ValueError(f"tools must be a list of tool definitions or None, got {type(tools).__name__}")
    tool_kind = _tool_kind(turns, list(tools or ()), tool_choice)
    if tool_kind is not None:
        return tool_kind
    users = [i for i, turn in enumerate(turns) if turn.role == "user"]
    if not users:
        raise ValueError(f"messages hold no user message to classify (roles: {[t.role for t in turns]})")
    if not turns[users[-1]].text.strip():
        raise ValueError("the last user message has no text to classify (empty, or only non-text content parts)")
    return _classify_turn(turns, users)


def _classify_turn(turns: list[_Turn], users: list[int]) -> RequestKind:
    last = users[-1]
    supplied = split_supplied(turns[last].text)
    reading = read_text(supplied)
    if reading.rule in _EXPLICIT:
        return _non_factual(reading)
    if reading.rule in ("text_task", "supplied_text"):
        return _grounded(reading, supplied.texts, "the request supplies")
    previous = [i for i in users[:-1] if turns[i].text.strip()]
    if previous and _continues(reading, supplied):
        before = _classify_turn(turns[: previous[-1] + 1], previous)
        said = reading.evidence or turns[last].text.strip()
        return RequestKind(
            before.kind,
            f"follow-up ({said!r}) to an earlier request; {before.reason}",
            before.references,
            f"follow_up:{before.rule}",
        )
    if reading.rule == "rewrite_previous":
        return _non_factual(Reading("rewrite", reading.evidence))
    earlier, where = _context(turns[:last])
    if earlier:
        return _grounded(reading, earlier, where)
    if reading.rule in _NON_FACTUAL:
        return _non_factual(reading)
    return _factual(reading, points_at_text(supplied.instruction))


def _continues(reading: Reading, supplied: Supplied) -> bool:
    """ "Make it shorter", "another one", "why?": a turn that only makes sense as part of the one before."""
    if reading.rule == "rewrite_previous":
        return True
    return reading.rule == "fallback" and words(supplied.instruction) <= _FOLLOW_UP_WORDS


def _context(before: list[_Turn]) -> tuple[tuple[str, ...], str]:
    """Supplied text earlier in the conversation: marked context in a system prompt, pasted text, tool results."""
    texts: list[str] = []
    places: list[str] = []
    for turn in before:
        if turn.role in ("system", "developer"):
            found = split_supplied(turn.text, marked_only=True).texts
            place = "the system prompt"
        elif turn.role == "user":
            found = split_supplied(turn.text).texts
            place = "an earlier turn"
        elif turn.role in ("tool", "function"):
            found = (turn.text,) if turn.text.strip() else ()
            place = "a tool result"
        else:
            continue
        texts += found
        if found and place not in places:
            places.append(place)
    return tuple(texts), " and ".join(places)


def _non_factual(reading: Reading) -> RequestKind:
    if reading.rule == "code" and reading.evidence == CODE_IN_MESSAGE:
        return RequestKind("non_factual", "code: the request contains code", (), "code")
    return RequestKind("non_factual", _NON_FACTUAL[reading.rule].format(evidence=reading.evidence), (), reading.rule)


_ASKED = {"question": "a question", "expository": "an expository request", "mixed": "a question"}


def _grounded(reading: Reading, texts: tuple[str, ...], where: str) -> RequestKind:
    size = sum(words(t) for t in texts)
    if reading.rule == "text_task":
        reason = f"grounded task: {reading.evidence!r} over {size} words of text the request supplies"
    elif reading.rule == "supplied_text":
        reason = f"grounded: the request asks about {size} words of text it supplies"
    else:
        asked = _ASKED.get(reading.rule, f"a request ({reading.rule})")
        reason = f"grounded: {asked} in a conversation that supplies {size} words of text in {where}"
    rule = reading.rule if where == "the request supplies" else f"context:{reading.rule}"
    return RequestKind("grounded", reason, texts, rule)


def _factual(reading: Reading, points_at_text: bool) -> RequestKind:
    if reading.rule == "mixed":
        reason = f"factual: the request asks {reading.evidence!r} besides the {reading.overruled} part"
    elif reading.rule == "expository":
        reason = f"factual, long answer: an expository request ({reading.evidence!r}) about real-world facts"
    elif reading.rule == "question":
        reason = "factual question"
    elif points_at_text:
        reason = "factual by default: the request refers to a text but none was supplied, so it is assessed"
    else:
        reason = "factual by default: no rule recognised the request, and when unsure the gate assesses it"
    return RequestKind("factual", reason, (), reading.rule)


# ------------------------------------------------------------------------------------ tools and input


def _tool_kind(turns: list[_Turn], tools: list[Mapping[str, Any]], tool_choice: Any) -> RequestKind | None:
    results = _step_results(turns)
    if turns[-1].role in ("tool", "function"):
        return RequestKind(
            "tool_call",
            f"tool call: the last message is a tool result ({len(results)} in this "
            "step); the answer calls another tool or is grounded on the results",
            results,
            "tool_result",
        )
    if tools and tool_choice != "none":
        names = [str(t.get("function", {}).get("name", "?")) if isinstance(t, Mapping) else "?" for t in tools]
        choice = "" if tool_choice is None else f", tool_choice {tool_choice!r}"
        return RequestKind(
            "tool_call",
            f"tool call: the request offers {len(tools)} tool(s) ({', '.join(names)})"
            f"{choice}; the answer may be a tool call",
            results,
            "tools_offered",
        )
    return None


def _step_results(turns: list[_Turn]) -> tuple[str, ...]:
    """The tool results after the last user turn: what the current agent step returned."""
    last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=-1)
    return tuple(t.text for t in turns[last_user + 1 :] if t.role in ("tool", "function") and t.text.strip())


def _turns(messages: Sequence[Mapping[str, Any]]) -> list[_Turn]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise ValueError(f"messages must be a list of message dicts, got {type(messages).__name__}")
    if not messages:
        raise ValueError("messages is empty; expected at least one {'role': 'user', 'content': ...} message")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {index} is a {type(message).__name__}, expected a dict with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"message {index} has role {role!r}; valid roles: {', '.join(ROLES)}")
        turns.append(_Turn(str(role), _text(message.get("content"), index)))
    return turns


def _text(content: Any, index: int) -> str:
    """The text of a message's content; non-text parts (images, audio, files) carry no text to classify."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ValueError(f"message {index} content is a {type(content).__name__}; expected a string or a list of parts")
    texts = []
    for part_index, part in enumerate(content):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise ValueError(f"message {index} content part {part_index} is {part!r:.60}; expected {{'type': ...}}")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise ValueError(f"message {index} content part {part_index} is a text part without a 'text' string")
            texts.append(part["text"])
    return "\n".join(texts)
