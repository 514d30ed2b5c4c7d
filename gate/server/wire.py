"""The OpenAI wire format as the proxy reads it: request models, errors, and readable validation messages.

Requests are validated strictly: every OpenAI chat-completions field is typed (a wrong type is a 400 naming
it) and either forwarded upstream as the client sent it or refused with the reason and what to do instead
(``UNSUPPORTED``; the table is ``docs/openai_fields.md``). A parameter the gate does not know is refused
too, never forwarded: a misspelling is an error the client hears about, and no field can set the gate's own
upstream client. Besides OpenAI's own fields a request may carry ``gate`` options (see :class:`GateOptions`).
The replies are :mod:`gate.server.replies`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from estimators.base import Message
from gate.backends.options import FORWARDED_FIELDS
from gate.config import GateMode, Settings
from gate.errors import GateError
from gate.secrets import mask_known, upstream_secrets
from gate.server.fields import (
    Metadata,
    Prediction,
    ResponseFormat,
    Stop,
    TokenBias,
    Tool,
    check_tool_choice,
)
from gate.server.messages import ChatMessage, last_turn_refusal

ToolChoice = str | dict[str, Any]
"""``tool_choice``: a mode or an object, checked by :func:`gate.server.fields.check_tool_choice`."""

TEXT_ONLY = "the gate assesses text and returns text: hedging and abstaining rewrite text, which"
UNSUPPORTED = {
    "max_risk": "the calibration artifact's thresholds hold for the one risk target they were fitted for",
    "audio": f"{TEXT_ONLY} spoken output would bypass; ask for text (modalities ['text']) or call the model directly",
    "functions": "it is OpenAI's deprecated function calling; send the same definitions as tools "
    "([{'type': 'function', 'function': {...}}])",
    "function_call": "it is OpenAI's deprecated function calling; send tool_choice instead",
    "echo": "the gate answers the prompt as a question in a chat turn, so there is no completion of the prompt to echo",
    "suffix": "the gate answers the prompt as a question in a chat turn; insertion (suffix) is not served",
    "best_of": "the gate assesses one answer per request; send n (with gate mode 'off') to get several",
    "logprobs": "text completions return no log-probs; chat completions do (logprobs: true, top_logprobs: k)",
}
"""Why some well-known parameters are refused (other unknown parameters get a pointer to the valid ones)."""


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
    claims: Literal["off", "annotate", "mark", "strike"] | None = Field(
        default=None, description="long answers claim by claim: annotate, mark or strike (as strict as the server's)"
    )


class StreamOptions(_Strict):
    """OpenAI's ``stream_options`` (``include_obfuscation`` is accepted: the gate's chunks carry no padding)."""

    include_usage: bool = Field(default=False, strict=True)
    include_obfuscation: bool | None = Field(default=None, strict=True)


class _CompletionParams(_Strict):
    """What chat and text completion requests share."""

    model: str = Field(min_length=1)
    # strict: "10" or "yes" are not numbers or booleans; a client that sends them has a bug to hear about
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    n: int = Field(default=1, ge=1, le=16, strict=True)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, strict=True, description="end-user id, forwarded")
    seed: int | None = Field(default=None, strict=True)
    stop: Stop = None
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, strict=True)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0, strict=True)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0, strict=True)
    logit_bias: TokenBias = None
    gate: GateOptions | None = None

    def options(self) -> dict[str, Any]:
        """The client's own fields that go upstream with the answer, as it sent them (``None`` left out)."""
        sent = self.model_dump(include=set(FORWARDED_FIELDS), exclude_unset=True, by_alias=True)
        return {name: value for name, value in sent.items() if value is not None}


