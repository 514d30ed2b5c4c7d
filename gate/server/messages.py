"""Chat messages as OpenAI's clients send them: roles, content parts, tool calls and tool results.

Every message is checked strictly (a wrong type is a 400 naming the field) and goes upstream as the client
sent it. The gate itself reads text: :meth:`ChatMessage.text` joins a message's text parts; image, audio
and file parts pass to the model but are invisible to the gate's signals (such a request is not assessed,
see :func:`gate.server.policy.unassessed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from estimators.base import Message

Role = Literal["system", "developer", "user", "assistant", "tool"]
PARTS_BY_ROLE = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "tool": frozenset({"text"}),
    "assistant": frozenset({"text", "refusal"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
}
"""The content parts each role may send (OpenAI's rule): only a user adds images, audio and files."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """An object whose documented fields are checked and whose newer fields pass through as they are."""

    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: str | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Open):
    data: str
    format: str


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Open):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Strict):
    type: Literal["file"]
    file: FileRef


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: str


PART_TYPES: dict[str, type[BaseModel]] = {
    "text": TextPart,
    "image_url": ImagePart,
    "input_audio": AudioPart,
    "file": FilePart,
    "refusal": RefusalPart,
}


class FunctionCall(_Strict):
    """A called function: its name and its arguments as the model's JSON text."""

    name: str = Field(min_length=1)
    arguments: str


class MessageToolCall(_Strict):
    """One tool call of an earlier assistant turn (its ``id`` is what the ``tool`` message answers)."""

    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCall


class AssistantAudio(_Strict):
    id: str


class ChatMessage(_Strict):
    """One chat message, checked per role; it goes upstream as it came (:meth:`wire`)."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = Field(default=None, min_length=1)
    tool_call_id: str | None = Field(default=None, min_length=1)
    refusal: str | None = None
    audio: AssistantAudio | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _no_function_role(cls, role: Any) -> Any:
        if role == "function":
            raise ValueError(
                "role 'function' is OpenAI's deprecated function calling; send the result as a 'tool' message "
                "with the tool_call_id of the call it answers"
            )
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _checked_parts(cls, content: Any) -> Any:
        if isinstance(content, list):
            for index, part in enumerate(content):
                _check_part(index, part)
        elif content is not None and not isinstance(content, str):
            raise ValueError("content must be a string, a list of content parts or null")
        return content

    @model_validator(mode="after")
    def _fits_its_role(self) -> ChatMessage:
        if (why := _role_problem(self)) is not None:
            raise ValueError(why)
        return self

    def text(self) -> str:
        """The message's text as the gate reads it: the string, or its text parts joined ('' when none)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part["text"] for part in self.content or () if part.get("type") == "text")

    def text_only(self) -> bool:
        """Whether the content holds nothing but text (no image, audio or file part)."""
        return not isinstance(self.content, list) or all(part.get("type") == "text" for part in self.content)

    def wire(self) -> Message:
        """The message as the client sent it (fields it left out stay out)."""
        return self.model_dump(exclude_unset=True)

    def gate_view(self) -> Message:
        """The message with its text parts joined to one string (what the gate's pipeline reads and forwards)."""
        message = self.wire()
        if isinstance(self.content, list):
            message["content"] = self.text()
        return message


def last_turn_refusal(messages: Sequence[Message]) -> str | None:
    """Why a conversation's last message cannot be answered through the gate, or ``None`` when it can.

    An answer after an assistant, system or developer turn has no user question to be judged against: passed
    on unassessed, it would let any request skip enforcement by appending such a turn, so it is refused.
    """
    role = messages[-1].get("role") if messages else None
    if role in ("user", "tool"):
        return None
    return (
        f"the last message has role {role!r}; the gate answers a user's turn or a tool result (an answer "
        "after any other turn could not be assessed, so it would skip the gate): end with the user's message"
    )


def _check_part(index: int, part: Any) -> None:
    kind = part.get("type") if isinstance(part, Mapping) else None
    model = PART_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        got = repr(kind) if isinstance(part, Mapping) else _kind(part)
        raise ValueError(f"content part {index} has type {got}; valid part types: {sorted(PART_TYPES)}")
    try:
        TypeAdapter(model).validate_python(part)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(item) for item in error["loc"])
        raise ValueError(f"content part {index} ({kind}): {where}: {error['msg']}") from None


def _role_problem(message: ChatMessage) -> str | None:
    role, content = message.role, message.content
    if message.tool_calls is not None and role != "assistant":
        return f"tool_calls belong to assistant messages, not {role!r} ones"
    if message.tool_call_id is not None and role != "tool":
        return f"tool_call_id belongs to tool messages, not {role!r} ones"
    if (message.refusal is not None or message.audio is not None) and role != "assistant":
        return f"refusal and audio belong to assistant messages, not {role!r} ones"
    if role == "tool" and message.tool_call_id is None:
        return "a tool message needs the tool_call_id of the call it answers"
    if content is None and not (role == "assistant" and (message.tool_calls or message.audio or message.refusal)):
        return f"a {role} message needs content (only an assistant turn with tool_calls may leave it null)"
    if isinstance(content, list):
        kinds, allowed = {part["type"] for part in content}, PARTS_BY_ROLE[role]
        if not kinds <= allowed:
            return f"a {role} message takes only {sorted(allowed)} content parts; got {sorted(kinds - allowed)}"
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
