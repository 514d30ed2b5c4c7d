"""Per-request gate options, bounded by the server's configuration, and what each decision does to the content.

A request may carry an extra body field ``gate`` (all keys optional; unknown keys or values are a 400)::

    "gate": {
        "mode": "off" | "observe" | "enforce",  # default: the server's `mode`; only its `allowed_modes`
        "estimators": ["logprob_mean", ...],      # a subset of the server's signals (narrow, never widen)
        "cascade": true,                          # may turn the cost cascade on, never off
        "budget": {"max_calls": 4, "max_tokens": 2000, "max_seconds": 5.0}  # at most the server's limits
    }

``off`` passes the request to the model without any signal; ``observe`` scores and reports but never
changes the content; ``enforce`` hedges or abstains. A request can only make the gate do less than the
operator allows. ``max_risk`` is refused: the calibration artifact's thresholds hold for the one risk
target they were fitted for, and moving them per request would claim a guarantee nobody checked.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from estimators.base import Message, total_cost
from gate.assessment import Assessment
from gate.config import GateMode, Settings
from gate.errors import ConfigError
from gate.factory import budget_from
from gate.pipeline import Budget, Gate
from gate.server.wire import BadRequestError, GateOptions, Reply, RequestBudget

TEMPLATE_FIELDS = frozenset({"reason", "reasons"})
NO_REASON = "the gate's confidence in an answer was too low"


@dataclass(frozen=True)
class Plan:
    """How one request is gated, after its options were checked against the server's bounds."""

    mode: GateMode
    signals: tuple[str, ...] | None
    cascade: bool
    budget: Budget

    @property
    def precheck(self) -> bool:
        """Only ``enforce`` may abstain before answering: ``observe`` must return the model's answer."""
        return self.mode == "enforce"


@dataclass(frozen=True)
class Policy:
    """The operator's defaults and bounds for requests, and the texts that hedge and abstain write."""

    mode: GateMode
    allowed_modes: frozenset[GateMode]
    cascade: bool
    budget: Budget
    hedge_message: str
    hedge_position: Literal["prefix", "suffix"]
    abstain_message: str
    include_original: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy of ``settings``; a default mode outside the allowed ones or a bad template is refused."""
        if settings.mode not in settings.allowed_modes:
            raise ConfigError(f"mode {settings.mode!r} is not among allowed_modes {settings.allowed_modes}")
        _check_template(settings.abstain_message)
        return cls(
            mode=settings.mode,
            allowed_modes=frozenset(settings.allowed_modes),
            cascade=settings.cascade,
            budget=budget_from(settings),
            hedge_message=settings.hedge_message,
            hedge_position=settings.hedge_position,
            abstain_message=settings.abstain_message,
            include_original=settings.include_original,
        )

    def plan(self, options: GateOptions | None, *, signals: Sequence[str], n: int) -> Plan:
        """Check a request's options against the bounds; ``signals`` are the keys the gate computes."""
        options = options or GateOptions()
        mode = options.mode or self.mode
        if mode not in self.allowed_modes:
            allowed = sorted(self.allowed_modes)
            raise BadRequestError(f"gate mode {mode!r} is not allowed here; allowed: {allowed}", param="gate.mode")
        if n != 1 and mode != "off":
            raise BadRequestError(
                f"n must be 1 while the gate is on (mode {mode!r}): the gate assesses one answer per request; "
                "several choices are served only with gate mode 'off'",
                param="n",
            )
        if options.cascade is False and self.cascade:
            raise BadRequestError(
                "gate.cascade: a request may turn the cost cascade on, not off (that would spend more than the "
                "server allows)",
                param="gate.cascade",
            )
        return Plan(
            mode=mode,
            signals=_narrowed(options.estimators, signals),
            cascade=self.cascade or bool(options.cascade),
            budget=_lowered(options.budget, self.budget),
        )

    async def reply(
        self, gate: Gate, plan: Plan, prompt: list[Message], *, n: int, temperature: float, max_tokens: int | None
    ) -> Reply:
        """Generate once and gate once under ``plan``: the content the client gets, with the gate's view."""
        if plan.mode == "off":
            generations = await gate.llm.generate(
                prompt, n=n, temperature=temperature, max_tokens=max_tokens or gate.answer_tokens
            )
            reasons = [g.finish_reason or "stop" for g in generations]
            texts = [g.text.strip() for g in generations]  # as the pipeline strips a gated answer
            return Reply(texts, reasons, total_cost(generations), {"mode": "off"}, {"x-gate-mode": "off"})
        assessment = await gate.assess(
            prompt,
            signals=plan.signals,
            cascade=plan.cascade,
            precheck=plan.precheck,
            budget=plan.budget,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        abstained = plan.mode == "enforce" and assessment.decision == "abstain"
        reason = "stop" if abstained else assessment.finish_reason or "stop"
        view, headers = self.view(assessment, plan.mode), self.headers(assessment, plan.mode)
        return Reply([self.content(assessment, plan.mode)], [reason], assessment.answer_cost, view, headers)

    def content(self, assessment: Assessment, mode: GateMode) -> str:
        """The text the client gets: unchanged, hedged, or replaced by the abstain message."""
        answer = assessment.answer
        if answer is not None and (mode == "observe" or assessment.decision == "answer"):
            return answer
        if answer is not None and assessment.decision == "hedge":
            if self.hedge_position == "prefix":
                return f"{self.hedge_message}\n\n{answer}"
            return f"{answer}\n\n{self.hedge_message}"
        reasons = assessment.reasons or [NO_REASON]
        return self.abstain_message.format(reason=reasons[0], reasons="; ".join(reasons))

    def view(self, assessment: Assessment, mode: GateMode) -> dict[str, Any]:
        """The ``gate`` object: the assessment's summary, the mode, and the model's own answer."""
        view = {**assessment.summary(), "mode": mode}
        if self.include_original:
            view["original"] = assessment.answer
        return view

    @staticmethod
    def headers(assessment: Assessment, mode: GateMode) -> dict[str, str]:
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
