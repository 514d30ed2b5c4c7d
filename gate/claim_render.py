"""What a client reads of a long answer under the ``claims`` policy: annotated, marked, or struck.

- ``annotate``: the text as the model wrote it; the ``gate`` object lists each claim's verdict.
- ``mark``: every claim that is not kept is replaced by the ``claim_mark`` template, e.g.
  ``"[unverified: {claim}]"`` (``{claim}`` is the claim's text, ``{probability}`` its probability, 2 decimals).
- ``strike``: every claim that is not kept is removed, with its list marker when it was a list item, and the
  ``claim_strike_note`` (``{count}``: how many were removed) is appended; nothing left: abstain.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal

from gate.claim_verdict import ClaimVerdict
from gate.errors import ConfigError

ClaimPolicy = Literal["off", "annotate", "mark", "strike"]
STRICTNESS: dict[ClaimPolicy, int] = {"off": 0, "annotate": 1, "mark": 2, "strike": 3}
"""How much of an unsupported claim reaches the client, least strict first (``off``: the answer is judged whole)."""
MARK_FIELDS = frozenset({"claim", "probability"})
NOTE_FIELDS = frozenset({"count"})
_EMPTY_LINE = re.compile(r"^[ \t]*(?:[-*•‣◦–—]|\d{1,3}[.)]|[a-zA-Z][)])?[ \t]*$")
_BLANK_RUNS = re.compile(r"\n{3,}")


def marked(answer: str, claims: Sequence[ClaimVerdict], template: str) -> str:
    """``answer`` with every claim that is not kept replaced by ``template`` filled with it."""
    pieces, cursor = [], 0
    for claim in claims:
        if claim.supported:
            continue
        pieces += [answer[cursor : claim.start], mark(claim, template)]
        cursor = claim.end
    return "".join([*pieces, answer[cursor:]])


def mark(claim: ClaimVerdict, template: str) -> str:
    """One claim in its marked form."""
    return template.format(claim=claim.text, probability=f"{claim.probability:.2f}")


def struck(answer: str, claims: Sequence[ClaimVerdict], note: str) -> str | None:
    """``answer`` without the claims that are not kept, with ``note``; ``None`` when nothing is left."""
    removed = [claim for claim in claims if not claim.supported]
    if not removed:
        return answer
    if len(removed) == len(claims):
        return None
    pieces, cursor = [], 0
    for claim in removed:
        pieces.append(answer[cursor : claim.start])
        cursor = claim.end
        while cursor < len(answer) and answer[cursor] in " \t":  # the space that separated it from the next
            cursor += 1
    text = "".join([*pieces, answer[cursor:]])
    lines = [line.rstrip() for line in text.split("\n") if not _EMPTY_LINE.match(line) or not line.strip()]
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    return f"{text}\n\n{note.format(count=len(removed))}"


def check_template(template: str, *, setting: str, fields: frozenset[str], required: str | None = None) -> None:
    """Refuse a template with a placeholder other than ``fields`` (or without ``required``), naming the setting."""
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{setting} is not a valid template ({exc}); write literal braces as {{{{ }}}}") from None
    if not used <= fields:
        raise ConfigError(f"{setting} uses {sorted(used - fields)}; valid placeholders: {sorted(fields)}")
    if required is not None and required not in used:
        raise ConfigError(f"{setting} must show the claim with {{{required}}}; got {template!r}")
