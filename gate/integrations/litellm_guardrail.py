"""The gate as a LiteLLM proxy guardrail (configured as ``gate.litellm_guardrail.ConfidenceGuardrail``).

For teams that already run the LiteLLM proxy (see ``docs/litellm_guardrail.md`` for the ``config.yaml``):

- ``pre_call``: the familiarity precheck on the last user message; an unfamiliar question is answered with
  the abstain message and never reaches the model (LiteLLM's passthrough block: a 200 completion whose
  ``finish_reason`` is ``content_filter``).
- ``post_call``: the assessment of the model's answer, then answer / hedge / abstain exactly as
  ``gate serve`` renders it (:meth:`gate.server.policy.Policy.render`), with the ``gate`` object as an extra
  top-level field of the completion and ``x-gate-*`` response headers.
- streaming: buffered: every chunk is collected, the answer is assessed once, and the final content goes
  out as new chunks with ``gate`` on the last one.
- requests the gate does not assess pass as the model answered them, with the verdict ``not_assessed`` and
  the reason in ``gate``, as in ``gate serve``: an answer that calls tools, JSON output, image/audio/file
  input, a conversation that ends with a tool result. With tools offered the pre-call hook never abstains:
  the model may look up what it does not know.
- ``tool_calls: assess``: an answer that calls tools is judged as ``gate serve`` judges it, by how often samples
  offered the same tools make the same calls (:meth:`gate.pipeline.Gate.assess_tool_calls`); calls nobody
  agrees with are withheld in ``enforce`` (the abstain message instead, ``finish_reason: stop``).

The gate is configured like ``gate serve`` (``GATE_*`` variables, ``GATE_CONFIG``), and the guardrail's
``litellm_params`` may carry a ``gate_config`` mapping of the same settings, which wins over both. It is built
once per guardrail instance on the first request. Its signals run on the gate's own model (``model``,
default the embedded Gemma 3 270M), which should be the model the proxy routes to, so that the signals and
the calibration describe the model that answered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from estimators.base import Generation, Message, Signal, ToolCall
from gate.assessment import Assessment, RequestKindName
from gate.backends.factory import create_llm
from gate.backends.litellm_client import import_litellm
from gate.config import DEFAULT_MODEL, Settings, load_settings
from gate.conversation import message_text
from gate.factory import create_gate
from gate.integrations.litellm_local import local_handler
from gate.pipeline import ANSWER_LOGPROBS, TOOL_CALL_REASON, Gate, not_assessed
from gate.server.messages import last_turn_refusal
from gate.server.policy import Policy, several_choices_refusal, unassessed, withholds
from gate.server.replies import _PIECES

# This module is imported by the LiteLLM proxy to subclass its guardrail base: litellm is needed now, and is
# imported the offline way (a plain first import fetches litellm's cost map from the internet).
litellm = import_litellm()

from litellm.integrations.custom_guardrail import CustomGuardrail  # noqa: E402
from litellm.litellm_core_utils.core_helpers import get_or_create_metadata_bucket  # noqa: E402
from litellm.types.guardrails import GuardrailEventHooks  # noqa: E402
from litellm.types.utils import Delta, ModelResponse, ModelResponseStream, StreamingChoices  # noqa: E402

logger = logging.getLogger(__name__)

CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
"""LiteLLM call types the guardrail gates; any other call (embeddings, text completions...) passes untouched."""
METADATA_KEY = "llm_gate"
"""Where the pre-call hook leaves its work for the post-call hook, in the request's LiteLLM metadata."""


