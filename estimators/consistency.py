"""Multi-sample consistency and semantic entropy: does the model keep giving the same answer?

Xiong et al. measure consistency as the fraction of sampled answers that agree with the answer under
assessment; Farquhar et al. cluster the samples by meaning and take the entropy over clusters. Both come
from one set of samples, drawn here in small batches that stop as soon as a Beta posterior on the
agreement rate is decisive (in the spirit of adaptive consistency), so easy questions cost fewer calls.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy.stats import beta

from estimators._checks import check_positive_int
from estimators.base import LLM, Cost, Generation, Message, Signal, SupportsDisagreementStop, total_cost
from estimators.equivalence import Equivalence, ExactMatch

__all__ = ["Consistency", "cluster_probabilities", "semantic_entropy"]

logger = logging.getLogger(__name__)

MIN_SAMPLE_TOKENS = 12
"""The shortest a sample may be cut when the length is fitted to the answer. On 600 development questions of
the embedded model, cutting every sample at 12 tokens left the agreement AUROC unchanged (-0.000 [-0.001,
+0.001]), changed the agreement of 0.5% of the questions, and saved a third of the decoding steps
(``benchmarks/results/sample_length.md``)."""


@dataclass
class _Pool:
    """The samples of one request (a local, never stored on the estimator)."""

    texts: list[str] = field(default_factory=list)
    logprobs: list[list[float] | None] = field(default_factory=list)
    agrees: list[bool] = field(default_factory=list)
    spent: list[Generation | Cost] = field(default_factory=list)
    drawn: int = 0
    cut_when_settled: bool = False  # drawn samples may end where they could no longer agree


class Consistency:
    """Agreement of sampled answers with the answer, plus semantic clusters and their entropy.

    Samples are the caller's (``samples=``; no LLM calls) or drawn from ``llm`` as the chat question at
    ``temperature``, ``batch_size`` at a time with seed ``seed + samples drawn so far``. With ``adaptive``,
    drawing stops once the Beta(1 + agree, 1 + disagree) posterior puts at least ``stop_confidence`` on
    the agreement rate lying above ``band[1]`` or below ``band[0]``: the decision is then clear and more
    samples would not change it. An empty sample counts as a disagreement and forms a cluster of its own
    (a model that says nothing did not repeat the answer), and is never sent to the equivalence judge.

    Parameters
    ----------
    n_samples : int, default 5
        Most samples drawn per request.
    temperature : float, default 1.0
        Sampling temperature.
    equivalence : Equivalence, optional
        Judge of "same answer"; default ``ExactMatch()``.
    adaptive : bool, default True
        Draw in batches and stop early when decisive; otherwise draw all samples in one call.
    batch_size : int, default 2
        Samples per call when adaptive.
    band : tuple of float, default (0.3, 0.7)
        The undecided band of agreement rates.
    stop_confidence : float, default 0.9
        Posterior probability outside the band needed to stop. With a uniform prior, unanimous agreement
        needs 7 samples to reach 0.9 above 0.7 (1 - 0.7**7 = 0.92); 4 samples reach only 0.83.
    seed : int, default 0
        Base seed of the draws.
    max_tokens : int, default 32
        Most tokens per sampled answer.
    fit_to_answer : bool, default True
        With ``ExactMatch`` (the default judge), cut the samples at ``max(MIN_SAMPLE_TOKENS, len(answer) // 2
        + 4)`` tokens (at most ``max_tokens``): a sample more than twice the answer's length cannot agree with
        it, and the longest sample sets how long the whole batch decodes. Other judges get ``max_tokens``. An
        LLM that can end a sample by its words (``SupportsDisagreementStop``, the embedded model) also ends it as
        soon as it can no longer agree with the answer (``ExactMatch.could_agree``); its verdict is the same as
        the whole sample's, only its text (and so the clusters among the samples) is shorter.
    top_up : bool, default False
        When ``samples`` are supplied but fewer than ``n_samples``, draw the rest from ``llm``.

    Examples
    --------
    >>> import asyncio
    >>> from estimators.testing import ScriptedLLM
    >>> signal = asyncio.run(Consistency().score("Q?", "Paris", llm=ScriptedLLM(), samples=["Paris", "Lyon"]))
    >>> signal.confidence, signal.details["n_clusters"], round(signal.raw, 4)
    (0.5, 2, 0.6931)
    """

    name = "consistency"

    def __init__(
        self,
        *,
        n_samples: int = 5,
        temperature: float = 1.0,
        equivalence: Equivalence | None = None,
        adaptive: bool = True,
        batch_size: int = 2,
        band: tuple[float, float] = (0.3, 0.7),
        stop_confidence: float = 0.9,
        seed: int = 0,
        max_tokens: int = 32,
        fit_to_answer: bool = True,
        top_up: bool = False,
    ) -> None:
        for label, value in (("n_samples", n_samples), ("batch_size", batch_size), ("max_tokens", max_tokens)):
            check_positive_int(label, value)
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"temperature must lie in [0, 2], got {temperature!r}")
        if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
            raise ValueError(f"band must be (low, high) with 0 <= low <= high <= 1, got {band!r}")
        if not 0.0 < stop_confidence <= 1.0:
            raise ValueError(f"stop_confidence must lie in (0, 1], got {stop_confidence!r}")
        if equivalence is not None and not isinstance(equivalence, Equivalence):
            raise TypeError(f"equivalence must implement Equivalence, got {type(equivalence).__name__}")
        self.n_samples = n_samples
        self.temperature = temperature
        self.equivalence = equivalence if equivalence is not None else ExactMatch()
        self.adaptive = adaptive
        self.batch_size = batch_size
        self.band = (float(band[0]), float(band[1]))
        self.stop_confidence = stop_confidence
        self.seed = seed
        self.max_tokens = max_tokens
        self.fit_to_answer = fit_to_answer
        self.top_up = top_up

    def draws(self, samples: Sequence[str] | None) -> bool:
        """Whether scoring with ``samples`` (the caller's, or ``None``) may call the LLM for more."""
        return samples is None or self.top_up

    def sample_tokens(self, answer: str) -> int:
        """How many tokens each sample may run to when judging ``answer`` (see ``fit_to_answer``)."""
        if not self.fit_to_answer or not isinstance(self.equivalence, ExactMatch):
            return self.max_tokens
        # twice the answer's length at about 4 characters a token, with a margin
        return min(self.max_tokens, max(MIN_SAMPLE_TOKENS, len(answer) // 2 + 4))

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
        """Score ``answer`` by how often sampled answers agree with it.

        Parameters
        ----------
        question, answer : str
            The question and the answer under assessment (the primary answer).
        llm : LLM
            Samples are drawn from it unless ``samples`` are supplied (and ``top_up`` is off).
        samples : sequence of str, optional
            Already sampled answers; used as they are, without LLM calls.
        references, logprobs : optional
            Not used.
        conversation : sequence of Message, optional
            The request's recent messages ending with the question: samples are drawn there, as the primary
            answer was (default: the question alone).

        Returns
        -------
        Signal
            ``confidence`` is the agreement rate (the fraction of samples equivalent to ``answer``); ``raw``
            is the semantic entropy in nats. ``details`` hold ``samples`` (with ``cut_when_settled``, drawn samples
            may stop mid-answer, where they could no longer agree with ``answer``), ``n_samples_used``,
            ``stopped_early``, ``agreement``, ``clusters`` (indices into ``[answer, *samples]``),
            ``n_clusters``, ``cluster_probabilities``, ``probability_source`` ("likelihood" when every
            sample has token log-probs, else "counts"), ``semantic_entropy`` and ``normalised_entropy``.
            Cluster probabilities come from the samples only (the primary answer is what is being judged,
            not a draw), so the primary's cluster gets the agreement rate under counts.

        Raises
        ------
        TypeError
            If ``samples`` is not a sequence of strings.
        """
        if not answer.strip():
            return Signal(name=self.name, error="empty answer", details={"answer": answer})
        pool = _Pool()
        if samples is not None:
            await self._add(pool, question, answer, _as_texts(samples), [None] * len(samples))
        may_draw = self.draws(samples)
        stopped_early = False
        while may_draw and len(pool.texts) < self.n_samples:
            if self.adaptive and self._decisive(pool.agrees):
                stopped_early = True
                break
            if not await self._draw(pool, question, answer, llm, conversation):
                break
        if not pool.texts:
            return Signal(name=self.name, cost=total_cost(pool.spent), error="no samples to compare with")
        return await self._summarise(pool, question, stopped_early=stopped_early)

    async def _draw(
        self, pool: _Pool, question: str, answer: str, llm: LLM, conversation: Sequence[Message] | None
    ) -> bool:
        """Draw one batch into ``pool``; ``False`` when the endpoint returned nothing.

        The samples are asked in the request's own conversation when there is one: they must answer what the
        primary answer answered (a follow-up's pronoun means nothing without the turns before it).
        """
        want = self.n_samples - len(pool.texts)
        n = min(self.batch_size, want) if self.adaptive else want
        prompt = list(conversation) if conversation else [{"role": "user", "content": question}]
        asked = {
            "n": n,
            "temperature": self.temperature,
            "max_tokens": self.sample_tokens(answer),
            "logprobs": 1,
            "seed": self.seed + pool.drawn,
        }
        judge = self.equivalence
        if self.fit_to_answer and isinstance(judge, ExactMatch) and isinstance(llm, SupportsDisagreementStop):
            generations = await llm.generate_until_disagreeing(
                prompt, answer=answer, min_span_fraction=judge.min_span_fraction, **asked
            )
            pool.cut_when_settled = True
        else:
            generations = await llm.generate(prompt, **asked)
        pool.drawn += n
        pool.spent.extend(generations)
        if not generations:
            logger.warning("the endpoint returned no samples for a request of %d", n)
            return False
        texts = [g.text.strip() for g in generations]
        await self._add(pool, question, answer, texts, [g.logprobs for g in generations])
        return True

    async def _add(
        self, pool: _Pool, question: str, answer: str, texts: list[str], logprobs: list[list[float] | None]
    ) -> None:
        """Append samples with their agreement with ``answer``; empty samples skip the judge and disagree."""
        judged = [text for text in texts if text]
        verdicts, cost = await self.equivalence.compare(question, answer, judged) if judged else ([], Cost())
        pool.spent.append(cost)
        answers = iter(verdicts)
        pool.agrees.extend(next(answers) if text else False for text in texts)
        pool.texts.extend(texts)
        pool.logprobs.extend(logprobs)

    def _decisive(self, agrees: list[bool]) -> bool:
        """Whether the posterior on the agreement rate is confidently outside the undecided band."""
        a, b = 1 + sum(agrees), 1 + len(agrees) - sum(agrees)
        low, high = self.band
        return bool(beta.sf(high, a, b) >= self.stop_confidence or beta.cdf(low, a, b) >= self.stop_confidence)

    async def _summarise(self, pool: _Pool, question: str, *, stopped_early: bool) -> Signal:
        clusters, cost = await _greedy_clusters(self.equivalence, question, pool)
        pool.spent.append(cost)
        log_likelihoods = _log_likelihoods(pool.logprobs)
        probabilities = cluster_probabilities(clusters, len(pool.texts), log_likelihoods)
        entropy = semantic_entropy(probabilities)
        n = len(pool.texts)
        agreement = sum(pool.agrees) / n
        return Signal(
            name=self.name,
            confidence=agreement,
            raw=entropy,
            cost=total_cost(pool.spent),
            details={
                "samples": pool.texts,
                "n_samples_used": n,
                "n_drawn": pool.drawn,
                "cut_when_settled": pool.cut_when_settled,
                "stopped_early": stopped_early,
                "agreement": agreement,
                "n_agree": sum(pool.agrees),
                "equivalence": self.equivalence.name,
                "clusters": clusters,
                "n_clusters": len(clusters),
                "cluster_probabilities": probabilities,
                "probability_source": "counts" if log_likelihoods is None else "likelihood",
                "semantic_entropy": entropy,
                "normalised_entropy": entropy / math.log(n) if n > 1 else 0.0,
            },
        )


async def _greedy_clusters(equivalence: Equivalence, question: str, pool: _Pool) -> tuple[list[list[int]], Cost]:
    """Cluster ``[answer, *samples]`` greedily; each text joins the first cluster whose founder it matches.

    The primary's cluster reuses the agreement verdicts already judged; each later founder is compared
    with all still-unclustered texts in one batch. Empty samples are singletons.
    """
    clusters = [[0] + [i + 1 for i, agrees in enumerate(pool.agrees) if agrees]]
    rest = [i + 1 for i, agrees in enumerate(pool.agrees) if not agrees and pool.texts[i]]
    costs: list[Cost] = []
    while rest:
        founder, others = rest[0], rest[1:]
        if not others:
            clusters.append([founder])
            break
        texts = [pool.texts[i - 1] for i in others]
        verdicts, cost = await equivalence.compare(question, pool.texts[founder - 1], texts)
        costs.append(cost)
        clusters.append([founder] + [i for i, same in zip(others, verdicts, strict=True) if same])
        rest = [i for i, same in zip(others, verdicts, strict=True) if not same]
    clusters.extend([i + 1] for i, text in enumerate(pool.texts) if not text)
    return clusters, total_cost(costs)


def _log_likelihoods(logprobs: list[list[float] | None]) -> list[float] | None:
    """Summed token log-probs per sample, or ``None`` unless every sample has finite, non-empty ones."""
    if not logprobs or any(not values or not all(math.isfinite(v) for v in values) for values in logprobs):
        return None
    return [math.fsum(values) for values in logprobs if values is not None]


def cluster_probabilities(
    clusters: Sequence[Sequence[int]], n_samples: int, log_likelihoods: Sequence[float] | None = None
) -> list[float]:
    """Probability of each cluster from the samples it holds.

    Parameters
    ----------
    clusters : sequence of sequence of int
        Indices into ``[primary, *samples]``; index 0 (the primary answer) carries no mass.
    n_samples : int
        Number of samples (indices 1..n_samples).
    log_likelihoods : sequence of float, optional
        Sequence log-likelihood of each sample; the samples are then weighted by their normalised
        likelihood (a softmax). Without them each sample weighs ``1 / n_samples``.

    Returns
    -------
    list of float
        One probability per cluster, in order, summing to 1 when ``n_samples >= 1``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if log_likelihoods is None:
        weights = [1.0 / n_samples] * n_samples
    else:
        if len(log_likelihoods) != n_samples:
            raise ValueError(f"got {len(log_likelihoods)} log-likelihoods for {n_samples} samples")
        top = max(log_likelihoods)
        exps = [math.exp(v - top) for v in log_likelihoods]  # shifted by the max so the largest is exp(0)
        total = math.fsum(exps)
        weights = [e / total for e in exps]
    return [math.fsum(weights[i - 1] for i in cluster if i > 0) for cluster in clusters]


def semantic_entropy(probabilities: Sequence[float]) -> float:
    """Shannon entropy in nats of cluster probabilities (zero-probability clusters contribute nothing)."""
    return max(0.0, -math.fsum(p * math.log(p) for p in probabilities if p > 0.0))


def _as_texts(samples: Sequence[str]) -> list[str]:
    if isinstance(samples, str) or not isinstance(samples, Sequence):
        raise TypeError(f"samples must be a sequence of strings, got {type(samples).__name__}")
    bad = [s for s in samples if not isinstance(s, str)]
    if bad:
        raise TypeError(f"samples must hold strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    return [s.strip() for s in samples]
