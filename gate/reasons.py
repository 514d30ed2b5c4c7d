"""Sentences a person can read about why the gate decided what it did, from each signal's details."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from estimators.base import Signal

LOW = 0.5  # a signal below this points towards hedging or abstaining
HIGH = 0.8  # a signal at or above this supports answering


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
        f"{named} (familiarity {familiarity.confidence:.3f} is below the precheck threshold {threshold:.3f});"
        " no answer was generated"
    )


def _consistency(signal: Signal) -> str:
    n = int(signal.details.get("n_samples_used", 0))
    agreeing = round((signal.confidence or 0.0) * n)
    if signal.confidence is not None and signal.confidence >= HIGH:
        return f"{agreeing} of {n} samples agree with the answer"
    return f"{n - agreeing} of {n} samples disagree with the answer"


def _pace(signal: Signal) -> str:
    if signal.confidence is not None and signal.confidence >= HIGH:
        return f"references support the answer (PACE {signal.confidence:.2f})"
    return f"references do not support the answer (PACE {signal.confidence:.2f})"


def _logprob(signal: Signal) -> str:
    return f"low token probability ({signal.details.get('aggregate', 'mean')} {signal.confidence:.2f})"


def _verbalized(signal: Signal) -> str:
    return f"the model states {100 * (signal.confidence or 0.0):.0f}% confidence in its answer"


def _p_true(signal: Signal) -> str:
    return f"the model judges its own answer unlikely to be true (P(True) {signal.confidence:.2f})"


def _familiarity(signal: Signal) -> str:
    concept = unfamiliar_concept(signal)
    suffix = f", least familiar: {concept!r}" if concept else ""
    return f"low familiarity with the question's concepts ({signal.confidence:.3f}{suffix})"


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
