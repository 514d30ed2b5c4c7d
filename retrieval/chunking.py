"""Split long texts into overlapping chunks of about ``chunk_size`` words, cutting at sentence ends when cheap."""

from __future__ import annotations

import re

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP", "check_chunk_params", "chunk_text"]

DEFAULT_CHUNK_SIZE = 200
DEFAULT_OVERLAP = 40

_WORD = re.compile(r"\S+")
# A word ending a sentence: terminal punctuation, optionally followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def check_chunk_params(chunk_size: int, overlap: int) -> None:
    """Raise ``ValueError`` unless ``0 <= overlap < chunk_size``.

    Parameters
    ----------
    chunk_size : int
        Most words in a chunk; must be positive.
    overlap : int
        Words repeated from the end of one chunk at the start of the next; ``0 <= overlap < chunk_size``.

    Raises
    ------
    ValueError
        If either value is out of range or not an integer.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer (words), got {chunk_size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative integer (words), got {overlap!r}")
    if overlap >= chunk_size:
        raise ValueError(f"overlap must be smaller than chunk_size, got overlap={overlap} >= chunk_size={chunk_size}")


def chunk_text(text: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """Split ``text`` into chunks of at most ``chunk_size`` words, consecutive chunks sharing ``overlap`` words.

    Words are runs of non-space characters. A chunk ends at the last sentence or paragraph end that
    leaves it at least half full (and longer than the overlap); with none, it is cut at exactly
    ``chunk_size`` words. The next chunk starts ``overlap`` words before the previous one ended. Each chunk
    is the original text between its first and last word, so line breaks inside a chunk are kept. The
    result depends only on the arguments.

    Parameters
    ----------
    text : str
        The text to split.
    chunk_size : int, default=200
        Most words in a chunk; must be positive.
    overlap : int, default=40
        Words shared by consecutive chunks; ``0 <= overlap < chunk_size``.

    Returns
    -------
    list of str
        The chunks in order; one chunk (the stripped text) when it has at most ``chunk_size`` words,
        none when it has no words.

    Raises
    ------
    ValueError
        If ``chunk_size`` or ``overlap`` is out of range.

    Examples
    --------
    >>> chunk_text("a b c d e f g h i j", chunk_size=4, overlap=1)
    ['a b c d', 'd e f g', 'g h i j']
    >>> chunk_text("One two. Three four five six.", chunk_size=4, overlap=0)
    ['One two.', 'Three four five six.']
    """
    check_chunk_params(chunk_size, overlap)
    spans = [match.span() for match in _WORD.finditer(text)]
    if len(spans) <= chunk_size:
        return [text.strip()] if spans else []
    boundaries = _boundaries(text, spans)
    shortest = max(chunk_size // 2, overlap + 1)
    chunks = []
    start = 0
    while True:
        end = min(start + chunk_size, len(spans))
        if end < len(spans):
            end = _last_boundary(boundaries, start + shortest, end)
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            return chunks
        start = end - overlap


def _boundaries(text: str, spans: list[tuple[int, int]]) -> list[bool]:
    """``boundaries[i]`` is true when a chunk may end after word ``i`` (sentence or paragraph end)."""
    ends = [bool(_SENTENCE_END.search(text[begin:finish])) for begin, finish in spans]
    for index in range(len(spans) - 1):
        if _PARAGRAPH_BREAK.search(text, spans[index][1], spans[index + 1][0]):
            ends[index] = True
    return ends


def _last_boundary(boundaries: list[bool], lowest_end: int, end: int) -> int:
    """The largest chunk end in ``[lowest_end, end]`` that follows a boundary word, else ``end``."""
    for candidate in range(end, lowest_end - 1, -1):
        if boundaries[candidate - 1]:
            return candidate
    return end