class ChatRequest(_CompletionParams):
    """``POST /v1/chat/completions``: every OpenAI chat field is typed here, forwarded, or refused with a reason.

    Which request the gate assesses, and which it passes unassessed, is the policy's to say
    (:func:`gate.server.policy.unassessed`); ``docs/openai_fields.md`` has the table.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    tools: list[Tool] | None = Field(default=None, min_length=1)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = Field(default=None, strict=True)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = Field(default=None, strict=True)
    top_logprobs: int | None = Field(default=None, ge=0, le=20, strict=True)
    prediction: Prediction | None = None
    metadata: Metadata | None = None
    store: bool | None = Field(default=None, strict=True)
    service_tier: str | None = Field(default=None, strict=True)
    reasoning_effort: str | None = Field(default=None, strict=True)
    verbosity: str | None = Field(default=None, strict=True)
    modalities: list[Literal["text", "audio"]] | None = Field(default=None, min_length=1)
    web_search_options: dict[str, Any] | None = Field(default=None, strict=True)
    safety_identifier: str | None = Field(default=None, strict=True)
    prompt_cache_key: str | None = Field(default=None, strict=True)
    prompt_cache_retention: str | None = Field(default=None, strict=True)

    @field_validator("messages")
    @classmethod
    def _has_a_user_turn(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        users = [message for message in messages if message.role == "user"]
        if not users:
            raise ValueError("the conversation holds no user message; the gate answers a user's turn")
        last = messages[-1]
        if (refusal := last_turn_refusal([{"role": last.role}])) is not None:
            raise ValueError(refusal)
        if last.role == "user" and last.text_only() and not last.text().strip():
            raise ValueError("the last message must be a non-empty user message (its text is blank)")
        return messages

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        value = check_tool_choice(value)
        if value != "none" and not info.data.get("tools"):
            raise ValueError("tool_choice needs tools: name the tools the model may call")
        return value

    @field_validator("parallel_tool_calls")
    @classmethod
    def _with_tools(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is not None and not info.data.get("tools"):
            raise ValueError("parallel_tool_calls needs tools")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _with_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    @field_validator("modalities")
    @classmethod
    def _text_output(cls, modalities: list[str] | None) -> list[str] | None:
        if modalities and "audio" in modalities:
            raise ValueError(f"audio output is not served: {UNSUPPORTED['audio']}")
        return modalities

    def prompt(self) -> list[Message]:
        """The messages as the gate's pipeline takes them: each as sent, text parts joined to one string."""
        return [message.gate_view() for message in self.messages]

    def wire_prompt(self) -> list[Message]:
        """The messages exactly as the client sent them (images and other parts included)."""
        return [message.wire() for message in self.messages]

    def question(self) -> str:
        """The text of the last user turn (what the audit log records as the question)."""
        return next(message.text() for message in reversed(self.messages) if message.role == "user")

    def offers_tools(self) -> bool:
        """Whether the model may answer with tool calls."""
        return bool(self.tools) and self.tool_choice != "none"

    def answer_tokens(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_CompletionParams):
    """``POST /v1/completions``; the prompt is one string, gated as a question (sent upstream as a user turn)."""

    prompt: str = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt is blank")
        return prompt

    def question(self) -> str:
        """The prompt, which the gate reads as the question."""
        return self.prompt

    def offers_tools(self) -> bool:
        """Text completions have no tools."""
        return False

    def answer_tokens(self) -> int | None:
        """The requested answer length."""
        return self.max_tokens


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
    if name in UNSUPPORTED and (len(loc) == 1 or loc[0] == "gate"):
        return f"{param} is not supported: {UNSUPPORTED[name]}"
    if loc[0] == "gate":
        return f"unsupported parameter {param!r}; valid gate options: {sorted(GateOptions.model_fields)}"
    if len(loc) == 1:
        hint = (
            "the gate forwards only the OpenAI parameters it knows (docs/openai_fields.md; the schema at /docs), "
            "so that a misspelled one is an error rather than silently dropped"
        )
    else:
        hint = "the object takes no such field (see OpenAI's API reference)"
    return f"unsupported parameter {param!r}: {hint}"


def _param_name(loc: list[Any]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name
