"""What the proxy sends back, in OpenAI's shapes: completion objects, SSE chunks, tool calls and log-probs.

A reply is rendered once (:meth:`gate.server.policy.Policy.render`) and then written either as one
``chat.completion`` / ``text_completion`` object or as ``chat.completion.chunk`` events. The stream carries
the same content as the object would: text piece by piece (token by token where the log-probs the client
asked for line up with the text), then each tool call as OpenAI streams it (its id and name first, then its
arguments in fragments), then the finish reason; the ``gate`` object rides on the last chunk before ``[DONE]``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from estimators.base import Cost, TokenLogprob, ToolCall

ARGUMENT_FRAGMENT = 32
"""Characters of a tool call's arguments per stream chunk (any split parses; OpenAI's are a few tokens)."""

_PIECES = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class Reply:
    """What goes back to the client: per choice its text, why it stopped, its tool calls and log-probs;
    the answer's usage and the gate's view. ``tool_calls`` and ``logprobs`` may be empty (none anywhere)."""

    texts: list[str]
    finish_reasons: list[str]
    usage: Cost
    gate: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[tuple[ToolCall, ...]] = field(default_factory=list)
    logprobs: list[tuple[TokenLogprob, ...] | None] = field(default_factory=list)

    def calls(self, index: int) -> tuple[ToolCall, ...]:
        """The tool calls of choice ``index`` (none when the reply has none)."""
        return self.tool_calls[index] if index < len(self.tool_calls) else ()

    def tokens(self, index: int) -> tuple[TokenLogprob, ...] | None:
        """The log-probs of choice ``index`` to return, or ``None`` when the client gets none."""
        return self.logprobs[index] if index < len(self.logprobs) else None


@dataclass(frozen=True)
class Envelope:
    """The identity of one completion object: id, kind (chat or text), model and creation time."""

    chat: bool
    model: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    def head(self, *, chunk: bool = False) -> dict[str, Any]:
        """The fields every completion object and chunk starts with."""
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        prefix = "chatcmpl-" if self.chat else "cmpl-"
        return {"id": prefix + self.id, "object": kind, "created": self.created, "model": self.model}


def usage_body(cost: Cost) -> dict[str, int]:
    """OpenAI's usage block for the answer."""
    total = cost.prompt_tokens + cost.completion_tokens
    return {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens, "total_tokens": total}


def completion_body(envelope: Envelope, reply: Reply) -> dict[str, Any]:
    """A whole ``chat.completion`` or ``text_completion`` object with the ``gate`` object."""
    choices = []
    for index, (text, reason) in enumerate(zip(reply.texts, reply.finish_reasons, strict=True)):
        choice: dict[str, Any] = {"index": index, "logprobs": None, "finish_reason": reason}
        if envelope.chat:
            calls = reply.calls(index)
            message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else text)}
            message["refusal"] = None
            if calls:
                message["tool_calls"] = [tool_call_body(call) for call in calls]
            choice["message"] = message
            if (tokens := reply.tokens(index)) is not None:
                choice["logprobs"] = logprobs_body(tokens)
        else:
            choice["text"] = text
        choices.append(choice)
    return {**envelope.head(), "choices": choices, "usage": usage_body(reply.usage), "gate": reply.gate}


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    """One tool call in OpenAI's shape."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def logprobs_body(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """A choice's ``logprobs`` in OpenAI's chat shape (``bytes``: the token's UTF-8 encoding)."""
    return {
        "content": [
            {
                "token": token.token,
                "logprob": token.logprob,
                "bytes": list(token.token.encode("utf-8")),
                "top_logprobs": [
                    {"token": alt, "logprob": value, "bytes": list(alt.encode("utf-8"))} for alt, value in token.top
                ],
            }
            for token in tokens
        ],
        "refusal": None,
    }


def stream_events(envelope: Envelope, reply: Reply, *, include_usage: bool) -> Iterator[str]:
    """The final reply as SSE chunks in OpenAI's format; ``gate`` rides on the last one before [DONE]."""
    chunks: list[dict[str, Any]] = []
    for index, text in enumerate(reply.texts):
        chunks += _choice_chunks(envelope, reply, index, text)
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**envelope.head(chunk=True), "choices": [], "usage": usage_body(reply.usage)})
    chunks[-1]["gate"] = reply.gate
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _choice_chunks(envelope: Envelope, reply: Reply, index: int, text: str) -> list[dict[str, Any]]:
    calls, tokens = reply.calls(index), reply.tokens(index)
    if not envelope.chat:
        pieces = [_chunk(envelope, index, {"text": piece}) for piece in _PIECES.findall(text)]
        return [*pieces, _chunk(envelope, index, {"text": ""}, reply.finish_reasons[index])]
    chunks = [_chunk(envelope, index, {"role": "assistant", "content": "" if text or not calls else None})]
    for piece, piece_tokens in stream_pieces(text, tokens):
        logprobs = None if piece_tokens is None else logprobs_body(piece_tokens)
        chunks.append(_chunk(envelope, index, {"content": piece}, logprobs=logprobs))
    for position, call in enumerate(calls):
        head = {"index": position, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        chunks.append(_chunk(envelope, index, {"tool_calls": [head]}))
        for start in range(0, len(call.arguments), ARGUMENT_FRAGMENT):
            fragment = {"index": position, "function": {"arguments": call.arguments[start : start + ARGUMENT_FRAGMENT]}}
            chunks.append(_chunk(envelope, index, {"tool_calls": [fragment]}))
    chunks.append(_chunk(envelope, index, {}, reply.finish_reasons[index]))
    return chunks


def _chunk(
    envelope: Envelope,
    index: int,
    delta: dict[str, Any],
    reason: str | None = None,
    *,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if envelope.chat:
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
    else:
        choice = {"index": index, "text": delta["text"], "logprobs": None, "finish_reason": reason}
    return {**envelope.head(chunk=True), "choices": [choice]}


def stream_pieces(
    text: str, tokens: Sequence[TokenLogprob] | None
) -> list[tuple[str, tuple[TokenLogprob, ...] | None]]:
    """``text`` as a stream delivers it, each piece with its tokens' log-probs when the client gets them.

    With tokens that spell the text (the answer is the model's stripped of surrounding space), one piece per
    token (a token whose text is empty rides with its neighbour); tokens that do not line up ride whole on
    one piece; without tokens, the text goes word by word.
    """
    if not tokens:
        return [(piece, None) for piece in _PIECES.findall(text)]
    texts = [token.token for token in tokens]
    texts[0] = texts[0].lstrip()
    texts[-1] = texts[-1].rstrip()
    if "".join(texts) != text:
        return [(text, tuple(tokens))] if text else []
    pieces: list[tuple[str, tuple[TokenLogprob, ...]]] = []
    for piece, token in zip(texts, tokens, strict=True):
        if pieces and (not piece or not pieces[-1][0]):
            pieces[-1] = (pieces[-1][0] + piece, (*pieces[-1][1], token))
        else:
            pieces.append((piece, (token,)))
    return list(pieces)
