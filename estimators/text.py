"""Text normalisation shared by every comparison of answers (SQuAD's rules), in one place."""

from __future__ import annotations

import re
import string

__all__ = ["complete_words", "contains_span", "normalize_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, and fold white space (SQuAD's normaliser)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_span(haystack: str, needle: str) -> bool:
    """Whether normalised ``needle`` equals or occurs as a whole-word span of normalised ``haystack``."""
    hay, pin = normalize_answer(haystack), normalize_answer(needle)
    if not pin:
        return False
    return f" {pin} " in f" {hay} "


def complete_words(text: str) -> list[str]:
    """The normalised words of ``text`` before its last white space.

    Those words are complete: however ``text`` goes on, its normal form starts with them (the word being written
    may still grow, or turn out to be an article). A generation can be judged by them before it ends.
    """
    words = text.split()
    if words and not text[-1].isspace():
        words = words[:-1]
    return normalize_answer(" ".join(words)).split()