class ConfidenceGuardrail(CustomGuardrail):
    """Answer, hedge or abstain on every chat completion the LiteLLM proxy serves.

    LiteLLM passes every ``litellm_params`` key of the guardrail's config as a keyword argument;
    ``gate_config`` is ours (gate settings, as in ``gate serve``'s YAML), ``gate`` injects a ready gate
    (tests), ``request_logprobs`` asks the upstream for the answer's log-probabilities when the client did
    not (they feed the free signals, and are removed again before the client sees the response).
    """

    def __init__(
        self,
        *,
        gate_config: Mapping[str, Any] | None = None,
        gate: Gate | None = None,
        request_logprobs: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("supported_event_hooks", [GuardrailEventHooks.pre_call, GuardrailEventHooks.post_call])
        super().__init__(**kwargs)
        self.settings: Settings = load_settings(**dict(gate_config or {}))
        self.policy = Policy.from_settings(self.settings)
        self.request_logprobs = request_logprobs
        self._gate = gate
        self._gate_lock = asyncio.Lock()
        # Marks the pre-call record as ours: a client's own metadata cannot pose as a passed precheck.
        self._token = secrets.token_hex(16)

    async def gate(self) -> Gate:
        """The gate, built on first use (reading the artifact and the index takes a moment)."""
        async with self._gate_lock:
            if self._gate is None:
                self._gate = await asyncio.to_thread(create_gate, self.settings)
                logger.info("llm-gate guardrail ready: %s (%s)", self.settings.model, self._gate.calibration.id)
        return self._gate

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict | None:
        """Run the familiarity precheck; an unfamiliar question gets the abstain message instead of an answer."""
        if call_type not in CHAT_CALL_TYPES or self.settings.mode == "off":
            return data
        if self.settings.mode == "enforce" and (refusal := _last_turn_refusal(data)) is not None:
            raise HTTPException(status_code=400, detail={"error": refusal})
        prompt = _chat_prompt(data)
        if prompt is None:
            return data
        if (refusal := several_choices_refusal(int(data.get("n") or 1), self.settings.mode)) is not None:
            raise HTTPException(status_code=400, detail={"error": refusal})
        record: dict[str, Any] = {"token": self._token, "precheck": {}, "added_logprobs": False}
        if self.request_logprobs and not data.get("logprobs"):
            data["logprobs"], data["top_logprobs"] = True, ANSWER_LOGPROBS
            record["added_logprobs"] = True
        get_or_create_metadata_bucket(data)[1][METADATA_KEY] = record
        if self.settings.mode != "enforce":  # observe never withholds an answer
            return data
        if _offers_tools(data) or _passed_on(data, tool_calls=False) is not None:
            return data  # a model with tools may look up what it does not know; an unassessed request is passed on
        precheck = await (await self.gate()).precheck(prompt)
        record["precheck"] = {key: signal.model_dump(mode="json") for key, signal in precheck.signals.items()}
        if precheck.abstain is not None:
            # LiteLLM answers this with a 200 completion of the message; a stream of it still passes the
            # streaming hook, which must deliver it as it is (with this view) rather than assess it
            abstained = self.policy.render("enforce", precheck.abstain)
            record["abstained"] = abstained.gate
            self.raise_passthrough_exception(
                violation_message=abstained.texts[0], request_data=data, detection_info=abstained.gate
            )
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        """Assess the model's answer and deliver it as answered, hedged or withheld, with the gate's view."""
        if self.settings.mode == "off" or not isinstance(response, ModelResponse) or len(response.choices) != 1:
            return response  # several choices: the pre-call hook refused them unless the gate is off
        choice = response.choices[0]
        message = getattr(choice, "message", None)
        answer = getattr(message, "content", None)
        record = self._record(data)
        calls = _message_tool_calls(message)
        verdict = _passed_on(data, tool_calls=bool(calls))
        if calls and self.settings.tool_calls == "assess" and (prompt := _chat_prompt(data)) is not None:
            generation = Generation(text=answer or "", tool_calls=calls, finish_reason=choice.finish_reason)
            reply = await self._assessed_tool_calls(prompt, generation, data)
            if withholds(self.settings.mode, reply.assessment):  # the calls are not made: the abstain message is
                choice.message.content, choice.message.tool_calls = reply.texts[0], None  # type: ignore[union-attr]
                choice.finish_reason = "stop"  # type: ignore[union-attr]
            view, headers = reply.gate, reply.headers
        elif verdict is not None:
            view, headers = await self._unassessed_view(data, answer or "", choice.finish_reason, verdict)
        elif (prompt := _chat_prompt(data)) is None or not isinstance(answer, str):
            return response
        else:
            assessment = await self._assess(prompt, answer, _token_logprobs(choice), record)
            reply = self.policy.render(self.settings.mode, assessment)
            if reply.texts[0] != assessment.answer:  # hedged or withheld; an answer passes exactly as written
                choice.message.content = reply.texts[0]  # type: ignore[union-attr]
            if withholds(self.settings.mode, assessment):
                choice.finish_reason = "stop"  # type: ignore[union-attr]
            view, headers = reply.gate, reply.headers
        if record.get("added_logprobs"):
            choice.logprobs = None  # type: ignore[union-attr]
        response.gate = view  # type: ignore[attr-defined]
        hidden = response._hidden_params
        hidden["additional_headers"] = {**(hidden.get("additional_headers") or {}), **headers}
        return response

    async def async_post_call_success_deployment_hook(self, request_data: dict, response: Any, call_type: Any) -> Any:
        """Nothing: the proxy's post-call hook gates the response (this one would gate it a second time).

        LiteLLM runs a model-level guardrail's post-call once inside the router (this hook) and again in the
        proxy, and only marks the first run as done for guardrails built on ``apply_guardrail``.
        """
        return None

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: AsyncIterator[Any], request_data: dict
    ) -> AsyncGenerator[Any, None]:
        """Buffered streaming: collect the whole answer, assess it once, then stream the final content."""
        chunks = [chunk async for chunk in response]
        streamed = _StreamedAnswer.collect(chunks)
        prompt = _chat_prompt(request_data)
        record = self._record(request_data)
        verdict = None if streamed is None else _passed_on(request_data, tool_calls=streamed.tool_calls)
        if streamed is None or self.settings.mode == "off":
            out: list[Any] = chunks
        elif "abstained" in record:  # LiteLLM streams the pre-call hook's abstain message: deliver it as it is
            out = streamed.original(record["abstained"], drop_logprobs=False)
        elif streamed.tool_calls and self.settings.tool_calls == "assess" and prompt is not None:
            out = await self._gated_tool_call_stream(prompt, streamed, request_data, record)
        elif verdict is not None:
            view, _ = await self._unassessed_view(request_data, streamed.text, streamed.finish_reason, verdict)
            out = streamed.original(view, drop_logprobs=bool(record.get("added_logprobs")))
        elif prompt is None:
            out = chunks
        else:
            out = await self._gated_stream(prompt, streamed, record)
        for chunk in out:
            yield chunk

    async def _gated_stream(
        self, prompt: list[Message], streamed: _StreamedAnswer, record: Mapping[str, Any]
    ) -> list[ModelResponseStream]:
        assessment = await self._assess(prompt, streamed.text, streamed.logprobs, record)
        reply = self.policy.render(self.settings.mode, assessment)
        [content], view = reply.texts, reply.gate
        if content == assessment.answer:  # answered (or observed): the model's own chunks, with the gate's view
            return streamed.original(view, drop_logprobs=bool(record.get("added_logprobs")))
        withheld = withholds(self.settings.mode, assessment)
        return streamed.rebuild(content, "stop" if withheld else streamed.finish_reason, view)

    async def _gated_tool_call_stream(
        self, prompt: list[Message], streamed: _StreamedAnswer, data: Mapping[str, Any], record: Mapping[str, Any]
    ) -> list[ModelResponseStream]:
        generation = Generation(text=streamed.text, tool_calls=streamed.calls(), finish_reason=streamed.finish_reason)
        reply = await self._assessed_tool_calls(prompt, generation, data)
        if withholds(self.settings.mode, reply.assessment):
            return streamed.rebuild(reply.texts[0], "stop", reply.gate)
        return streamed.original(reply.gate, drop_logprobs=bool(record.get("added_logprobs")))

    async def _assessed_tool_calls(
        self, prompt: list[Message], generation: Generation, data: Mapping[str, Any]
    ) -> _ToolCallReply:
        """``tool_calls: assess``: the calls judged by how often samples, offered the same tools, make them too."""
        options = {name: data[name] for name in _TOOL_FIELDS if data.get(name) is not None}
        assessment = await (await self.gate()).assess_tool_calls(prompt, generation, options=options)
        reply = self.policy.render(self.settings.mode, assessment)
        return _ToolCallReply(assessment, reply.texts, reply.gate, reply.headers)

    async def _assess(
        self, prompt: list[Message], answer: str, logprobs: list[float] | None, record: Mapping[str, Any]
    ) -> Assessment:
        known = {key: Signal.model_validate(value) for key, value in record.get("precheck", {}).items()}
        return await (await self.gate()).assess(
            prompt,
            answer=answer.strip(),
            logprobs=logprobs,
            signals=self.settings.signals,
            cascade=self.policy.cascade,
            precheck=False,
            budget=self.policy.budget,
            known=known,
        )

    async def _unassessed_view(
        self, data: Mapping[str, Any], answer: str, finish_reason: str | None, verdict: tuple[RequestKindName, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The ``gate`` view and headers of an answer passed on unassessed (the content stays the model's)."""
        kind, reason = verdict
        generation = Generation(text=answer, finish_reason=finish_reason)
        calibration = (await self.gate()).calibration.id
        assessment = not_assessed(_question(data), generation, kind=kind, reason=reason, calibration=calibration)
        reply = self.policy.render(self.settings.mode, assessment)
        return reply.gate, reply.headers

    def _record(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """What this guardrail's pre-call hook left on the request (nothing when it did not run)."""
        for bucket in (data.get("metadata"), data.get("litellm_metadata")):
            record = bucket.get(METADATA_KEY) if isinstance(bucket, dict) else None
            if isinstance(record, dict) and secrets.compare_digest(str(record.get("token")), self._token):
                return record
        return {}


class _StreamedAnswer:
    """A buffered chat stream: its text, log-probs and finish reason, and how to stream it or a new text.

    The gate's view rides on the chunk that closes the answer (the one with the finish reason): chunks after
    it, such as the usage chunk LiteLLM adds for its own accounting and strips again, are kept as they are.
    """

    def __init__(
        self, chunks: list[ModelResponseStream], logprobs: list[float], finish_reason: str, *, tool_calls: bool
    ) -> None:
        self.chunks, self.finish_reason, self.tool_calls = chunks, finish_reason, tool_calls
        self.text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
        self.logprobs = logprobs or None
        ends = [i for i, chunk in enumerate(chunks) if any(choice.finish_reason for choice in chunk.choices)]
        self.end = ends[-1] if ends else len(chunks) - 1

    @classmethod
    def collect(cls, chunks: Sequence[Any]) -> _StreamedAnswer | None:
        """The answer of a one-choice stream (text, tool calls or both); ``None`` for several choices."""
        if not chunks or not all(isinstance(chunk, ModelResponseStream) for chunk in chunks):
            return None
        logprobs: list[float] = []
        finish_reason, tool_calls = "stop", False
        for choice in (choice for chunk in chunks for choice in chunk.choices):
            if choice.index != 0:
                return None
            tool_calls = tool_calls or bool(choice.delta.tool_calls or choice.delta.function_call)
            logprobs += _token_logprobs(choice) or []
            finish_reason = choice.finish_reason or finish_reason
        return cls(list(chunks), logprobs, finish_reason, tool_calls=tool_calls)

    def calls(self) -> tuple[ToolCall, ...]:
        """The tool calls the stream made, put together from their ``delta.tool_calls`` pieces (by index)."""
        parts: dict[int, dict[str, str]] = {}
        for choice in (choice for chunk in self.chunks for choice in chunk.choices):
            for piece in choice.delta.tool_calls or ():
                part = parts.setdefault(piece.index or 0, {"id": "", "name": "", "arguments": ""})
                part["id"] = piece.id or part["id"]
                if piece.function is not None:
                    part["name"] = piece.function.name or part["name"]
                    part["arguments"] += piece.function.arguments or ""
        return tuple(ToolCall(**parts[index]) for index in sorted(parts))

    def original(self, view: dict[str, Any], *, drop_logprobs: bool) -> list[ModelResponseStream]:
        """The model's own chunks with the gate's view (log-probs the client did not ask for removed)."""
        if drop_logprobs:
            for choice in (choice for chunk in self.chunks for choice in chunk.choices):
                choice.logprobs = None
        self.chunks[self.end].gate = view  # type: ignore[attr-defined]
        return self.chunks

    def rebuild(self, content: str, finish_reason: str, view: dict[str, Any]) -> list[ModelResponseStream]:
        """``content`` as chunks in OpenAI's order: the role, the text piece by piece, the finish reason."""
        deltas = [Delta(role="assistant", content=""), *(Delta(content=piece) for piece in _PIECES.findall(content))]
        chunks = [self._chunk(delta, None) for delta in deltas]
        last = self._chunk(Delta(), finish_reason)
        if (usage := getattr(self.chunks[self.end], "usage", None)) is not None:
            last.usage = usage  # type: ignore[attr-defined]
        last.gate = view  # type: ignore[attr-defined]
        return [*chunks, last, *self.chunks[self.end + 1 :]]

    def _chunk(self, delta: Delta, finish_reason: str | None) -> ModelResponseStream:
        first = self.chunks[0]
        return ModelResponseStream(
            id=first.id,
            created=first.created,
            model=first.model,
            system_fingerprint=first.system_fingerprint,
            choices=[StreamingChoices(index=0, delta=delta, finish_reason=finish_reason)],
        )


@dataclass(frozen=True)
class _ToolCallReply:
    assessment: Assessment
    texts: list[str]
    gate: dict[str, Any]
    headers: dict[str, str]


# The request fields the samples of ``tool_calls: assess`` are drawn with: the same tools, offered the same way.
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


def _message_tool_calls(message: Any) -> tuple[ToolCall, ...]:
    """A completion message's tool calls in the estimators' shape (``()`` when it makes none)."""
    calls = []
    for call in getattr(message, "tool_calls", None) or ():
        function = getattr(call, "function", None)
        name = getattr(function, "name", None) or ""
        calls.append(ToolCall(id=call.id or "", name=name, arguments=getattr(function, "arguments", None) or ""))
    return tuple(calls)


def _offers_tools(data: Mapping[str, Any]) -> bool:
    return bool(data.get("tools")) and data.get("tool_choice") != "none"


def _passed_on(data: Mapping[str, Any], *, tool_calls: bool) -> tuple[RequestKindName, str] | None:
    """Why this chat answer is passed on unassessed (as ``gate serve`` decides it), or ``None``."""
    if tool_calls:
        return "tool_call", TOOL_CALL_REASON
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, Mapping) for m in messages):
        return None
    response_format = data.get("response_format")
    return unassessed(messages, response_format if isinstance(response_format, Mapping) else None)


def _last_turn_refusal(data: Mapping[str, Any]) -> str | None:
    """Why the conversation cannot be answered through the gate (it ends with an assistant turn...), or ``None``."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], Mapping):
        return None
    return last_turn_refusal(messages)


def _question(data: Mapping[str, Any]) -> str:
    """The text of the last user turn ('' when there is none)."""
    users = [m for m in data.get("messages") or () if isinstance(m, Mapping) and m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def _chat_prompt(data: Mapping[str, Any]) -> list[Message] | None:
    """The request's messages as plain text, or ``None`` when there is no answer to a user's text to assess."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    prompt: list[Message] = []
    for message in messages:
        if not isinstance(message, Mapping):
            return None
        prompt.append({"role": str(message.get("role")), "content": message_text(message)})
    last = prompt[-1]
    # a final answer follows a user's turn or a tool's result (the pipeline grounds it on that result)
    has_question = any(m["role"] == "user" and m["content"].strip() for m in prompt)
    answerable = last["role"] == "tool" or (last["role"] == "user" and last["content"].strip())
    return prompt if has_question and answerable else None


def _token_logprobs(choice: Any) -> list[float] | None:
    """The answer's per-token log-probs from an OpenAI-shaped choice (``None`` when it carries none)."""
    logprobs = getattr(choice, "logprobs", None)
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else getattr(logprobs, "content", None)
    if not content:
        return None
    values = [item.get("logprob") if isinstance(item, Mapping) else getattr(item, "logprob", None) for item in content]
    return [float(value) for value in values if value is not None] or None


def __getattr__(name: str) -> Any:
    """``local_provider``: the embedded model as litellm's custom provider, for ``custom_provider_map``."""
    if name == "local_provider":
        return _local_provider()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _local_provider() -> litellm.CustomLLM:
    """One handler per process, built when the proxy's config asks for it (never at import)."""
    settings = load_settings(model=DEFAULT_MODEL)
    return local_handler(create_llm(settings))  # type: ignore[arg-type,no-any-return]


__all__ = ["ConfidenceGuardrail"]
