"""P(True): ask the model itself whether a proposed answer is correct (Kadavath et al., 2022).

The model reads a short few-shot block of questions with proposed answers judged "Yes" or "No", then the
item under assessment, and the estimator reads how much next-token probability it puts on "Yes" versus
"No". The prompt is a raw completion prompt so that it works on base models as well as chat models.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from estimators._checks import check_positive_int
from estimators.base import LLM, Generation, Message, Signal, TokenLogprob, total_cost
from estimators.text import normalize_answer

__all__ = ["PTrue", "p_true_prompt", "read_yes_no"]

logger = logging.getLogger(__name__)

Method = Literal["auto", "logprobs", "sampled"]
_METHODS: tuple[str, ...] = ("auto", "logprobs", "sampled")

# One correct and one wrong proposal keep the examples from teaching the model a default verdict.
_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("Which planet is known as the Red Planet?", "Mars", "Yes"),
    ("In which country is the city of Kyoto?", "China", "No"),
    ("What is the chemical symbol for gold?", "Au", "Yes"),
)
_HEADER = "Each proposed answer below was checked and marked Yes if it is correct and No if it is wrong."
_STOP: tuple[str, ...] = ("\n",)
_ROUNDING_SLACK = 1e-6  # endpoints round log-probs: a token printed as +1e-7 is a certain token
_BAD_LOGPROBS = "the verdict token's log-probs must be finite and at most 0"


def p_true_prompt(question: str, answer: str) -> str:
    """The raw completion prompt that asks whether ``answer`` is a correct answer to ``question``."""
    blocks = [_item(q, a) + f" {verdict}" for q, a, verdict in _EXAMPLES]
    blocks.append(_item(question, answer))
    return "\n\n".join([_HEADER, *blocks])


def _item(question: str, answer: str) -> str:
    # Newlines inside the item would break the one-line-per-field format the examples teach.
    question, answer = " ".join(question.split()), " ".join(answer.split())
    return f"Question: {question}\nProposed answer: {answer}\nIs the proposed answer correct? Yes or No.\nAnswer:"


def read_yes_no(text: str) -> bool | None:
    """``True`` if ``text`` starts with the word yes, ``False`` for no, ``None`` otherwise (any case, spacing)."""
    words = normalize_answer(text).split()
    if not words:
        return None
    return {"yes": True, "no": False}.get(words[0])


class PTrue:
    """The model's own probability that a proposed answer is true (P(True)).

    One greedy call generates a single token after a few-shot Yes/No prompt, asking for the ``top_k``
    most likely alternatives. P(Yes) and P(No) are the summed probabilities of every alternative that
    reads as yes or no ("Yes", " yes", "YES" are different tokens of one verdict). When an endpoint
    returns no log-probs, the estimator falls back to sampling ``n_samples`` verdicts and counting.

    Parameters
    ----------
    top_k : int, default 10
        Alternatives requested for the verdict token (most endpoints allow at most 20).
    method : {"auto", "logprobs", "sampled"}, default "auto"
        ``"auto"`` reads log-probs and samples only if the endpoint returned none; ``"logprobs"`` never
        samples; ``"sampled"`` skips the log-prob call (for endpoints known to have none).
    n_samples : int, default 8
        Verdicts drawn by the sampled fallback.
    temperature : float, default 1.0
        Sampling temperature of the fallback.
    seed : int, default 0
        Seed of the fallback's draws.

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import Rule, ScriptedLLM
    >>> llm = ScriptedLLM([Rule("Proposed answer: Rome", "Yes", logprob=-0.2, top=(("Yes", -0.2), ("No", -1.8)))])
    >>> signal = asyncio.run(PTrue().score("Capital of Italy?", "Rome", llm=llm))
    >>> round(signal.confidence, 3)
    0.832
    """

    name = "p_true"

    def __init__(
        self,
        *,
        top_k: int = 10,
        method: Method = "auto",
        n_samples: int = 8,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        check_positive_int("top_k", top_k)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
        check_positive_int("n_samples", n_samples)
        if not 0.0 < temperature <= 2.0:
            raise ValueError(f"temperature must lie in (0, 2] for sampling, got {temperature!r}")
        self.top_k = top_k
        self.method = method
        self.n_samples = n_samples
        self.temperature = temperature
        self.seed = seed

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
        """Score ``answer`` by the probability the model gives to "Yes, it is correct".

        Parameters
        ----------
        question, answer : str
            The question and the answer under assessment.
        llm : LLM
            The model asked for the verdict (usually the answering model).
        samples, references, logprobs : optional
            Not used: P(True) always asks the model.

        Returns
        -------
        Signal
            ``confidence`` is P(Yes) / (P(Yes) + P(No)) (or P(Yes) alone when "No" was not among the
            alternatives, flagged by ``details["normalised"]``), or the fraction of sampled "yes" verdicts
            with ``details["method"] == "sampled"``; ``raw`` is log P(Yes) for the log-prob method and
            ``None`` for the sampled one. ``confidence`` is ``None`` with ``error`` when neither verdict
            could be read or the answer is empty.
        """
        if not answer.strip():
            return Signal(name=self.name, error="empty answer", details={"answer": answer})
        prompt = p_true_prompt(question, answer)
        spent: list[Generation] = []
        if self.method != "sampled":
            greedy = await llm.generate(prompt, n=1, temperature=0.0, max_tokens=1, logprobs=self.top_k, stop=_STOP)
            spent.extend(greedy)
            first = greedy[0] if greedy else None
            if first is not None and first.tokens is not None:
                return self._from_logprobs(first, spent)
            if self.method == "logprobs":
                text = first.text if first is not None else None
                return Signal(
                    name=self.name, cost=total_cost(spent), error="the endpoint returned no log-probs",
                    details={"method": "logprobs", "text": text},
                )
            logger.debug("no log-probs for the P(True) verdict; sampling %d verdicts instead", self.n_samples)
        drawn = await llm.generate(
            prompt, n=self.n_samples, temperature=self.temperature, max_tokens=2, stop=_STOP, seed=self.seed
        )
        spent.extend(drawn)
        return self._from_samples([g.text for g in drawn], spent)

    def _from_logprobs(self, first: Generation, spent: list[Generation]) -> Signal:
        tokens = first.tokens or ()
        if not tokens:
            return Signal(
                name=self.name, cost=total_cost(spent), error="the model generated no verdict token",
                details={"method": "logprobs", "text": first.text},
            )
        alternatives = _alternatives(tokens[0])
        if any(not math.isfinite(lp) or lp > _ROUNDING_SLACK for lp in alternatives.values()):
            # model misbehaviour, not a bug: a NaN confidence or an overflow in exp() must not escape
            shown = [[token, repr(lp)] for token, lp in alternatives.items()]
            return Signal(
                name=self.name, cost=total_cost(spent), error=_BAD_LOGPROBS,
                details={"method": "logprobs", "text": first.text, "alternatives": shown},
            )
        p_yes = sum(math.exp(lp) for token, lp in alternatives.items() if read_yes_no(token) is True)
        p_no = sum(math.exp(lp) for token, lp in alternatives.items() if read_yes_no(token) is False)
        details = {
            "method": "logprobs", "text": first.text, "p_yes": p_yes, "p_no": p_no,
            "alternatives": [[token, lp] for token, lp in alternatives.items()],
        }
        if p_yes == 0.0 and p_no == 0.0:
            return Signal(
                name=self.name, cost=total_cost(spent), details=details,
                error="neither yes nor no among the verdict token's alternatives",
            )
        normalised = p_yes > 0.0 and p_no > 0.0
        confidence = p_yes / (p_yes + p_no) if normalised else p_yes
        return Signal(
            name=self.name,
            confidence=min(confidence, 1.0),  # alternatives can sum a hair over 1 in float arithmetic
            raw=math.log(p_yes) if p_yes > 0.0 else None,
            cost=total_cost(spent),
            details={**details, "normalised": normalised},
        )

    def _from_samples(self, texts: Iterable[str], spent: list[Generation]) -> Signal:
        texts = list(texts)
        verdicts = [read_yes_no(text) for text in texts]
        n_yes, n_no = verdicts.count(True), verdicts.count(False)
        details = {
            "method": "sampled", "samples": texts, "n_yes": n_yes, "n_no": n_no,
            "n_other": len(verdicts) - n_yes - n_no,
        }
        if n_yes + n_no == 0:
            return Signal(
                name=self.name, cost=total_cost(spent), details=details, error="no sampled verdict was yes or no"
            )
        return Signal(name=self.name, confidence=n_yes / (n_yes + n_no), cost=total_cost(spent), details=details)


def _alternatives(token: TokenLogprob) -> dict[str, float]:
    """The verdict step's alternatives by token text, including the chosen token (once)."""
    alternatives = dict(token.top)
    alternatives.setdefault(token.token, token.logprob)
    return alternatives
