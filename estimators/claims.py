"""Split a long answer into claims: deterministic sentences with character spans into the answer.

A claim here is a sentence (or a list item): the unit a claim-level gate judges, marks or strikes, so its
span must point exactly into the answer text. The splitter is rule-based and dependency-free (no NLTK
download at run time): a full stop ends a sentence unless what precedes it is a known abbreviation, an
initial ("J. K. Rowling"), a dotted acronym ("U.S.") followed by a word that does not usually start a
sentence, or the next word starts in lower case. Line breaks end a claim when they separate paragraphs,
list items or complete lines; a line wrapped in mid-sentence is joined with the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Claim", "split_claims"]


@dataclass(frozen=True)
class Claim:
    """One claim of an answer: ``text == answer[start:end]``.

    Attributes
    ----------
    text : str
        The claim as it appears in the answer, without surrounding white space or list marker.
    start, end : int
        Character offsets into the answer (``end`` exclusive).
    """

    text: str
    start: int
    end: int


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Titles and other abbreviations that never end a sentence (they precede a name, a number or a suffix).
_NEVER_FINAL = _words(
    """mr mrs ms dr prof st mt ft gen col lt sgt capt cmdr adm rev hon sen rep gov pres supt messrs mme mlle
    vs v e.g i.e cf viz approx ca fig figs no nos vol vols pp p ed eds op al pvt dept univ assn
    jan feb mar apr jun jul aug sep sept oct nov dec"""
)
# Abbreviations that can end a sentence: a break there only when the next word starts a sentence.
_MAYBE_FINAL = _words("etc inc ltd co corp jr sr bros llc plc esq")
# Words that commonly open an English sentence: after "U.S." or "Inc." one of them means a new sentence.
_SENTENCE_STARTERS = _words(
    """a an the he she it they we i you his her its their our this that these those there then in on at
    after before during however as but and also although while when since from by for with later today yet so"""
)
# Where a sentence may end: terminal punctuation, any closing quotes or brackets, then white space.
_CANDIDATE = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_WORD_BEFORE = re.compile(r"([\w.'’-]+)$")
_NEXT_WORD = re.compile(r"\s+[\"'“‘(\[]*(\S+?)[\W]*(?:\s|$)")
# A list marker at the start of a line: "- ", "* ", "• ", "1. ", "2) ", "a) ".
_BULLET = re.compile(r"[ \t]*(?:[-*•‣◦–—]|\d{1,3}[.)]|[a-zA-Z][)])[ \t]+")
_LINE = re.compile(r"[^\n]*(?:\n|$)")
_CONTENT = re.compile(r"\w")


def split_claims(text: str) -> list[Claim]:
    """Split ``text`` into sentence claims with exact character spans.

    Parameters
    ----------
    text : str
        The answer.

    Returns
    -------
    list of Claim
        In order of appearance, non-overlapping; a piece with no letter or digit (a lone "-" or "...")
        is not a claim. Empty text gives an empty list.

    Raises
    ------
    TypeError
        If ``text`` is not a str.

    Examples
    --------
    >>> [c.text for c in split_claims("Dr. Smith moved to the U.S. in 1990. He was 3.5 ft tall.")]
    ['Dr. Smith moved to the U.S. in 1990.', 'He was 3.5 ft tall.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    claims: list[Claim] = []
    for start, end in _blocks(text):
        for s, e in _sentences(text, start, end):
            piece = text[s:e]
            stripped_start = s + len(piece) - len(piece.lstrip())
            stripped_end = s + len(piece.rstrip())
            if stripped_start < stripped_end and _CONTENT.search(text, stripped_start, stripped_end):
                claims.append(Claim(text[stripped_start:stripped_end], stripped_start, stripped_end))
    return claims


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of paragraphs and list items (list markers excluded); wrapped lines are joined."""
    blocks: list[list[int]] = []
    previous_complete = True  # the previous line ended a block (or there was none)
    for match in _LINE.finditer(text):
        line_start, line_end = match.start(), match.end()
        if line_start == len(text) and line_end == line_start:
            break
        content = text[line_start:line_end].rstrip("\n")
        if not content.strip():
            previous_complete = True
            continue
        bullet = _BULLET.match(content)
        body_start = line_start + (bullet.end() if bullet else 0)
        stripped = content.rstrip()
        # A line continues the previous block only when that one stopped mid-sentence and this one starts
        # in lower case without a list marker (a hard-wrapped sentence).
        continues = blocks and not previous_complete and not bullet and content.lstrip()[:1].islower()
        if continues:
            blocks[-1][1] = line_start + len(stripped)
        else:
            blocks.append([body_start, line_start + len(stripped)])
        previous_complete = stripped.endswith((".", "!", "?", ":", "…", '"', "”", ")"))
    return [(start, end) for start, end in blocks if start < end]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans within ``text[start:end]``."""
    spans = []
    cursor = start
    for match in _CANDIDATE.finditer(text, start, end):
        if _is_boundary(text, match.start(), match.end(), end):
            spans.append((cursor, match.end()))
            cursor = match.end()
    spans.append((cursor, end))
    return spans


def _is_boundary(text: str, punct_start: int, punct_end: int, block_end: int) -> bool:
    """Whether the punctuation at ``text[punct_start:punct_end]`` ends a sentence."""
    following = _NEXT_WORD.match(text, punct_end, block_end)
    if following is None:
        return False  # only white space follows inside the block: the block end closes the sentence
    next_word = following.group(1)
    first = next_word[:1]
    if first.islower():
        return False  # "approx. three", '"Stop!" he said'
    if text[punct_start] != ".":
        return True  # "!" and "?" (and "...") end a sentence before a capital, digit or quote
    if punct_end - punct_start > 1 and text[punct_start:punct_end].rstrip("\"'”’)]").count(".") > 1:
        return True  # an ellipsis before a capital
    word = _word_before(text, punct_start)
    key = word.lower().rstrip(".")
    starter = next_word.lower().strip("\"'“”‘’()[]") in _SENTENCE_STARTERS
    if key in _NEVER_FINAL or (key.replace(".", "") in _NEVER_FINAL and "." in key):
        return False
    if key in _MAYBE_FINAL:
        return starter
    if re.fullmatch(r"[A-Za-z]", word):
        return False  # an initial: "John F. Kennedy", "J. K. Rowling"
    if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word):
        return starter  # a dotted acronym: "the U.S. Army" goes on, "the U.S. He ..." ends
    return True


def _word_before(text: str, position: int) -> str:
    """The token just before ``position`` (letters, digits, inner dots, apostrophes, hyphens)."""
    match = _WORD_BEFORE.search(text, 0, position)
    word = match.group(1) if match else ""
    # "(Dr" or a quote before the word is not part of it; an inner dot is ("e.g", "U.S").
    return word.lstrip(".'’-")
