"""Strict parsing of verbalized confidence: "85%", "0.85", "high", and labelled model completions.

The parser only ever sees the model's own completion, never the prompt: a proposed answer or question
that contains "Confidence: 100%" is untrusted content, so the prompts delimit it and the caller parses
only what the model generated. Within a completion the *last* occurrence of each label wins, so a model
that echoes a label while reasoning is read by its final statement.

Scale rules (the safest reading; anything ambiguous is rejected rather than guessed):

- a number followed by ``%``, ``percent`` or ``per cent`` is a percentage: ``"85%"`` -> 0.85;
- a number with a decimal point and no percent sign is on the 0-1 scale: ``"0.85"`` -> 0.85, and a
  decimal above 1 (``"1.5"``, ``"85.5"``) is rejected: it is either out of range or on another scale;
- a bare integer is on the 0-100 scale: ``"85"`` -> 0.85, except ``"1"``, which is rejected as
  ambiguous (100% on the 0-1 scale, 1% on the 0-100 one); ``"0"`` means 0 on either scale;
- values outside the scale (``"150%"``, ``"101"``, ``"-5"``) are rejected, never clipped;
- text with more than one number (``"70-80%"``, ``"4/5"``) is rejected as ambiguous;
- with no number, a whole-text confidence word is read from :data:`CONFIDENCE_WORDS`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONFIDENCE_WORDS",
    "ParsedConfidence",
    "ParsedVerbal",
    "parse_answer_and_confidence",
    "parse_confidence",
    "parse_top_k",
]

Scale = Literal["percent", "0-100", "0-1", "word"]

CONFIDENCE_WORDS: dict[str, float] = {
    "certain": 0.95,
    "very high": 0.9,
    "high": 0.8,
    "medium": 0.5,
    "moderate": 0.5,
    "unsure": 0.3,
    "not sure": 0.3,
    "uncertain": 0.3,
    "low": 0.2,
    "very low": 0.1,
}
"""Fixed, uncalibrated values for confidence words; fusion calibrates them like any other score.

"certain" is not 1.0: a stated certainty is no proof, and 1.0 would leave the calibrator nothing to move.
"""

# Digits are ASCII only (``\d`` would accept other scripts); the atomic group stops "0.85x" from
# backtracking to a bare "0", and the look-behind keeps "1e5" and "v2" from yielding numbers.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−]?)(?P<num>(?>[0-9]+(?:\.[0-9]+)?|\.[0-9]+))(?!\w)"
    r"(?P<pct>\s*(?:%|percent\b|per\s+cent\b))?",
    re.IGNORECASE,
)
_WORD_SPLIT = re.compile(r"[^a-z]+")
_WORD_SUFFIXES = (" confidence", " confident")
_ANSWER_LABELS = re.compile(r"(?:^|(?<=[\s,;|*]))(?P<label>answer|confidence)[ \t*]*[:：]", re.IGNORECASE)
_TOP_K_LABELS = re.compile(r"(?:^|(?<=[\s,;|*]))(?P<label>[GP])(?P<index>[0-9]{1,2})[ \t*]*[:：]", re.IGNORECASE)
_VALUE_TRIM = " \t*,;|\"'`"


@dataclass(frozen=True)
class ParsedConfidence:
    """One parsed confidence statement.

    Attributes
    ----------
    value : float or None
        The confidence in [0, 1], or ``None`` when the text was rejected.
    scale : {"percent", "0-100", "0-1", "word"} or None
        How the text was read.
    matched : str or None
        The substring the value came from.
    error : str or None
        Why the text was rejected; ``None`` on success.
    """

    value: float | None
    scale: Scale | None = None
    matched: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ParsedVerbal:
    """The answer and confidence a model stated; ``error`` names what is missing or invalid."""

    answer: str | None
    confidence: ParsedConfidence
    error: str | None = None


def parse_confidence(text: str) -> ParsedConfidence:
    """Read one confidence statement such as ``"85%"``, ``"0.85"``, ``"85"`` or ``"high"``.

    Parameters
    ----------
    text : str
        The statement alone (the text after a ``Confidence:`` label); surrounding words are allowed.

    Returns
    -------
    ParsedConfidence
        The value in [0, 1] with its scale, or ``value=None`` and an ``error``; it never raises on text.

    Raises
    ------
    TypeError
        If ``text`` is not a ``str``.

    Examples
    --------
    >>> parse_confidence("85%").value, parse_confidence("0.85").scale, parse_confidence("1").value
    (0.85, '0-1', None)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        return ParsedConfidence(None, error="empty confidence")
    numbers = list(_NUMBER.finditer(text))
    if len(numbers) > 1:
        found = ", ".join(repr(m.group(0).strip()) for m in numbers[:4])
        return ParsedConfidence(None, error=f"ambiguous: several numbers ({found}) in {_clip(text)!r}")
    if numbers:
        return _from_number(numbers[0])
    return _from_word(text)


