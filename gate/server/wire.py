"""The OpenAI wire format as the proxy speaks it: request models, completion objects, SSE chunks, errors.

Requests are validated strictly: a parameter the gate cannot honour is a 400 naming it, never silently
ignored. Besides OpenAI's own fields a request may carry ``gate`` options (see :class:`GateOptions`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from estimators.base import Cost, Message
from gate.config import GateMode, Settings
from gate.errors import GateError
from gate.secrets import mask_known, upstream_secrets

UNSUPPORTED = {
    "max_risk": "the calibration artifact's thresholds hold for the one risk target they were fitted for",
    "tools": "the gate assesses plain text answers, not tool calls",
    "response_format": "the gate assesses plain text answers",
    "logprobs": "token log-probs are read by the gate itself and not returned",
}
"""Why some well-known parameters are refused (other unknown parameters get the list of valid ones)."""


class WireError(GateError):
    """A request the proxy answers with an error instead of a completion (data only; see gate.server.app)."""

    status = 400
    type = "invalid_request_error"
    default_code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.message, self.param, self.code, self.headers = message, param, code or self.default_code, headers
        super().__init__(message)


class BadRequestError(WireError):
    """Invalid input: the message says what was received and what is valid."""


class UnauthorizedError(WireError):
    """No API key, or not one of the configured ones."""

    status, default_code = 401, "invalid_api_key"


class ForbiddenError(WireError):
    """A valid key asked for something this server does not allow it (a gate mode outside ``allowed_modes``)."""

    status, type, default_code = 403, "permission_error", "not_allowed"


class PayloadTooLargeError(WireError):
    """The request body is over the configured limit."""

    status, default_code = 413, "request_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is larger than this server's limit of {limit} bytes")


class OverloadedError(WireError):
    """More requests in flight than the configured limit."""

    status, type, default_code = 429, "rate_limit_error", "too_many_requests"


class NotReadyError(WireError):
    """The gate is still loading (or failed to load)."""

    status, type, default_code = 503, "server_error", "not_ready"


class GatewayTimeoutError(WireError):
    """The request took longer than the configured per-request timeout."""

    status, type, default_code = 504, "server_error", "timeout"


def error_body(message: str, *, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


UPSTREAM = "the upstream"
"""What client-facing text says instead of the upstream's address."""
_ADDRESS_SHAPED = re.compile(
    r"\b(?:https?|wss?)://(?:[^\s'\"<>\[\]()]*@)?(?:\[[0-9A-Fa-f:.]+\])?[^\s'\"<>()\[\]]*"  # any URL
    r"|\(\s*'[0-9A-Fa-f:.]+'\s*,\s*\d+[^)]*\)"  # a socket address as Python writes it: ('10.0.0.5', 8000)
    r"|\[[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\](?::\d+)?"  # a bracketed IPv6 address, with its port
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?!\w|\.\d)"  # an IPv4 address, with its port
)


@dataclass(frozen=True)
class Scrubber:
    """Masks what a client must not see in text quoting the upstream: its key and password, and its address.

    Secrets (the upstream API key, the password in ``api_base``) become ``***`` everywhere, the model's own
    answer included. The upstream's address (``api_base`` as a URL, its host and port, any URL or IP address)
    becomes "the upstream" in errors and reasons, never in the answer, and the server log keeps it.
    """

    secrets: tuple[str, ...] = field(default=(), repr=False)
    addresses: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """The scrubber for the upstream of ``settings`` (one that changes nothing without a key or an api_base)."""
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        addresses = _address_forms(settings.api_base) if settings.api_base else []
        return cls(upstream_secrets(api_key, settings.api_base), tuple(addresses))

    def secret_free(self, message: str) -> str:
        """``message`` with the secrets masked (what the server log may hold)."""
        return mask_known(message, self.secrets)

    def text(self, message: str) -> str:
        """``message`` as a client may read it: secrets masked, the upstream's address replaced."""
        message = _ADDRESS_SHAPED.sub(UPSTREAM, message)  # first: a whole URL, its user info included
        for address in self.addresses:
            message = message.replace(address, UPSTREAM)
        return self.secret_free(message)

    def view(self, value: Any) -> Any:
        """``value`` with :meth:`text` applied to every string inside it (signal errors, reasons)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.view(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.view(item) for item in value]
        return value


def _address_forms(api_base: str) -> list[str]:
    """``api_base`` as errors quote it: the URL, its origin, the host with and without port, longest first."""
    parts = urlsplit(api_base.rstrip("/"))
    host = parts.hostname or ""
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    netloc = parts.netloc.rpartition("@")[2]
    forms = {api_base, api_base.rstrip("/"), f"{parts.scheme}://{netloc}", netloc}
    if host and port:
        forms |= {f"{host}:{port}", f"[{host}]:{port}"}
    if "." in host or ":" in host:  # a bare name such as "localhost" is a common word; host:port catches it
        forms.add(host)
    return sorted((form for form in forms if form and form != "://"), key=len, reverse=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestBudget(_Strict):
    """Lower limits on the gate's own work for this request (never above the operator's)."""

    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


class GateOptions(_Strict):
    """The extra ``gate`` body field: how this request is gated, within the server's bounds."""

    mode: GateMode | None = Field(default=None, description="off: pass through; observe: report; enforce")
    estimators: list[str] | None = Field(default=None, min_length=1, description="signal keys to compute")
    cascade: bool | None = Field(default=None, description="true: skip the full stage when the free signals decide")
    budget: RequestBudget | None = None


