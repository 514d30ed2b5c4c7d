"""The prompts of the self-familiarity precheck and the masking of a concept out of its explanation.

Steps A and C of SELF-FAMILIARITY (Luo et al.) as text: :func:`explain_prompt` asks the model to explain
a concept, :func:`mask_concept` hides every surface form of it in the explanation, and :func:`back_prompt`
asks which thing the masked text is about. :mod:`estimators.familiarity` runs them against the model.
"""

from __future__ import annotations

import re

from estimators.concepts import STOPWORDS

__all__ = ["MASK", "back_prompt", "explain_prompt", "mask_concept", "surface_forms"]

MASK = "___"
"""What replaces the concept in the explanation (the paper used the model's unknown-token string)."""

_FORM_PIECE = re.compile(r"[^\W_]+")

# Worked examples teach the base model both formats, in one block that every prompt starts with: each
# example is explained and then recovered from its masked explanation, the whole procedure shown in order
# (on a few concepts this separated known from unknown ones better than separate few-shot prompts). An
# example naming the concept is left out, as it would give the concept away. Neither example is among the
# common concepts.
_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Compass",
        "A compass is a small instrument whose magnetised needle swings to point north, so that walkers and "
        "sailors can tell which way they are heading.",
    ),
    (
        "Johann Sebastian Bach",
        "Johann Sebastian Bach was a German composer of the Baroque period, known for the Brandenburg "
        "Concertos and many works for organ and choir.",
    ),
)
_EXPLAIN_LINE = 'Explain "{concept}" in one short paragraph.\n'
_BACK_LINE = 'Name the thing hidden as {mask} in this text: "{text}"\nName:'


def _prefix(concept: str) -> str:
    blocks = []
    for name, explanation in _EXAMPLES:
        if mask_concept(f"{name} {explanation}", concept) != f"{name} {explanation}":
            continue
        back = _BACK_LINE.format(mask=MASK, text=mask_concept(explanation, name))
        blocks.append(_EXPLAIN_LINE.format(concept=name) + explanation + "\n\n" + back + f" {name}\n\n")
    return "".join(blocks)


def explain_prompt(concept: str) -> str:
    """Step A: the raw few-shot prompt asking for a one-paragraph explanation of ``concept``."""
    return _prefix(concept) + _EXPLAIN_LINE.format(concept=concept)


def back_prompt(masked_explanation: str, concept: str) -> str:
    """Step C: the raw few-shot prompt asking which thing the masked explanation of ``concept`` is about.

    ``concept`` only decides which worked examples are shown; it does not appear in the prompt.
    """
    return _prefix(concept) + _BACK_LINE.format(mask=MASK, text=" ".join(masked_explanation.split()))


def surface_forms(concept: str) -> list[str]:
    """Every form of ``concept`` to mask, longest first.

    The full concept and each of its words (letters and digits; stop words and single characters skipped,
    fixing the paper's code, which masked "The" everywhere), each as written, lower, UPPER, Capitalised and
    Title case.

    Examples
    --------
    >>> surface_forms("The Rack")
    ['THE RACK', 'The Rack', 'The rack', 'the rack', 'RACK', 'Rack', 'rack']
    """
    pieces = [concept.strip(), *(w for w in _FORM_PIECE.findall(concept) if len(w) > 1 and w.lower() not in STOPWORDS)]
    forms = {f for p in pieces if p for f in (p, p.lower(), p.upper(), p.capitalize(), p.title())}
    return sorted(forms, key=lambda f: (-len(f), f))


def mask_concept(text: str, concept: str, *, mask: str = MASK) -> str:
    """Replace every surface form of ``concept`` in ``text`` with ``mask``.

    A form is matched where a word starts, and the mask swallows the rest of that word, so inflected and
    derived forms ("Peruvian" for "Peru") do not give the concept away; stop words are never masked.

    Examples
    --------
    >>> mask_concept("The Rack is a film; racks fill the theatre.", "The Rack")
    '___ is a film; ___ fill the theatre.'
    """
    forms = surface_forms(concept)
    if not forms:
        return text
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(f) for f in forms) + r")\w*")
    return pattern.sub(mask, text)
