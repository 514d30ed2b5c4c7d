"""Per-request gate options, bounded by the server's configuration, and what each decision does to the reply.

A request may carry an extra body field ``gate`` (all keys optional; unknown keys or values are a 400)::

    "gate": {
        "mode": "off" | "observe" | "enforce",  # default: the server's `mode`; others: `allowed_modes` (else 403)
        "estimators": ["logprob_mean", ...],      # a subset of the server's signals (narrow, never widen)
        "cascade": true,                          # may turn the cost cascade on, never off
        "budget": {"max_calls": 4, "max_tokens": 2000, "max_seconds": 5.0},  # at most the server's limits
        "claims": "off" | "annotate" | "mark" | "strike"  # long answers claim by claim: as strict as the server's
    }                                                      # `claims` or stricter (privileged keys: any)

``off`` passes the request to the model without any signal; ``observe`` scores and reports but never
changes the content; ``enforce`` hedges or abstains. A request can only make the gate do less than the
operator allows. By default (``allowed_modes: [enforce]``, ``include_original: false``) a client can neither
switch enforcement off nor read a withheld answer; a key in ``privileged_api_keys`` may pick any mode and
always gets the model's own answer in ``gate.original``. ``max_risk`` is refused: the calibration
artifact's thresholds hold for the one risk target they were fitted for, and moving them per request would
claim a guarantee nobody checked.

Some requests are passed on without an assessment (verdict ``not_assessed``, with the reason):
:func:`unassessed` says which before anything is generated (JSON output, image/audio/file input, a
conversation that ends with a tool result), and the pipeline says so of an answer that calls tools.
With tools offered the gate never abstains before the model answers: a model that can look things up is not
bounded by what it knows. ``docs/openai_fields.md`` lists what happens to every OpenAI field.

``Policy`` plans and renders, and nothing else: it calls no model and does no I/O. The request handler
(:mod:`gate.server.handler`) plans with it, generates or assesses, then renders the reply with it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from estimators.base import Generation, Message, TokenLogprob, total_cost
from gate.assessment import Assessment, RequestKindName
from gate.claim_render import MARK_FIELDS, NOTE_FIELDS, STRICTNESS, ClaimPolicy, check_template, marked, struck
from gate.config import GateMode, Settings
from gate.errors import ConfigError
from gate.factory import budget_from
from gate.pipeline import Budget
from gate.server.replies import Reply
from gate.server.wire import (
    BadRequestError,
    ChatRequest,
    CompletionRequest,
    ForbiddenError,
    GateOptions,
    RequestBudget,
    Scrubber,
)

TEMPLATE_FIELDS = frozenset({"reason", "reasons"})
NO_REASON = "the gate's confidence in an answer was too low"

Answered = Assessment | Sequence[Generation]
"""What a request's generation step yields: the gate's assessment, or (mode ``off``) the model's generations."""


@dataclass(frozen=True)
class Plan:
    """How one request is gated, after its options were checked against the server's bounds."""

    mode: GateMode
    signals: tuple[str, ...] | None
    cascade: bool
    budget: Budget
    original: bool = False  # the model's own answer goes back in gate.original
    unassessed: tuple[RequestKindName, str] | None = None  # passed on unassessed: the kind and the reason
    tools: bool = False  # the model may answer with tool calls
    logprobs: int | None = None  # the client asked for log-probs with this many alternatives
    claims: ClaimPolicy = "off"  # what a long answer judged claim by claim shows (gate.claim_render)

    @property
    def precheck(self) -> bool:
        """Only ``enforce`` may abstain before answering (``observe`` must return the model's answer), and
        not when tools are offered (the model may look up what it does not know)."""
        return self.mode == "enforce" and not self.tools


def several_choices_refusal(n: int, mode: GateMode) -> str | None:
    """Why ``n`` choices cannot be served in ``mode`` (the gate assesses one answer), or ``None`` when they can."""
    if n == 1 or mode == "off":
        return None
    return (
        f"n must be 1 while the gate is on (mode {mode!r}): the gate assesses one answer per request; "
        "several choices are served only with gate mode 'off'"
    )