class ChatMessage(_Strict):
    """One chat message; content is a string or a list of text parts (other parts are refused)."""

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _join_text_parts(cls, content: Any) -> Any:
        if not isinstance(content, list):
            return content
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"content part {index} is {kind!r}; only text parts ({{'type': 'text', ...}}) work")
            texts.append(part["text"])
        return "".join(texts)


class StreamOptions(_Strict):
    """OpenAI's ``stream_options``."""

    include_usage: bool = Field(default=False, strict=True)


class _CompletionParams(_Strict):
    """What chat and text completion requests share."""

    model: str = Field(min_length=1)
    # strict: "10" or "yes" are not numbers or booleans; a client that sends them has a bug to hear about
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    n: int = Field(default=1, ge=1, le=16, strict=True)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, description="end-user id (accepted, not used)")
    gate: GateOptions | None = None


class ChatRequest(_CompletionParams):
    """``POST /v1/chat/completions``; the last message must be the user's question."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        last = messages[-1]
        if last.role != "user" or not last.content.strip():
            raise ValueError(f"the last message must be a non-empty user message, got role {last.role!r}")
        return messages

    def prompt(self) -> list[Message]:
        """The messages as the pipeline takes them."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def answer_tokens(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_CompletionParams):
    """``POST /v1/completions``; the prompt is one string, gated as a question."""

    prompt: str = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt is blank")
        return prompt

    def answer_tokens(self) -> int | None:
        """The requested answer length."""
        return self.max_tokens


@dataclass(frozen=True)
class Reply:
    """What goes back to the client: one text per choice, why each stopped, usage and gate view."""

    texts: list[str]
    finish_reasons: list[str]
    usage: Cost
    gate: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


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
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        choices.append(choice)
    return {**envelope.head(), "choices": choices, "usage": usage_body(reply.usage), "gate": reply.gate}


_PIECES = re.compile(r"\s*\S+\s*|\s+")


def stream_events(envelope: Envelope, reply: Reply, *, include_usage: bool) -> Iterator[str]:
    """The final content as SSE chunks in OpenAI's format; ``gate`` rides on the last one before [DONE]."""
    chunks: list[dict[str, Any]] = []
    for index, text in enumerate(reply.texts):
        if envelope.chat:
            chunks.append(_chunk(envelope, index, {"role": "assistant", "content": ""}, None))
        chunks += [_chunk(envelope, index, piece, None) for piece in _PIECES.findall(text)]
        chunks.append(_chunk(envelope, index, "", reply.finish_reasons[index]))
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**envelope.head(chunk=True), "choices": [], "usage": usage_body(reply.usage)})
    chunks[-1]["gate"] = reply.gate
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _chunk(envelope: Envelope, index: int, content: str | dict[str, str], reason: str | None) -> dict[str, Any]:
    if envelope.chat:
        delta = content if isinstance(content, dict) else ({"content": content} if content else {})
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
    else:
        choice = {"index": index, "text": content, "logprobs": None, "finish_reason": reason}
    return {**envelope.head(chunk=True), "choices": [choice]}


def validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    """A readable message naming the first invalid field, and that field as OpenAI's ``param``."""
    error = errors[0]
    kind = error.get("type")
    loc = [part for part in error.get("loc", ()) if part != "body"]
    if kind == "json_invalid":
        detail = error.get("ctx", {}).get("error", "invalid JSON")
        return f"the request body is not valid JSON: {detail} (at character {loc[0] if loc else 0})", None
    if not loc:
        return _not_an_object(error), None
    param = _param_name(loc)
    if kind == "extra_forbidden":
        return _unsupported(loc, param), param
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    if kind != "missing" and isinstance(value, str | int | float | bool | None):
        shown = json.dumps(value)
        message += f"; got {shown if len(shown) <= 80 else shown[:77] + '...'}"
    return f"{param}: {message}", param


def _not_an_object(error: Any) -> str:
    value = error.get("input")
    if error.get("type") == "missing" or value in (None, b""):
        got = "an empty body"
    elif isinstance(value, bytes):  # FastAPI parses JSON only when the content type says so
        got = "a body that is not declared JSON (send the header 'Content-Type: application/json')"
    else:
        got = f"a JSON {type(value).__name__}"
    return f"the request body must be a JSON object of completion parameters; got {got}"


def _unsupported(loc: list[Any], param: str) -> str:
    name = str(loc[-1])
    if name in UNSUPPORTED:
        return f"{param} is not supported: {UNSUPPORTED[name]}"
    where = GateOptions if loc[0] == "gate" else None
    valid = sorted(where.model_fields) if where else None
    hint = f"; valid gate options: {valid}" if valid else "; see the gate's /docs for the supported parameters"
    return f"unsupported parameter {param!r}{hint}"


def _param_name(loc: list[Any]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name
