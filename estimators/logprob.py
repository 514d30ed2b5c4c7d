"""Token probability: how likely the model found its own answer, token by token (the free baseline)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from numbers import Real
from typing import Literal

from estimators._checks import check_positive_int
from estimators.base import LLM, Generation, Message, Signal, total_cost
from estimators.text import normalize_answer

__all__ = ["TokenProbability"]

logger = logging.getLogger(__name__)

Aggregate = Literal["mean", "min"]
_AGGREGATES: tuple[str, ...] = ("mean", "min")
# Endpoints round log-probs; a token printed as +1e-7 is a certain token, not an invalid value.
_ROUNDING_SLACK = 1e-6


class TokenProbability:
    """Confidence from the answer's own token log-probs: the geometric-mean (or weakest) token probability.

    With ``aggregate="mean"`` the confidence is ``exp(mean log-prob)``, the geometric mean of the token
    probabilities (one over the perplexity); with ``"min"`` it is the probability of the least likely
    token, which reacts to a single invented name or number. Free when the log-probs came with the answer.

    Parameters
    ----------
    aggregate : {"mean", "min"}, default "mean"
        Which statistic becomes the confidence; both are always in ``details``.
    regenerate : bool, default False
        When no log-probs are supplied, ask ``llm`` for its greedy answer to the question with log-probs
        and use them only if that answer normalises to the same text as ``answer``. Log-probs of a
        different text say nothing about this answer, and only a greedy (temperature 0) answer can be
        reproduced, so a sampled or edited answer gets ``confidence=None`` rather than a wrong number.
    max_tokens : int, default 64
        Tokens allowed for the regenerated answer.

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import ScriptedLLM
    >>> signal = asyncio.run(TokenProbability().score("Q?", "A b", llm=ScriptedLLM(), logprobs=[-0.1, -0.3]))
    >>> round(signal.confidence, 4), signal.details["min_logprob"]
    (0.8187, -0.3)
    """

    name = "logprob"

    def __init__(self, *, aggregate: Aggregate = "mean", regenerate: bool = False, max_tokens: int = 64) -> None:
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {list(_AGGREGATES)}, got {aggregate!r}")
        check_positive_int("max_tokens", max_tokens)
        self.aggregate = aggregate
        self.regenerate = regenerate
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
        """Score ``answer`` by the probability the model gave its tokens.

        Parameters
        ----------
        question, answer : str
            The question and the answer under assessment.
        llm : LLM
            Used only with ``regenerate=True`` and no ``logprobs``.
        samples, references : optional
            Not used.
        logprobs : sequence of float, optional
            Per-token log-probs of ``answer`` as generated.

        Returns
        -------
        Signal
            ``confidence`` is ``exp`` of the chosen aggregate and ``raw`` is that aggregate (a log-prob);
            ``details`` hold ``mean_logprob``, ``min_logprob``, ``n_tokens``, ``exp_mean``, ``exp_min`` and
            ``source`` ("supplied" or "regenerated"). ``confidence`` is ``None`` with ``error`` when no
            usable log-probs exist.

        Raises
        ------
        TypeError
            If ``logprobs`` is not a sequence of real numbers.
        """
        if logprobs is not None:
            return self._from_logprobs(_as_floats(logprobs), source="supplied", spent=[])
        if not self.regenerate:
            return Signal(name=self.name, error="no token log-probs")
        generations = await llm.generate(
            [{"role": "user", "content": question}], n=1, temperature=0.0, max_tokens=self.max_tokens, logprobs=0
        )
        return self._from_regenerated(answer, generations)

    def _from_regenerated(self, answer: str, generations: list[Generation]) -> Signal:
        text = generations[0].text if generations else None
        values = generations[0].logprobs if generations else None
        details = {"source": "regenerated", "regenerated": text}
        if text is None or values is None:
            return Signal(name=self.name, cost=total_cost(generations), details=details, error="no token log-probs")
        if normalize_answer(text) != normalize_answer(answer):
            logger.debug("greedy regeneration %r differs from the answer %r", text, answer)
            return Signal(
                name=self.name, cost=total_cost(generations), details=details,
                error="the regenerated greedy answer differs from the answer",
            )
        return self._from_logprobs(values, source="regenerated", spent=generations)

    def _from_logprobs(self, values: list[float], *, source: str, spent: list[Generation]) -> Signal:
        cost = total_cost(spent)
        if not values:
            return Signal(name=self.name, cost=cost, details={"source": source}, error="no token log-probs")
        if any(not math.isfinite(v) or v > _ROUNDING_SLACK for v in values):
            return Signal(
                name=self.name, cost=cost, details={"source": source, "logprobs": [repr(v) for v in values]},
                error="token log-probs must be finite and at most 0",
            )
        values = [min(v, 0.0) for v in values]
        mean, low = math.fsum(values) / len(values), min(values)
        chosen = mean if self.aggregate == "mean" else low
        return Signal(
            name=self.name,
            confidence=math.exp(chosen),
            raw=chosen,
            cost=cost,
            details={
                "source": source, "aggregate": self.aggregate, "mean_logprob": mean, "min_logprob": low,
                "n_tokens": len(values), "exp_mean": math.exp(mean), "exp_min": math.exp(low),
            },
        )


def _as_floats(logprobs: Iterable[float]) -> list[float]:
    # Any iterable of reals is accepted (lists, tuples, numpy arrays); text is a caller's mistake.
    if isinstance(logprobs, str | bytes) or not isinstance(logprobs, Iterable):
        raise TypeError(f"logprobs must be a sequence of floats, got {type(logprobs).__name__}")
    bad = [v for v in logprobs if isinstance(v, bool) or not isinstance(v, Real)]
    if bad:
        raise TypeError(f"logprobs must hold real numbers, got {bad[0]!r} ({type(bad[0]).__name__})")
    return [float(v) for v in logprobs]