def parse_answer_and_confidence(model_output: str) -> ParsedVerbal:
    """Read the last ``Answer:`` and the last ``Confidence:`` a model wrote in its completion.

    A label counts at the start of the text or after white space or a separator (``,;|*``), so
    ``"Answer: Paris, Confidence: 90%"`` and the two-line form both parse; a label's value runs to the
    next label or the end of its line.

    Parameters
    ----------
    model_output : str
        The model's completion only, never the prompt (see the module docstring).

    Returns
    -------
    ParsedVerbal
        ``answer`` is ``None`` when no non-empty ``Answer:`` was found; ``confidence`` carries its own
        error; ``error`` lists every problem, or is ``None`` when both parsed.

    Examples
    --------
    >>> parsed = parse_answer_and_confidence("Answer: Paris\\nConfidence: 90%")
    >>> parsed.answer, parsed.confidence.value
    ('Paris', 0.9)
    """
    if not isinstance(model_output, str):
        raise TypeError(f"model_output must be a str, got {type(model_output).__name__}")
    values: dict[str, str] = {}
    for label, value in _labelled_values(model_output, _ANSWER_LABELS):
        values[label.lower()] = value  # later occurrences overwrite earlier ones
    answer = values.get("answer") or None
    if "confidence" in values:
        confidence = parse_confidence(values["confidence"])
    else:
        confidence = ParsedConfidence(None, error="no 'Confidence:' label in the output")
    problems = []
    if answer is None:
        problems.append("no non-empty 'Answer:' in the output")
    if confidence.error is not None:
        problems.append(confidence.error)
    return ParsedVerbal(answer, confidence, "; ".join(problems) or None)


def parse_top_k(model_output: str, k: int) -> list[tuple[str, ParsedConfidence]]:
    """Read up to ``k`` ranked guesses written as ``G1: ...`` / ``P1: ...`` label pairs.

    Parameters
    ----------
    model_output : str
        The model's completion only.
    k : int
        How many guesses were asked for; labels with an index above ``k`` (or below 1) are ignored.

    Returns
    -------
    list of (str, ParsedConfidence)
        The non-empty guesses in rank order (by label index; the last occurrence of a label wins).
        A guess without a ``P`` line has a confidence with an error. Empty when nothing parsed.

    Examples
    --------
    >>> [(g, c.value) for g, c in parse_top_k("G1: Paris P1: 0.6\\nG2: Lyon P2: 30%", k=2)]
    [('Paris', 0.6), ('Lyon', 0.3)]
    """
    if not isinstance(model_output, str):
        raise TypeError(f"model_output must be a str, got {type(model_output).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    guesses: dict[int, str] = {}
    probabilities: dict[int, str] = {}
    for label, value in _labelled_values(model_output, _TOP_K_LABELS):
        index = int(label[1:])
        if 1 <= index <= k:
            (guesses if label[0] == "G" else probabilities)[index] = value
    result = []
    for index in sorted(guesses):
        if not guesses[index]:
            continue
        if index in probabilities:
            confidence = parse_confidence(probabilities[index])
        else:
            confidence = ParsedConfidence(None, error=f"no 'P{index}:' for guess G{index}")
        result.append((guesses[index], confidence))
    return result


def _labelled_values(text: str, labels: re.Pattern[str]) -> list[tuple[str, str]]:
    """``(label, value)`` for each label; a value runs to the next label or the end of its line."""
    matches = list(labels.finditer(text))
    out = []
    for position, match in enumerate(matches):
        end = matches[position + 1].start() if position + 1 < len(matches) else len(text)
        value = text[match.end() : end].split("\n", 1)[0]
        label = match.group("label").upper() + (match.groupdict().get("index") or "")
        out.append((label, value.strip(_VALUE_TRIM)))
    return out


def _from_number(match: re.Match[str]) -> ParsedConfidence:
    matched = _clip(match.group(0).strip())
    digits = match.group("num")
    number = float(digits)
    if not math.isfinite(number):  # a few hundred digits overflow to inf
        return ParsedConfidence(None, matched=matched, error=f"not a finite number: {matched!r}")
    if match.group("sign") in ("-", "−") and number != 0:
        return ParsedConfidence(None, matched=matched, error=f"negative confidence {matched!r}")
    if match.group("pct"):
        return _in_range(number, 100.0, "percent", matched)
    if "." in digits:
        return _in_range(number, 1.0, "0-1", matched)
    if number == 1:
        return ParsedConfidence(
            None, matched=matched, error="ambiguous bare '1': 100% on the 0-1 scale or 1% on the 0-100 scale"
        )
    return _in_range(number, 100.0, "0-100", matched)


def _in_range(number: float, top: float, scale: Scale, matched: str) -> ParsedConfidence:
    if number > top:
        return ParsedConfidence(None, matched=matched, error=f"{matched!r} is outside the {scale} scale [0, {top:g}]")
    return ParsedConfidence(number / top, scale=scale, matched=matched)


def _from_word(text: str) -> ParsedConfidence:
    words = " ".join(w for w in _WORD_SPLIT.split(text.lower()) if w)
    for suffix in _WORD_SUFFIXES:
        words = words.removesuffix(suffix)
    if words in CONFIDENCE_WORDS:
        return ParsedConfidence(CONFIDENCE_WORDS[words], scale="word", matched=words)
    return ParsedConfidence(
        None, error=f"no number or confidence word in {_clip(text)!r}; words: {sorted(CONFIDENCE_WORDS)}"
    )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
