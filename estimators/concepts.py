"""Concept extraction for the self-familiarity precheck: a light, dependency-free heuristic.

What it does, exactly (no NER model, no part-of-speech tagger):

1. **Tokens** are runs of letters and digits, with internal apostrophes (``Arthur's`` is one token). A
   token starts a sentence when it is the first, or when ``. ! ? : ;`` or a line break precedes it (a dot
   after a capitalised token of at most two letters, as in ``J. R.`` or ``St.``, is not a break).
2. **Names**: maximal runs of capitalised tokens joined by a space or a hyphen (or an initial's dot). A
   run continues through a number (``Apollo 11``), a hyphenated lower-case part (``Lee Jun-fan``) and the
   lower-case connectors of :data:`NAME_CONNECTORS` (*of, for, the, de, van, ...*) when a capitalised token
   follows them (``Æthelburh of Wilton``); ``and``/``or`` and prepositions end it. A trailing possessive
   ``'s`` is cut off. In a run that starts a sentence, leading function words (:data:`FUNCTION_WORDS`:
   stop words plus question and instruction words such as *What*, *Explain*) and numbers are dropped; a
   one-word run that starts a sentence is a name only if the word is not among the :data:`FREQUENT_RANK`
   most frequent words, and is otherwise treated as a lower-case word (*Musician and satirist ...*). A
   one-word name that is a function word (*I*, *What*) is dropped.
3. **Quoted terms**: the text inside double quotes (straight or curly), or inside single quotes that open
   after a space and close before a space or punctuation; trailing ``?!.,;:`` is trimmed.
4. **Terms** (the noun-ish n-grams): maximal runs of lower-case, purely alphabetic tokens joined by a
   space or hyphen that are not function words, not among the :data:`TERM_COMMON_RANK` most frequent
   words, and not ``-ly`` adverbs. This stands in for noun phrases without a tagger: frequent verbs and
   adjectives fall out through the word list.

Then the post-processing of the SELF-FAMILIARITY code (Luo et al.): sort by position; drop spans inside
other spans (a quoted term wins a tie); merge neighbours separated only by spaces, left to right, so chains
merge (``La`` + ``rabbia``), except that a term never joins a following name and joins a preceding one
only if one of its words is rare (not among the :data:`FREQUENT_RANK`), so ``Joe Heck`` + ``ran`` stay
apart; drop concepts whose words repeat an earlier concept or form a whole-word part of a longer one; drop
one-word lower-case terms among the :data:`FREQUENT_RANK` most frequent words, unless that would drop
everything (names and quoted terms are kept: the paper treats capitalised words as maximally rare).
Finally concepts are ordered rarest first by ``rare(c) = prod_w r(w)`` with ``r(w) = exp(-rank(w) / 100)``
for a listed lower-case word and ``exp(-100000 / 100)`` (~0) for a capitalised or unlisted one; ties keep
the question's order. Rarity is handled in log space (:func:`log_rarity`), as ``exp(-1000)`` underflows.

The word list (``estimators/data/word_ranks.txt``, one word per line in rank order, ``#`` lines are
comments) is derived by ``benchmarks/make_word_ranks.py`` from HaluEval's Wikipedia-style text; it is
loaded once, lazily. The paper used a Project Gutenberg list, so ranks (and what counts as frequent) differ.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = [
    "FREQUENT_RANK",
    "FUNCTION_WORDS",
    "NAME_CONNECTORS",
    "STOPWORDS",
    "TERM_COMMON_RANK",
    "UNLISTED_RANK",
    "Concept",
    "extract_concepts",
    "find_concepts",
    "load_common_concepts",
    "log_rarity",
    "word_ranks",
    "word_tokens",
]

FREQUENT_RANK = 10_000
"""Single-word lower-case terms ranked above this are dropped as too common (the paper's top-10,000)."""

TERM_COMMON_RANK = 1_000
"""Lower-case words ranked above this never start or extend a term candidate."""

UNLISTED_RANK = 100_000
"""The rank given to capitalised and unlisted words: the paper's list length, so ``r(w) = exp(-1000)``."""

STOPWORDS = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be",
        "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "cannot", "could",
        "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
        "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
        "is", "it", "its", "itself", "just", "let", "me", "more", "most", "my", "myself", "no", "nor", "not", "now",
        "of", "off", "on", "once", "only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over", "own",
        "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves",
        "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very",
        "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with",
        "would", "you", "your", "yours", "yourself", "yourselves", "aren't", "can't", "couldn't", "didn't", "doesn't",
        "don't", "hadn't", "hasn't", "haven't", "isn't", "it's", "let's", "shouldn't", "wasn't", "weren't", "won't",
        "wouldn't",
    }
)
"""English stop words (masking never touches them; they never form a concept on their own)."""

