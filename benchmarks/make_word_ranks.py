"""Derive the word-frequency list used for concept rarity from HaluEval's Wikipedia-style ``knowledge`` text.

Run: ``.venv/bin/python -m benchmarks.make_word_ranks`` (rewrites ``estimators/data/word_ranks.txt``).
Words are the lower-case alphabetic tokens of :func:`estimators.concepts.word_tokens`; ties in count are
broken alphabetically so the output is reproducible. Only the ranked word list is written, not the data.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from estimators.concepts import word_tokens

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "halueval_qa.jsonl"
DEFAULT_TARGET = Path(__file__).resolve().parents[1] / "estimators" / "data" / "word_ranks.txt"


def count_words(source: Path) -> Counter[str]:
    """Lower-case word counts over the ``knowledge`` field of every row of a HaluEval QA JSONL file."""
    counts: Counter[str] = Counter()
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                counts.update(word_tokens(json.loads(line)["knowledge"]))
    return counts


def ranked_words(counts: Counter[str], *, keep: int, min_count: int) -> list[str]:
    """The ``keep`` most frequent words seen at least ``min_count`` times; ties alphabetical."""
    ordered = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return ordered[:keep]


def header(source: Path, counts: Counter[str], n_words: int) -> list[str]:
    """The comment lines that say where the list comes from."""
    return [
        f"# {n_words} most frequent lower-case words, one per line in rank order (line 1 after comments = rank 1).",
        f"# Derived by benchmarks/make_word_ranks.py from the 'knowledge' field of {source.name}",
        "# (HaluEval QA, MIT licence; Wikipedia-style sentences from HotpotQA supporting facts):",
        f"# {sum(counts.values())} tokens, {len(counts)} distinct words. Only this ranked list is kept, not the text.",
    ]


def main() -> None:
    """Count, rank and write the list."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--keep", type=int, default=20_000)
    parser.add_argument("--min-count", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = count_words(args.source)
    words = ranked_words(counts, keep=args.keep, min_count=args.min_count)
    args.target.write_text("\n".join([*header(args.source, counts, len(words)), *words]) + "\n", encoding="utf-8")
    logger.info("wrote %d words to %s", len(words), args.target)


if __name__ == "__main__":
    main()