def unassessed(
    messages: Sequence[Message], response_format: Mapping[str, Any] | None
) -> tuple[RequestKindName, str] | None:
    """Why a chat request's answer is passed on without an assessment, as ``(kind, reason)``; ``None`` if it is not.

    ``messages`` as the client sent them (content parts included); the gate's signals read text answers, so
    JSON output and input they cannot see are passed on. The answer to a tool result goes to the pipeline,
    which judges it against the tool's text where PACE is configured and otherwise passes it with the reason.
    """
    format_type = response_format.get("type") if response_format else None
    if format_type in ("json_object", "json_schema"):
        return "non_factual", f"the client asked for JSON output (response_format {format_type}); it is not assessed"
    parts = sorted(
        {
            str(part.get("type"))
            for message in messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if isinstance(part, Mapping) and part.get("type") not in ("text", "refusal")
        }
    )
    if parts:
        return "grounded", f"the request carries {', '.join(parts)} content, which the gate's signals cannot read"
    return None


def withholds(mode: GateMode, assessment: Assessment) -> bool:
    """Whether the client gets the abstain message instead of the model's answer."""
    return mode == "enforce" and assessment.decision == "abstain"


@dataclass(frozen=True)
class Policy:
    """The operator's defaults and bounds for requests, and the texts that hedge and abstain write."""

    model: str
    max_answer_tokens: int
    mode: GateMode
    allowed_modes: frozenset[GateMode]
    cascade: bool
    budget: Budget
    hedge_message: str
    hedge_position: Literal["prefix", "suffix"]
    abstain_message: str
    include_original: bool
    scrubber: Scrubber = field(default_factory=Scrubber)
    claims: ClaimPolicy = "off"
    claim_mark: str = "[unverified: {claim}]"
    claim_strike_note: str = "Note: {count} statement(s) that could not be verified were removed."

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy of ``settings`` (a bad template is refused); a request may always ask for the default mode."""
        _check_template(settings.abstain_message)
        check_template(settings.claim_mark, setting="claim_mark", fields=MARK_FIELDS, required="claim")
        check_template(settings.claim_strike_note, setting="claim_strike_note", fields=NOTE_FIELDS)
        return cls(
            model=settings.model,
            max_answer_tokens=settings.max_answer_tokens,
            mode=settings.mode,
            allowed_modes=frozenset(settings.allowed_modes) | {settings.mode},
            cascade=settings.cascade,
            budget=budget_from(settings),
            hedge_message=settings.hedge_message,
            hedge_position=settings.hedge_position,
            abstain_message=settings.abstain_message,
            include_original=settings.include_original,
            scrubber=Scrubber.from_settings(settings),
            claims=settings.claims,
            claim_mark=settings.claim_mark,
            claim_strike_note=settings.claim_strike_note,
        )

    def plan(
        self, request: ChatRequest | CompletionRequest, *, signals: Sequence[str], privileged: bool = False
    ) -> Plan:
        """Check a request against the bounds; ``signals`` are the keys the gate computes.

        ``privileged``: the client's key is in ``privileged_api_keys``: any mode, and the original answer.
        """
        self._check_served(request)
        options = request.gate or GateOptions()
        mode = options.mode or self.mode
        if mode not in self.allowed_modes and not privileged:
            allowed = sorted(self.allowed_modes)
            raise ForbiddenError(
                f"gate mode {mode!r} is not allowed for this client: the server's allowed_modes setting permits "
                f"{allowed} (keys in privileged_api_keys may pick any mode)",
                param="gate.mode",
                code="mode_not_allowed",
            )
        if (refusal := several_choices_refusal(request.n, mode)) is not None:
            raise BadRequestError(refusal, param="n")
        if options.cascade is False and self.cascade:
            raise BadRequestError(
                "gate.cascade: a request may turn the cost cascade on, not off (that would spend more than the "
                "server allows)",
                param="gate.cascade",
            )
        chat = request if isinstance(request, ChatRequest) else None
        return Plan(
            mode=mode,
            signals=_narrowed(options.estimators, signals),
            cascade=self.cascade or bool(options.cascade),
            budget=_lowered(options.budget, self.budget),
            original=self.include_original or privileged,
            unassessed=_unassessed_request(chat) if chat else None,
            tools=request.offers_tools(),
            logprobs=(chat.top_logprobs or 0) if chat and chat.logprobs else None,
            claims=self._claims(options.claims, privileged=privileged),
        )

    def _claims(self, asked: ClaimPolicy | None, *, privileged: bool) -> ClaimPolicy:
        """The request's claim policy: the server's, or one at least as strict (privileged keys: any)."""
        if asked is None:
            return self.claims
        if self.claims == "off" and asked != "off":
            raise BadRequestError(
                f"gate.claims: {asked!r} needs the claim judge, and this server runs with claims: off",
                param="gate.claims",
            )
        if STRICTNESS[asked] < STRICTNESS[self.claims] and not privileged:
            raise ForbiddenError(
                f"gate.claims {asked!r} would show more of an unsupported claim than the server's {self.claims!r}; "
                f"a request may ask for {[p for p in STRICTNESS if STRICTNESS[p] >= STRICTNESS[self.claims]]}",
                param="gate.claims",
                code="claims_not_allowed",
            )
        return asked

    def render(
        self,
        mode: GateMode,
        result: Answered,
        *,
        original: bool | None = None,
        logprobs: int | None = None,
        claims: ClaimPolicy | None = None,
    ) -> Reply:
        """What the client gets: from an assessment, or from the generations mode ``off`` passes through.

        ``original``: whether ``gate.original`` holds the model's own answer (default: ``include_original``).
        ``logprobs``: the client asked for the answer's log-probs with this many alternatives; it gets them
        when its content is the model's own answer (not when hedged or withheld).
        ``claims``: what a long answer judged claim by claim shows (default: the server's ``claims``).
        """
        # An upstream may quote the key it was sent in its answer: secrets are masked in the content too.
        secret_free = self.scrubber.secret_free
        if not isinstance(result, Assessment):
            reasons = [g.finish_reason or "stop" for g in result]
            texts = [secret_free(g.text.strip()) for g in result]  # stripped as the pipeline strips a gated answer
            calls = [g.tool_calls for g in result]
            tokens = [_shown_tokens(g.tokens, logprobs) for g in result]
            return Reply(texts, reasons, total_cost(result), {"mode": mode}, {"x-gate-mode": mode}, calls, tokens)
        reason = "stop" if withholds(mode, result) else result.finish_reason or "stop"
        shown = self.include_original if original is None else original
        view, headers = self._view(result, mode, original=shown), _headers(result, mode)
        policy = self.shown_claims(mode, self.claims if claims is None else claims)
        if result.claims is not None:
            view["claims_policy"] = policy
            view["claims"] = self.scrubber.view(_claims_view(result, mode, policy, original=shown))
        content = self._content(result, mode, policy)
        unchanged = content == result.answer
        calls = [result.tool_calls if unchanged else ()]
        tokens = [_shown_tokens(result.answer_tokens, logprobs) if unchanged else None]
        return Reply([secret_free(content)], [reason], result.answer_cost, view, headers, calls, tokens)

    def _check_served(self, request: ChatRequest | CompletionRequest) -> None:
        """Refuse a model this gate does not serve, or an answer longer than the operator allows."""
        if request.model != self.model:
            raise BadRequestError(
                f"model {request.model!r} is not served here; this gate serves {self.model!r}",
                param="model",
                code="model_not_found",
            )
        max_tokens = request.answer_tokens()
        if max_tokens is not None and max_tokens > self.max_answer_tokens:
            limit = self.max_answer_tokens
            raise BadRequestError(
                f"max_tokens {max_tokens} is above this server's limit of {limit}", param="max_tokens"
            )

    @staticmethod
    def shown_claims(mode: GateMode, claims: ClaimPolicy) -> ClaimPolicy:
        """The claim policy in effect: ``observe`` never changes the text, so it only annotates."""
        return "annotate" if mode == "observe" and claims != "off" else claims

    def claim_text(self, assessment: Assessment, claims: ClaimPolicy) -> str | None:
        """A long answer as ``claims`` shows it (enforce); ``None`` when it abstains (no claim kept)."""
        answer = assessment.answer
        if answer is None or assessment.decision == "abstain" or not assessment.claims:
            return None
        if claims == "mark":
            return marked(answer, assessment.claims, self.claim_mark)
        if claims == "strike":
            return struck(answer, assessment.claims, self.claim_strike_note)
        return answer

    def _content(self, assessment: Assessment, mode: GateMode, claims: ClaimPolicy = "off") -> str:
        """The text the client gets: unchanged, hedged, or replaced by the abstain message; a long answer judged
        claim by claim: annotated (unchanged), marked or struck, and withheld when no claim is kept."""
        answer = assessment.answer
        if answer is not None and assessment.claims and mode == "enforce":
            text = self.claim_text(assessment, claims)
            if text is not None:
                return text
        if answer is not None and (mode == "observe" or assessment.decision in ("answer", "not_assessed")):
            return answer
        if answer is not None and assessment.tool_calls and assessment.decision == "hedge":
            return answer  # a tool call has no text to hedge: it goes out as made, the gate object says hedge
        if answer is not None and assessment.decision == "hedge":
            if self.hedge_position == "prefix":
                return f"{self.hedge_message}\n\n{answer}"
            return f"{answer}\n\n{self.hedge_message}"
        reasons = assessment.reasons or [NO_REASON]
        return self.abstain_message.format(reason=reasons[0], reasons="; ".join(reasons))

    def _view(self, assessment: Assessment, mode: GateMode, *, original: bool) -> dict[str, Any]:
        """The ``gate`` object (summary, mode, perhaps the model's own answer), scrubbed: errors quote the upstream."""
        view: dict[str, Any] = self.scrubber.view({**assessment.summary(), "mode": mode})
        if original:
            answer = assessment.answer
            view["original"] = None if answer is None else self.scrubber.secret_free(answer)
        return view


def _claims_view(
    assessment: Assessment, mode: GateMode, claims: ClaimPolicy, *, original: bool
) -> list[dict[str, Any]]:
    """Each claim's verdict; a claim the client does not read (struck, or in an abstained answer) without its
    text or what its evidence quotes, unless the client may see the model's own answer."""
    hidden = mode == "enforce" and not original and (claims == "strike" or assessment.decision == "abstain")
    return [
        claim.withheld_dict() if hidden and not claim.supported else claim.as_dict()
        for claim in assessment.claims or ()
    ]


def _unassessed_request(request: ChatRequest) -> tuple[RequestKindName, str] | None:
    response_format = request.response_format.model_dump() if request.response_format else None
    return unassessed(request.wire_prompt(), response_format)


def _shown_tokens(tokens: tuple[TokenLogprob, ...] | None, asked: int | None) -> tuple[TokenLogprob, ...] | None:
    """The tokens a client that asked for ``asked`` alternatives gets (the gate may have read more)."""
    if asked is None or tokens is None:
        return None
    return tuple(token.model_copy(update={"top": token.top[:asked]}) for token in tokens)


def _headers(assessment: Assessment, mode: GateMode) -> dict[str, str]:
    """``x-gate-*`` response headers (the confidence is left out when no probability exists)."""
    headers = {"x-gate-mode": mode, "x-gate-decision": assessment.decision}
    if assessment.probability is not None:
        headers["x-gate-confidence"] = f"{assessment.probability:.4f}"
    return headers


def _narrowed(wanted: list[str] | None, signals: Sequence[str]) -> tuple[str, ...] | None:
    if wanted is None:
        return None
    unknown = [key for key in wanted if key not in signals]
    if unknown:
        raise BadRequestError(
            f"gate.estimators: unknown or not served {unknown}; this server computes {list(signals)}",
            param="gate.estimators",
        )
    return tuple(dict.fromkeys(wanted))


def _lowered(asked: RequestBudget | None, limit: Budget) -> Budget:
    if asked is None:
        return limit
    lowered = limit
    for name in ("max_calls", "max_tokens", "max_seconds"):
        value, bound = getattr(asked, name), getattr(limit, name)
        if value is None:
            continue
        if bound is not None and value > bound:
            raise BadRequestError(
                f"gate.budget.{name}: {value:g} is above the server's limit of {bound:g}", param=f"gate.budget.{name}"
            )
        lowered = replace(lowered, **{name: value})
    return lowered


def _check_template(template: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            f"abstain_message is not a valid template ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    if not fields <= TEMPLATE_FIELDS:
        raise ConfigError(
            f"abstain_message uses {sorted(fields - TEMPLATE_FIELDS)}; valid placeholders: {sorted(TEMPLATE_FIELDS)}"
        )
