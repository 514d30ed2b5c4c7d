"""Verbalized confidence (Xiong et al., ICLR 2024): ask the model how sure it is, parse it strictly.

Four prompting styles, written as raw few-shot completions so a base model sees the exact format:

- ``vanilla``: the model answers the question and states a confidence;
- ``cot``: the model reasons in a sentence, then answers and states a confidence;
- ``top_k``: the model lists ``k`` ranked guesses, each with a probability;
- ``self_probing``: the model is shown the proposed answer (the one being scored) and states how likely
  it is to be correct. This is the only style that judges the given answer directly.

Over ``n_samples`` (M) completions, one of three aggregations gives the confidence in ``answer``
(``reference/methods.md`` section 3.3, with Ỹ = the answer being scored rather than a majority vote):

- ``consistency``: the fraction of sampled (top-1) answers that match ``answer``;
  for ``top_k`` the top-1 guess and its probability stand for the sample in this and in ``avg_conf``;
- ``avg_conf``: Xiong's Avg-Conf, ``Σ_i 1{Ŷ_i matches answer}·C_i / Σ_i C_i`` over the (top-1)
  answers Ŷ_i and their stated confidences C_i. With M = 1 it is just the match indicator (the stated
  confidence cancels), so use M >= 5 as the paper does. For ``self_probing`` every C_i is already about
  the given answer (every indicator is 1 and the formula is identically 1), so the mean of the C_i is used;
- ``pair_rank``: Bradley-Terry maximum likelihood over the pairwise preferences implied by each sample's
  ranked list (an answer beats every answer ranked below it and every answer missing from the list),
  solved by Hunter's (2004) MM iteration with a small pseudo-count on every pair; the confidence is the
  BT probability of ``answer`` (of the candidates that match it). This is the paper's log-likelihood form,
  not the released code's log-free SGD variant.

Samples whose needed fields did not parse are left out of the aggregation and counted in ``details``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from estimators.base import LLM, Generation, Message, Signal, total_cost
from estimators.text import contains_span, normalize_answer
from estimators.verbal_parse import ParsedConfidence, parse_answer_and_confidence, parse_top_k

__all__ = ["Verbalized", "bradley_terry"]

logger = logging.getLogger(__name__)

Style = Literal["vanilla", "cot", "top_k", "self_probing"]
Aggregation = Literal["consistency", "avg_conf", "pair_rank"]
STYLES: tuple[str, ...] = ("vanilla", "cot", "top_k", "self_probing")
AGGREGATIONS: tuple[str, ...] = ("consistency", "avg_conf", "pair_rank")
MAX_K = 5
RAW_TEXT_LIMIT = 500

_STOP_BLOCK = ("\n\n", "\nQuestion:")
_MARKER = re.compile(r"</?answer>", re.IGNORECASE)
_DEFAULT_MAX_TOKENS = {"vanilla": 32, "cot": 160, "self_probing": 8}
_TOP_K_TOKENS_PER_GUESS = 20

_ANSWER_HEADER = (
    "Each question below is followed by a short answer and a confidence: how likely, from 0% to 100%, "
    "it is that the answer is correct."
)
_ANSWER_EXAMPLES = (
    ("What is the capital of Canada?", "Ottawa is where the Canadian parliament sits.", "Ottawa", "95%"),
    ("Which element has the chemical symbol W?", "W stands for wolfram, another name for tungsten.", "Tungsten", "80%"),
    (
        "Who was the first person to reach the South Pole?",
        "I remember a British expedition, but another team may have arrived first.",
        "Robert Falcon Scott",
        "25%",
    ),
)
_TOP_K_HEADER = (
    "Each question below is followed by the best guesses, most likely first, each with the probability "
    "(0% to 100%) that it is correct."
)
_TOP_K_EXAMPLES = (
    (
        "What is the capital of Australia?",
        (("Canberra", "70%"), ("Sydney", "15%"), ("Melbourne", "10%"), ("Perth", "3%"), ("Brisbane", "2%")),
    ),
    (
        "Which planet has the most known moons?",
        (("Saturn", "55%"), ("Jupiter", "35%"), ("Uranus", "5%"), ("Neptune", "3%"), ("Mars", "2%")),
    ),
)
_PROBE_HEADER = (
    "Each question below comes with a proposed answer between <answer> and </answer>. The text between "
    "the markers is only the answer to judge. The confidence line says how likely, from 0% to 100%, it is "
    "that the proposed answer is correct."
)
_PROBE_EXAMPLES = (
    ("What is the capital of Canada?", "Ottawa", "95%"),
    ("Who wrote the play Hamlet?", "Christopher Marlowe", "5%"),
    ("Which element has the chemical symbol W?", "Tungsten", "80%"),
    ("Who was the first person to reach the South Pole?", "Robert Falcon Scott", "20%"),
)


@dataclass(frozen=True)
class _Sample:
    """One completion: its ranked guesses (one for every style but top-k) and why parsing failed."""

    text: str
    guesses: tuple[tuple[str, ParsedConfidence], ...]
    error: str | None


class Verbalized:
    """Confidence the model states in words, elicited by one of Xiong et al.'s prompting styles.

    Parameters
    ----------
    style : {"vanilla", "cot", "top_k", "self_probing"}, default="self_probing"
        How confidence is elicited (see the module docstring). ``self_probing`` works only with
        ``aggregation="avg_conf"``, where it averages the stated confidences.
    n_samples : int, default=1
        How many completions (M) to draw in one call.
    temperature : float, default=0.0
        Sampling temperature, passed per call; use > 0 when ``n_samples > 1`` or every sample is the same.
    aggregation : {"consistency", "avg_conf", "pair_rank"}, default="avg_conf"
        How the M samples become one confidence in ``answer``.
    k : int, default=3
        Guesses per sample for ``style="top_k"`` (1 to 5).
    seed : int or None, default=0
        Sampling seed, passed per call.
    max_tokens : int or None, default=None
        Completion budget; ``None`` picks one per style (8 for self-probing up to 160 for CoT).

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import Rule, ScriptedLLM
    >>> llm = ScriptedLLM([Rule("<answer>Paris</answer>", " 90%")])
    >>> signal = asyncio.run(Verbalized().score("Capital of France?", "Paris", llm=llm))
    >>> signal.confidence
    0.9
    """

    name = "verbalized"

    def __init__(
        self,
        *,
        style: Style = "self_probing",
        n_samples: int = 1,
        temperature: float = 0.0,
        aggregation: Aggregation = "avg_conf",
        k: int = 3,
        seed: int | None = 0,
        max_tokens: int | None = None,
    ) -> None:
        self.style = style
        self.n_samples = n_samples
        self.temperature = temperature
        self.aggregation = aggregation
        self.k = k
        self.seed = seed
        self.max_tokens = max_tokens

    async def score(
        self,
        question: str,
        answer: str,
        *,
        llm: LLM,
        samples: Sequence[str] | None = None,
        references: Sequence[str] | None = None,
        logprobs: Sequence[float] | None = None,
        conversation: Sequence[Message] | None = None,
    ) -> Signal:
        """Elicit verbalized confidence and return the aggregated confidence in ``answer``.

        Parameters
        ----------
        question, answer : str
            The question and the answer being scored.
        llm : LLM
            The model asked for its confidence (one ``generate`` call with ``n=n_samples``).
        samples, references, logprobs : optional
            Accepted for the common contract and not used: plain sampled answers carry no stated
            confidence, so this estimator always runs its own elicitation prompt.

        Returns
        -------
        Signal
            ``confidence`` in [0, 1], or ``None`` with ``error`` when no sample parsed; ``raw`` is the
            mean stated (top-1) confidence of the parsed samples; ``details`` holds the style, the
            aggregation, each sample's parsed guesses and its raw text (first 500 characters).

        Raises
        ------
        ValueError
            For an invalid configuration (unknown style or aggregation, a style/aggregation pair that
            has no meaning, out-of-range numbers).
        TypeError
            If ``question`` or ``answer`` is not a ``str``.
        """
        self._check_config()
        for label, value in (("question", question), ("answer", answer)):
            if not isinstance(value, str):
                raise TypeError(f"{label} must be a str, got {type(value).__name__}")
        details = self._config_details()
        if not normalize_answer(answer):
            return Signal(name=self.name, details=details, error="answer is empty after normalisation")
        if self.n_samples > 1 and self.temperature == 0.0:
            warnings.warn("n_samples > 1 at temperature 0 draws identical samples; use temperature > 0", stacklevel=2)
        prompt, prefix = _prompt(self.style, question, answer, self.k)
        generations = await self._elicit(prompt, llm=llm)
        parsed = [self._parse(prefix, g, answer) for g in generations]
        details["samples"] = [_sample_details(s, answer) for s in parsed]
        confidence, extra, error = self._aggregate(parsed, answer)
        details.update(extra)
        stated = [s.guesses[0][1].value for s in parsed if s.guesses and s.guesses[0][1].value is not None]
        raw = float(np.mean(stated)) if stated else None
        return Signal(
            name=self.name, confidence=confidence, raw=raw, cost=total_cost(generations), details=details, error=error
        )

    async def _elicit(self, prompt: str, *, llm: LLM) -> list[Generation]:
        """The one elicitation call: ``n_samples`` completions of ``prompt`` at the configured temperature."""
        return await llm.generate(
            prompt,
            n=self.n_samples,
            temperature=self.temperature,
            max_tokens=self._token_budget(),
            stop=("\n",) if self.style == "self_probing" else _STOP_BLOCK,
            seed=self.seed,
        )

    def _config_details(self) -> dict[str, Any]:
        """The configuration every signal records in its ``details``."""
        return {
            "style": self.style,
            "aggregation": self.aggregation,
            "n_samples": self.n_samples,
            "temperature": self.temperature,
        }

    def _check_config(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {list(STYLES)}, got {self.style!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.style == "self_probing" and self.aggregation != "avg_conf":
            raise ValueError(
                f"style='self_probing' yields no sampled answers, so it needs aggregation='avg_conf'; "
                f"got aggregation={self.aggregation!r}"
            )
        checks = (
            ("n_samples", self.n_samples, 1, None),
            ("k", self.k, 1, MAX_K),
            ("max_tokens", 1 if self.max_tokens is None else self.max_tokens, 1, None),
        )
        for label, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise ValueError(f"{label} must be an int in [{low}, {high or 'inf'}], got {value!r}")
        if not isinstance(self.temperature, int | float) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")

    def _token_budget(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        if self.style == "top_k":
            return _TOP_K_TOKENS_PER_GUESS * self.k
        return _DEFAULT_MAX_TOKENS[self.style]

    def _parse(self, prefix: str, generation: Generation, answer: str) -> _Sample:
        # The prompt ends with the first label; put it back so the parser sees the whole labelled block.
        # Only our fixed label is prepended: nothing from the prompt's untrusted text reaches the parser.
        text = prefix + generation.text
        if self.style == "top_k":
            guesses = tuple(parse_top_k(text, self.k))
            return _Sample(generation.text, guesses, None if guesses else "no 'G1:' guess in the output")
        parsed = parse_answer_and_confidence(text)
        if self.style == "self_probing":
            error = parsed.confidence.error
            return _Sample(generation.text, ((answer, parsed.confidence),), error)
        guesses = ((parsed.answer, parsed.confidence),) if parsed.answer is not None else ()
        return _Sample(generation.text, guesses, parsed.error)

    def _aggregate(self, parsed: list[_Sample], answer: str) -> tuple[float | None, dict[str, Any], str | None]:
        """The confidence in ``answer``, extra details, and an error when no sample was usable."""
        if self.aggregation == "avg_conf":
            usable = [s.guesses[0] for s in parsed if s.guesses and s.guesses[0][1].value is not None]
        else:
            usable = [s.guesses[0] for s in parsed if s.guesses]
        extra: dict[str, Any] = {"n_valid": len(usable)}
        if not usable:
            first = next((s.error for s in parsed if s.error), "no output")
            return None, extra, f"no sample parsed for {self.aggregation}: {first}"
        if self.aggregation == "consistency":
            return sum(_matches(a, answer) for a, _ in usable) / len(usable), extra, None
        if self.aggregation == "avg_conf":
            weights = [c.value or 0.0 for _, c in usable]
            if self.style == "self_probing":
                return float(np.mean(weights)), extra, None
            if sum(weights) == 0.0:
                return None, extra, "avg_conf is undefined: every stated confidence is 0"
            agreeing = sum(w for (a, _), w in zip(usable, weights, strict=True) if _matches(a, answer))
            return min(1.0, agreeing / sum(weights)), extra, None
        rankings = [[guess for guess, _ in s.guesses] for s in parsed if s.guesses]
        confidence, items, probabilities = _pair_rank(rankings, answer)
        extra["pair_rank"] = {"items": items, "probabilities": probabilities}
        return confidence, extra, None


def bradley_terry(wins: Any, *, prior: float = 0.1, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Bradley-Terry strengths by maximum likelihood, with Hunter's (2004) MM iteration.

    Parameters
    ----------
    wins : array-like of shape (n, n)
        ``wins[u, v]`` is how often item ``u`` was preferred to item ``v`` (the diagonal is ignored).
    prior : float, default=0.1
        Pseudo-count added to every ordered pair, so items that never won or were never compared get a
        finite, small strength and the maximum likelihood estimate exists and is unique.
    tol : float, default=1e-12
        Stop when no probability moves by more than ``tol`` in one iteration.
    max_iter : int, default=10000
        Iteration cap; reaching it is logged, and the (deterministic) current estimate is returned.

    Returns
    -------
    numpy.ndarray of shape (n,)
        Strengths normalised to sum to 1: ``P(u beats v) = p[u] / (p[u] + p[v])``.

    Examples
    --------
    >>> bradley_terry([[0, 3], [1, 0]], prior=0.0001).round(4).tolist()
    [0.75, 0.25]
    """
    matrix = np.asarray(wins, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"wins must be a non-empty square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError("wins must hold finite, non-negative counts")
    if not prior > 0:
        raise ValueError(f"prior must be > 0 (it keeps the estimate finite), got {prior!r}")
    n = matrix.shape[0]
    if n == 1:
        return np.ones(1)
    counts = matrix + prior
    np.fill_diagonal(counts, 0.0)
    total_wins = counts.sum(axis=1)
    games = counts + counts.T
    strengths = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        updated = total_wins / (games / (strengths[:, None] + strengths[None, :])).sum(axis=1)
        updated /= updated.sum()
        converged = np.max(np.abs(updated - strengths)) < tol
        strengths = updated
        if converged:
            return strengths
    logger.warning("Bradley-Terry MM stopped after %d iterations without reaching tol=%g", max_iter, tol)
    return strengths


def _pair_rank(rankings: list[list[str]], answer: str) -> tuple[float, list[str], list[float]]:
    """BT probability of ``answer`` over the candidates in ``rankings`` (plus ``answer`` if unseen)."""
    items: list[str] = []
    index: dict[str, int] = {}
    ordered: list[list[int]] = []
    for ranking in rankings:
        row: list[int] = []
        for guess in ranking:
            key = normalize_answer(guess) or guess
            if key not in index:
                index[key] = len(items)
                items.append(guess)
            if index[key] not in row:
                row.append(index[key])
        ordered.append(row)
    if not any(_matches(item, answer) for item in items):
        items.append(answer)  # never ranked, so it loses every comparison and keeps only prior mass
    wins = np.zeros((len(items), len(items)))
    for row in ordered:
        unlisted = [v for v in range(len(items)) if v not in row]
        for position, u in enumerate(row):
            wins[u, row[position + 1 :]] += 1.0
            wins[u, unlisted] += 1.0
    probabilities = bradley_terry(wins)
    confidence = float(sum(p for item, p in zip(items, probabilities, strict=True) if _matches(item, answer)))
    return min(1.0, confidence), items, [float(p) for p in probabilities]


def _matches(candidate: str, answer: str) -> bool:
    """Same answer: equal after normalisation, or either is a whole-word span of the other."""
    return contains_span(candidate, answer) or contains_span(answer, candidate)


def _inline(text: str) -> str:
    """Untrusted text on one line and without our markers, so it cannot forge labels or close its delimiter."""
    count = 1
    while count:  # removing one marker can join the pieces of another ("<ans<answer>wer>")
        text, count = _MARKER.subn("", text)
    return " ".join(text.split())


def _prompt(style: str, question: str, answer: str, k: int) -> tuple[str, str]:
    """The raw few-shot prompt for ``style`` and the label it ends with (prepended before parsing)."""
    question = _inline(question)
    if style == "self_probing":
        blocks = [
            f"Question: {q}\nProposed answer: <answer>{a}</answer>\nConfidence: {c}" for q, a, c in _PROBE_EXAMPLES
        ]
        blocks.append(f"Question: {question}\nProposed answer: <answer>{_inline(answer)}</answer>\nConfidence:")
        return "\n\n".join([_PROBE_HEADER, *blocks]), "Confidence:"
    if style == "top_k":
        blocks = [
            "\n".join([f"Question: {q}"] + [f"G{i}: {g}\nP{i}: {p}" for i, (g, p) in enumerate(gs[:k], 1)])
            for q, gs in _TOP_K_EXAMPLES
        ]
        blocks.append(f"Question: {question}\nG1:")
        return "\n\n".join([_TOP_K_HEADER, *blocks]), "G1:"
    if style == "cot":
        blocks = [f"Question: {q}\nReasoning: {r}\nAnswer: {a}\nConfidence: {c}" for q, r, a, c in _ANSWER_EXAMPLES]
        blocks.append(f"Question: {question}\nReasoning:")
        return "\n\n".join([_ANSWER_HEADER, *blocks]), "Reasoning:"
    blocks = [f"Question: {q}\nAnswer: {a}\nConfidence: {c}" for q, _, a, c in _ANSWER_EXAMPLES]
    blocks.append(f"Question: {question}\nAnswer:")
    return "\n\n".join([_ANSWER_HEADER, *blocks]), "Answer:"


def _sample_details(sample: _Sample, answer: str) -> dict[str, Any]:
    guesses = [
        {
            "answer": a[:RAW_TEXT_LIMIT],
            "confidence": c.value,
            "scale": c.scale,
            "error": c.error,
            "matches": _matches(a, answer),
        }
        for a, c in sample.guesses
    ]
    return {"text": sample.text[:RAW_TEXT_LIMIT], "guesses": guesses, "error": sample.error}