_QUESTION_WORDS = frozenset(
    {
        "also", "briefly", "compare", "define", "describe", "did", "discuss", "does", "explain", "give", "identify",
        "list", "many", "much", "name", "please", "say", "show", "state", "summarise", "summarize", "tell", "whats",
        "whether",
    }
)

FUNCTION_WORDS = STOPWORDS | _QUESTION_WORDS
"""Stop words plus question and instruction words; a sentence-initial one is never part of a name."""

NAME_CONNECTORS = frozenset(
    {
        "of", "for", "the", "de", "da", "di", "del", "della", "der", "den",
        "du", "la", "le", "van", "von", "bin", "ibn", "al",
    }
)
"""Lower-case words allowed inside a name when a capitalised word follows them."""

Kind = Literal["name", "quoted", "term"]

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_ALPHA_WORD = re.compile(r"[^\W\d_]+")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|(?:(?<=\s)|^)'([^'\n]+)'(?=[\s.,;:!?)]|$)")
_SENTENCE_BREAK = re.compile(r"[.!?:;\n]")
_INITIAL_DOT_MAX = 2
_TRAILING_PUNCTUATION = " \t?!.,;:"


@dataclass(frozen=True)
class Concept:
    """One concept of a question: its text, character span, how it was found and its log-rarity."""

    text: str
    start: int
    end: int
    kind: Kind
    log_rarity: float = 0.0


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    initial: bool  # first token of a sentence


def word_tokens(text: str) -> list[str]:
    """The lower-case alphabetic words of ``text`` (the unit of the word list).

    Examples
    --------
    >>> word_tokens("Arthur's Magazine (1844) was American.")
    ['arthur', 's', 'magazine', 'was', 'american']
    """
    return [w.lower() for w in _ALPHA_WORD.findall(text)]


@functools.cache
def word_ranks() -> Mapping[str, int]:
    """Rank (1 = most frequent) of each word in the bundled word list, loaded once."""
    text = resources.files("estimators.data").joinpath("word_ranks.txt").read_text(encoding="utf-8")
    words = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {word: rank for rank, word in enumerate(words, start=1)}


