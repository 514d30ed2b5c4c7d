"""A strict parser for a verbalised rating such as ``Score: 7`` on a 0-10 scale.

The rating is read from the first ``<label>:`` in the text (a model that keeps writing after its
verdict tends to invent further examples, whose scores are not its judgement). The value must be a
plain non-negative number, optionally written as ``N/10``, and lie on the scale; anything else is
rejected with a reason rather than guessed at. Parsing never raises on any text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ParsedScore", "parse_score"]

_NUMBER = re.compile(r"\d{1,3}(?:\.\d{1,3})?")
_TRAILING = ".,;:!)]*\"'"
_LEADING = "*([\"'"


@dataclass(frozen=True)
class ParsedScore:
    """The outcome of parsing one rating.

    Attributes
    ----------
    value : float or None
        The rating on the ``[low, high]`` scale, or ``None`` when the text holds no valid rating.
    error : str or None
        Why the text was rejected; ``None`` when ``value`` is set.
    has_label : bool
        Whether the text holds ``label:`` at all (a rating may still be invalid when it does).
    """

    value: float | None
    error: str | None = None
    has_label: bool = True


@lru_cache(maxsize=8)
def _label_pattern(label: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z]){re.escape(label)}\s*:[ \t]*(\S*)", re.IGNORECASE)


def parse_score(text: str, *, label: str = "Score", low: float = 0.0, high: float = 10.0) -> ParsedScore:
    """Read the rating that follows the first ``label:`` in ``text``.

    Parameters
    ----------
    text : str
        The model's output, e.g. ``"Reasoning: the passage names it.\\nScore: 8"``.
    label : str, default="Score"
        The word before the colon; matched case-insensitively, not inside a longer word.
    low, high : float, default=0.0, 10.0
        The closed scale a rating must lie on.

    Returns
    -------
    ParsedScore
        ``value`` set for a valid rating; otherwise ``value=None`` and ``error`` saying why.

    Raises
    ------
    TypeError
        If ``text`` is not a string (a programming error, not model misbehaviour).

    Examples
    --------
    >>> parse_score("Reasoning: stated directly.\\nScore: 9").value
    9.0
    >>> parse_score("Score: 7/10").value
    7.0
    >>> parse_score("Score: 11").error
    'score 11 is outside [0, 10]'
    >>> parse_score("Score: high").error
    "not a number after 'Score:': 'high'"
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    match = _label_pattern(label).search(text)
    if match is None:
        return ParsedScore(None, f"no '{label}:' in the text", has_label=False)
    token = match.group(1).lstrip(_LEADING).rstrip(_TRAILING)
    numerator, slash, denominator = token.partition("/")
    if not _NUMBER.fullmatch(numerator) or (slash and not _is_scale_top(denominator, high)):
        return ParsedScore(None, f"not a number after '{label}:': {match.group(1)!r}")
    value = float(numerator)
    if not (math.isfinite(value) and low <= value <= high):
        return ParsedScore(None, f"score {numerator} is outside [{low:g}, {high:g}]")
    return ParsedScore(value)


def _is_scale_top(denominator: str, high: float) -> bool:
    """Whether ``N/denominator`` names the same scale (``7/10`` on 0-10; ``7/5`` is rejected)."""
    return bool(_NUMBER.fullmatch(denominator)) and float(denominator) == high
