"""OpenAI's structured chat-completions fields: tools, tool_choice, response_format, prediction, stop, maps.

Each is checked for its type (a wrong type is a 400 naming the field) and forwarded as the client sent it.
Values whose set OpenAI keeps extending (``service_tier``, ``reasoning_effort``...) are checked as strings in
:mod:`gate.server.wire` and judged by the upstream; objects whose documented fields are checked here and
whose newer fields pass through are ``_Open``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""OpenAI's rule for function and schema names."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class FunctionDefinition(_Open):
    """A function the model may call: its name, what it does, and its parameters as a JSON schema."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    """One entry of ``tools``."""

    type: Literal["function"]
    function: FunctionDefinition

    @field_validator("type", mode="before")
    @classmethod
    def _function_tools_only(cls, kind: Any) -> Any:
        if kind == "custom":
            raise ValueError(
                "custom tools (free-form input) are not passed through: the gate relays function calls; "
                "define the tool as {'type': 'function', 'function': {...}}"
            )
        return kind


class ToolName(_Strict):
    name: str = Field(min_length=1)


class NamedToolChoice(_Strict):
    """``{"type": "function", "function": {"name": ...}}``: the model must call this function."""

    type: Literal["function"]
    function: ToolName


class AllowedTools(_Open):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]] = Field(min_length=1)


class AllowedToolsChoice(_Strict):
    """``{"type": "allowed_tools", "allowed_tools": {...}}``: the model may call only these tools."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


ToolChoiceMode = Literal["none", "auto", "required"]


def check_tool_choice(value: Any) -> Any:
    """``tool_choice`` as OpenAI takes it: a mode, a named function, or allowed tools (else ``ValueError``)."""
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise ValueError("tool_choice must be 'none', 'auto', 'required' or an object")
        return value
    if not isinstance(value, dict):
        raise ValueError("tool_choice must be 'none', 'auto', 'required' or an object")
    kinds: dict[Any, type[BaseModel]] = {"function": NamedToolChoice, "allowed_tools": AllowedToolsChoice}
    model = kinds.get(value.get("type"))
    if model is None:
        raise ValueError(f"tool_choice.type must be 'function' or 'allowed_tools'; got {value.get('type')!r}")
    return model.model_validate(value).model_dump(exclude_unset=True)


class JSONSchema(_Open):
    """``response_format.json_schema``: the schema the answer must follow."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, serialize_by_alias=True)


class ResponseFormat(_Strict):
    """``{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchema | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type 'json_schema' and only with it")
        return self

    @property
    def asks_json(self) -> bool:
        """Whether the answer is to be JSON rather than prose."""
        return self.type != "text"


class TextContent(_Strict):
    type: Literal["text"]
    text: str


class Prediction(_Strict):
    """Predicted output (``{"type": "content", "content": ...}``): a latency hint, the answer is the model's."""

    type: Literal["content"]
    content: str | list[TextContent]


def _check_stop(value: Any) -> Any:
    strings = [value] if isinstance(value, str) else value
    if value is not None and (
        not isinstance(strings, list)
        or not 1 <= len(strings) <= 4
        or not all(isinstance(s, str) and s for s in strings)
    ):
        raise ValueError("stop must be a non-empty string or a list of 1 to 4 non-empty strings")
    return value


Stop = Annotated[str | list[str] | None, BeforeValidator(_check_stop)]
"""``stop``: one sequence or up to four."""


def _check_bias(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("logit_bias must be an object mapping token ids to biases")
    for token, bias in value.items():
        if not token.isdigit():
            raise ValueError(f"logit_bias keys are token ids (digits as a string); got {token!r}")
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise ValueError(f"logit_bias[{token!r}] must be a number in [-100, 100]; got {bias!r}")
    return value


TokenBias = Annotated[dict[str, int | float] | None, BeforeValidator(_check_bias)]
"""``logit_bias``: token id (as a string) -> bias in [-100, 100]."""

Metadata = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], Annotated[str, StringConstraints(max_length=512)]],
    Field(max_length=16),
]
"""``metadata``: up to 16 string pairs (keys up to 64 characters, values up to 512)."""