@functools.cache
def load_common_concepts() -> tuple[str, ...]:
    """The bundled well-known concepts used to estimate the familiarity threshold."""
    text = resources.files("estimators.data").joinpath("common_concepts.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _rank(word: str) -> int:
    return word_ranks().get(word.lower(), UNLISTED_RANK)


def log_rarity(text: str, *, kind: Kind = "name") -> float:
    """``log rare(c) = sum_w log r(w)``: ``-rank/100`` per listed lower-case word, ``-1000`` otherwise.

    Capitalised words count as maximally rare in names and quoted terms; in a lower-case term (which may
    hold a sentence-initial capital, as in *Musician and ...*) every word is looked up.

    Examples
    --------
    >>> log_rarity("the") > log_rarity("Paris")
    True
    """
    total = 0.0
    for word in _ALPHA_WORD.findall(text):
        capitalised = word[0].isupper() and kind != "term"
        total -= (UNLISTED_RANK if capitalised else _rank(word)) / 100
    return total


def find_concepts(question: str) -> list[Concept]:
    """All concepts of ``question`` after post-processing, rarest first (see the module docstring).

    Parameters
    ----------
    question : str
        The user's question or instruction.

    Returns
    -------
    list of Concept
        Possibly empty.

    Raises
    ------
    TypeError
        If ``question`` is not a string.
    """
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, got {type(question).__name__}")
    tokens = _tokenize(question)
    found = _quoted(question) + _names(question, tokens) + _terms(question, tokens)  # quoted wins a tie
    candidates = sorted(found, key=lambda c: (c.start, -c.end))
    kept = _drop_frequent(_drop_repeated(_merge_adjacent(question, _drop_nested(candidates))))
    rated = [Concept(c.text, c.start, c.end, c.kind, log_rarity(c.text, kind=c.kind)) for c in kept]
    return sorted(rated, key=lambda c: c.log_rarity)  # stable: ties keep the question's order


def extract_concepts(question: str, *, limit: int | None = None) -> list[str]:
    """The concept texts of ``question``, rarest first, at most ``limit`` of them.

    Examples
    --------
    >>> extract_concepts("Who was the composer of Easy Living?")
    ['Easy Living']
    >>> extract_concepts("What is Michael Lynton's occupation?")
    ['Michael Lynton']
    """
    concepts = [c.text for c in find_concepts(question)]
    return concepts if limit is None else concepts[:limit]


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        if tokens:
            previous = tokens[-1]
            gap = text[previous.end : match.start()]
            initial = bool(_SENTENCE_BREAK.search(gap)) and not _is_initial_dot(previous, gap)
        else:
            initial = True
        tokens.append(_Token(match.group(), match.start(), match.end(), initial))
    return tokens


def _is_initial_dot(token: _Token, gap: str) -> bool:
    """``J. R.`` or ``St. Louis``: a dot right after a short capitalised token is no sentence break."""
    return gap.rstrip() == "." and len(token.text) <= _INITIAL_DOT_MAX and token.text[0].isupper()


def _capitalised(token: _Token) -> bool:
    return token.text[0].isupper()


def _joins(text: str, left: _Token, right: _Token) -> bool:
    """Whether two neighbouring tokens may sit in one name: a space, a hyphen or an initial's dot apart."""
    gap = text[left.end : right.start]
    return gap in {" ", "-"} or _is_initial_dot(left, gap)


def _is_term_word(word: str) -> bool:
    lower = word.lower()
    return (
        _ALPHA_WORD.fullmatch(word) is not None
        and lower not in FUNCTION_WORDS
        and not lower.endswith("ly")
        and _rank(lower) > TERM_COMMON_RANK
    )


def _names(text: str, tokens: list[_Token]) -> list[Concept]:
    names: list[Concept] = []
    i = 0
    while i < len(tokens):
        if not _capitalised(tokens[i]):
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and not tokens[j].initial and _joins(text, tokens[j - 1], tokens[j]):
            hyphenated = text[tokens[j - 1].end : tokens[j].start] == "-"  # Lee Jun-fan
            connects = tokens[j].text in NAME_CONNECTORS and _connector_leads_to_name(text, tokens, j)
            if _capitalised(tokens[j]) or tokens[j].text[0].isdigit() or hyphenated or connects:
                j += 1
            else:
                break
        names.extend(_name_from_run(text, tokens[i:j]))
        i = j
    return names


def _connector_leads_to_name(text: str, tokens: list[_Token], j: int) -> bool:
    k = j
    while k < len(tokens) and tokens[k].text in NAME_CONNECTORS and _joins(text, tokens[k - 1], tokens[k]):
        k += 1
    return k < len(tokens) and _capitalised(tokens[k]) and _joins(text, tokens[k - 1], tokens[k])


def _name_from_run(text: str, run: list[_Token]) -> list[Concept]:
    if run[0].initial and len(run) == 1:
        return _lone_initial(text, run[0])
    if run[0].initial:
        while run and (run[0].text.lower() in FUNCTION_WORDS or run[0].text[0].isdigit()):
            run = run[1:]
    if not run or (len(run) == 1 and run[0].text.lower() in FUNCTION_WORDS):
        return []
    start, last = run[0].start, run[-1]
    end = last.start + len(_POSSESSIVE.sub("", last.text))
    return [Concept(text[start:end], start, end, "name")]


def _lone_initial(text: str, word: _Token) -> list[Concept]:
    """A lone sentence-initial capital is a name only if it is not a frequent ordinary word."""
    if word.text.lower() in FUNCTION_WORDS:
        return []
    if _rank(word.text) > FREQUENT_RANK:
        return _name_from_run(text, [_Token(word.text, word.start, word.end, initial=False)])
    return [Concept(word.text, word.start, word.end, "term")] if _is_term_word(word.text) else []


def _terms(text: str, tokens: list[_Token]) -> list[Concept]:
    runs: list[list[_Token]] = []
    for i, token in enumerate(tokens):
        if token.text[0].isupper() or not _is_term_word(token.text):
            continue
        if runs and runs[-1][-1] is tokens[i - 1] and text[tokens[i - 1].end : token.start] in {" ", "-"}:
            runs[-1].append(token)
        else:
            runs.append([token])
    return [Concept(text[run[0].start : run[-1].end], run[0].start, run[-1].end, "term") for run in runs]


def _quoted(text: str) -> list[Concept]:
    found = []
    for match in _QUOTED.finditer(text):
        group = next(g for g in range(1, 4) if match.group(g) is not None)
        inner = match.group(group).rstrip(_TRAILING_PUNCTUATION)
        start = match.start(group) + len(inner) - len(inner.lstrip())
        end = match.start(group) + len(inner.rstrip())
        if start < end and _TOKEN.search(text[start:end]):
            found.append(Concept(text[start:end], start, end, "quoted"))
    return found


def _drop_nested(concepts: list[Concept]) -> list[Concept]:
    """Drop spans that lie inside an earlier kept span (``concepts`` sorted by start, longest first)."""
    kept: list[Concept] = []
    for concept in concepts:
        if not any(k.start <= concept.start and concept.end <= k.end for k in kept):
            kept.append(concept)
    return kept


def _merge_adjacent(text: str, concepts: list[Concept]) -> list[Concept]:
    """Merge neighbours separated only by spaces (see :func:`_mergeable`), left to right, so chains merge."""
    merged: list[Concept] = []
    for concept in concepts:
        if merged:
            left = merged[-1]
            gap = text[left.end : concept.start]
            if (gap == "" or gap.strip(" ") == "") and _mergeable(left, concept):
                kind: Kind = "name" if "name" in {left.kind, concept.kind} else left.kind
                merged[-1] = Concept(text[left.start : concept.end], left.start, concept.end, kind)
                continue
        merged.append(concept)
    return merged


def _mergeable(left: Concept, right: Concept) -> bool:
    """A term never joins a following name; it joins a preceding name only if one of its words is rare.

    ``La`` + ``rabbia`` and ``Muiz`` + ``ud din`` merge, while ``Joe Heck`` + ``ran`` (a verb the heuristic
    took for a term) do not.
    """
    if right.kind != "term":
        return left.kind != "term"
    return left.kind == "term" or any(_rank(w) > FREQUENT_RANK for w in _ALPHA_WORD.findall(right.text))


def _word_key(text: str) -> str:
    return " " + " ".join(t.lower() for t in _TOKEN.findall(text)) + " "


def _drop_repeated(concepts: list[Concept]) -> list[Concept]:
    """Drop a concept that repeats an earlier one or is a whole-word part of a longer one."""
    keys = [_word_key(c.text) for c in concepts]
    kept = []
    for i, concept in enumerate(concepts):
        repeated = keys[i] in keys[:i]
        covered = any(keys[i] in other and len(other) > len(keys[i]) for other in keys)
        if not (repeated or covered):
            kept.append(concept)
    return kept


def _drop_frequent(concepts: list[Concept]) -> list[Concept]:
    """Drop one-word lower-case terms among the most frequent words, unless none would be left."""
    kept = [
        c for c in concepts if not (c.kind == "term" and " " not in c.text and _rank(c.text) <= FREQUENT_RANK)
    ]
    return kept or concepts
