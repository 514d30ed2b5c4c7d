"""Grading answers against gold aliases: the one grader behind every correctness label in the project."""

from __future__ import annotations

from collections.abc import Sequence

from estimators.text import normalize_answer


def _gold_aliases(answers: Sequence[str]) -> set[str]:
    if isinstance(answers, str):
        raise TypeError("answers must be a sequence of alias strings, got a single str; wrap it in a list")
    return {alias for alias in map(normalize_answer, answers) if alias}


def is_correct(response: str, answers: Sequence[str]) -> bool:
    """Grade a response: correct when a normalised gold alias occurs in it as a whole-word span.

    Parameters
    ----------
    response : str
        The model's answer.
    answers : sequence of str
        Gold aliases; those that normalise to the empty string are ignored.

    Returns
    -------
    bool
        True when some normalised alias equals the normalised response or is a token-aligned span of it
        (alias ``"paris"`` matches ``"it is paris france"``; alias ``"par"`` does not).
    """
    padded = f" {normalize_answer(response)} "
    return any(f" {alias} " in padded for alias in _gold_aliases(answers))


def exact_match(response: str, answers: Sequence[str]) -> bool:
    """Grade strictly: correct only when the normalised response equals a non-empty normalised alias."""
    return normalize_answer(response) in _gold_aliases(answers)


def grader_disagreement(responses: Sequence[str], answers_list: Sequence[Sequence[str]]) -> float:
    """Fraction of responses on which `is_correct` and `exact_match` disagree.

    Parameters
    ----------
    responses : sequence of str
        Model answers.
    answers_list : sequence of sequence of str
        The gold aliases of each response, aligned with ``responses``.

    Returns
    -------
    float
        In [0, 1]. Since an exact match is always a span match, this is the share graded correct only
        by the span rule.
    """
    if len(responses) != len(answers_list):
        raise ValueError(
            f"responses and answers_list must have the same length, got {len(responses)} and {len(answers_list)}"
        )
    if not responses:
        raise ValueError("grader_disagreement needs at least one response, got none")
    pairs = zip(responses, answers_list, strict=True)
    differ = sum(is_correct(response, gold) != exact_match(response, gold) for response, gold in pairs)
    return differ / len(responses)
