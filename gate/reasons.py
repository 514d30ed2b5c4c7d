"""Sentences a person can read about why the gate decided what it did, from each signal's details."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from estimators.base import Signal

LOW = 0.5  # a signal below this points towards hedging or abstaining
HIGH = 0.8  # a signal at or above this supports answering
SMALL = 0.01  # below this, fixed decimals lose the digits that matter (0.00063 printed as 0.001 or 0.00)


def format_probability(value: float | None, decimals: int = 2, *, percent: bool = False) -> str:
    """A probability for people: ``decimals`` fixed places from 0.01 up, 2 significant digits below.

    Small values use Python's ``.2g`` (0.0086, 0.00063, then 6.3e-05 from 1e-4 down), so two small values that
    differ at 2 significant digits never print alike; exact 0 is "0" and ``None`` is "n/a". ``percent`` prints
    100 times the value with a "%" sign; the 0.01 cut stays on the probability (0.0063 is "0.63%").
    """
    if value is None:
        return "n/a"
    scaled, unit = (100 * value, "%") if percent else (value, "")
    if value == 0:
        return "0" + unit
    if value < SMALL:
        return f"{scaled:.2g}{unit}"
    return f"{scaled:.{decimals}f}{unit}"


def unfamiliar_concept(familiarity: Signal) -> str | None:
    """The concept the model knew least, from the familiarity signal's per-concept scores."""
    concepts = [c for c in familiarity.details.get("concepts", []) if c.get("score") is not None]
    if not concepts:
        return None
    return str(min(concepts, key=lambda c: c["score"])["concept"])


def precheck_reason(familiarity: Signal, threshold: float | None) -> str:
    """Why the precheck abstained before generating."""
    concept = unfamiliar_concept(familiarity)
    named = f"unfamiliar concept: {concept!r}" if concept else "unfamiliar concepts"
    return (
        f"{named} (familiarity {format_probability(familiarity.confidence, 3)} is below the precheck threshold"
        f" {format_probability(threshold, 3)}); no answer was generated"
    )


def _consistency(signal: Signal) -> str:
    n = int(signal.details.get("n_samples_used", 0))
    agreeing = round((signal.confidence or 0.0) * n)
    if signal.confidence is not None and signal.confidence >= HIGH:
        return f"{agreeing} of {n} samples agree with the answer"
    return f"{n - agreeing} of {n} samples disagree with the answer"


def _pace(signal: Signal) -> str:
    supports = "support" if signal.confidence is not None and signal.confidence >= HIGH else "do not support"
    return f"references {supports} the answer (PACE {format_probability(signal.confidence)})"


def _logprob(signal: Signal) -> str:
    aggregate = signal.details.get("aggregate", "mean")
    return f"low token probability ({aggregate} {format_probability(signal.confidence)})"


def _verbalized(signal: Signal) -> str:
    stated = format_probability(signal.confidence, 0, percent=True)
    return f"the model states {stated} confidence in its answer"


def _p_true(signal: Signal) -> str:
    p_true = format_probability(signal.confidence)
    return f"the model judges its own answer unlikely to be true (P(True) {p_true})"


def _familiarity(signal: Signal) -> str:
    concept = unfamiliar_concept(signal)
    suffix = f", least familiar: {concept!r}" if concept else ""
    familiarity = format_probability(signal.confidence, 3)
    return f"low familiarity with the question's concepts ({familiarity}{suffix})"


_DESCRIBE: Mapping[str, Callable[[Signal], str]] = {
    "consistency": _consistency,
    "pace": _pace,
    "logprob": _logprob,
    "verbalized": _verbalized,
    "p_true": _p_true,
    "familiarity": _familiarity,
}
_SUPPORTING = frozenset({"consistency", "pace"})  # the two whose agreement is itself worth telling


def signal_reasons(signals: Mapping[str, Signal], decision: str) -> list[str]:
    """One sentence per signal that points the way of the decision (low ones for hedge/abstain)."""
    reasons = []
    for signal in signals.values():
        if signal.confidence is None or signal.name not in _DESCRIBE:
            continue
        low = signal.confidence < LOW
        supporting = signal.confidence >= HIGH and signal.name in _SUPPORTING
        if (decision != "answer" and low) or (decision == "answer" and supporting):
            reasons.append(_DESCRIBE[signal.name](signal))
    return reasons
