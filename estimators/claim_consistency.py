"""Claim-level consistency: is each claim of a long answer supported by the model's other sampled answers?

After SelfCheckGPT (Manakul et al., 2023): a model that knows a fact states it again when sampled; an
invented detail varies from sample to sample. Exact-match agreement of whole paragraphs is ~never, so each
claim is scored on its own: its support by each sample (best MiniLM cosine to the sample's sentences, or
content-word overlap without an embedder, times ``1 - missing_penalty`` for each of its numbers and names
the sample never mentions), averaged over the samples, as SelfCheckGPT's BERTScore variant averages over
samples. The scoring is ``estimators.claim_support.score_claims`` with one group per sample.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from estimators._checks import check_positive_int
from estimators.base import LLM, Cost, Generation, Message, Signal, total_cost
from estimators.claim_support import Aggregate, score_claims
from estimators.claims import split_claims
from retrieval.base import Embedder

__all__ = ["ClaimConsistency"]


class ClaimConsistency:
    """Support of each claim by M sampled answers; the answer's confidence aggregates the claims.

    Parameters
    ----------
    embedder : Embedder or None, default=None
        Sentence embedder (e.g. ``retrieval.MiniLMEmbedder()``); ``None`` scores by content-word overlap.
    aggregate : {"min", "mean"}, default="mean"
        ``"min"``: the weakest claim; ``"mean"``: the average claim.
    missing_penalty : float, default=0.5
        Each number or name of a claim that a sample does not mention multiplies that sample's support by
        ``1 - missing_penalty``.
    window : int, default=2
        Sample units are sentences and runs of up to ``window`` adjacent sentences.
    n_samples : int, default=5
        Samples drawn from ``llm`` when the caller gives none (one call with ``n=n_samples``).
    temperature : float, default=1.0
        Sampling temperature of the drawn samples.
    max_tokens : int, default=256
        Length limit of each drawn sample (long answers need room).
    seed : int, default=0
        Seed passed to the model.

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import ScriptedLLM
    >>> signal = asyncio.run(ClaimConsistency().score(
    ...     "Who was Ada Lovelace?", "Ada Lovelace was a mathematician. She was born in 1815.",
    ...     llm=ScriptedLLM([]), samples=["Ada Lovelace was a mathematician born in 1815.",
    ...                                   "Ada Lovelace, a mathematician, was born in 1816."]))
    >>> [c["support"] for c in signal.details["claims"]]
    [1.0, 0.625]
    """

    name = "claim_consistency"

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        aggregate: Aggregate = "mean",
        missing_penalty: float = 0.5,
        window: int = 2,
        n_samples: int = 5,
        temperature: float = 1.0,
        max_tokens: int = 256,
        seed: int = 0,
    ) -> None:
        self.embedder = embedder
        self.aggregate = aggregate
        self.missing_penalty = missing_penalty
        self.window = window
        self.n_samples = n_samples
        self.temperature = temperature
        self.max_tokens = max_tokens
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
        """Score each claim of ``answer`` by the ``samples`` (given, or drawn from ``llm``).

        ``references`` and ``logprobs`` are not used. Samples are drawn in the request's conversation when
        there is one. Returns ``confidence=None`` with an error when the answer has no claim or no sample
        has any text.

        Raises
        ------
        TypeError, ValueError
            For arguments or configuration of the wrong type or range.
        """
        self._check_config()
        if not isinstance(question, str) or not isinstance(answer, str):
            raise TypeError("question and answer must be str")
        if samples is not None and (isinstance(samples, str) or not all(isinstance(s, str) for s in samples)):
            raise TypeError("samples must be a sequence of str (not a single str)")
        started = time.perf_counter()
        claims = split_claims(answer)
        if not claims:
            return Signal(name=self.name, error="no claims in the answer", details={"claims": []})
        generations: list[Generation] = []
        if samples is None:
            generations = await llm.generate(
                list(conversation) if conversation else [{"role": "user", "content": question}],
                n=self.n_samples,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=self.seed,
            )
            samples = [g.text for g in generations]
        texts = [s.strip() for s in samples if s.strip()]
        if not texts:
            return Signal(
                name=self.name,
                cost=total_cost(generations),
                error="no samples to compare with",
                details={"samples": list(samples)},
            )
        scores = await asyncio.to_thread(
            score_claims,
            claims,
            [[t] for t in texts],
            embedder=self.embedder,
            extra_vocabulary=question,
            missing_penalty=self.missing_penalty,
            window=self.window,
        )
        values = [s.support for s in scores]
        confidence = min(values) if self.aggregate == "min" else float(np.mean(values))
        details: dict[str, Any] = {
            "claims": [s.as_dict() for s in scores],
            "aggregate": self.aggregate,
            "samples": texts,
            "n_samples_used": len(texts),
            "similarity": self.embedder.name if self.embedder is not None else "content-word overlap",
        }
        spent = total_cost(generations)
        wall = Cost(seconds=time.perf_counter() - started)
        return Signal(
            name=self.name,
            confidence=confidence,
            raw=confidence,
            cost=Cost(calls=spent.calls, prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens)
            + wall,
            details=details,
        )

    def _check_config(self) -> None:
        if self.aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate must be 'min' or 'mean', got {self.aggregate!r}")
        for name in ("n_samples", "max_tokens", "window"):
            check_positive_int(name, getattr(self, name))
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must lie in [0, 2], got {self.temperature!r}")
