"""Synchronous generation on a llama.cpp model, with log-probs read from the last position only.

llama-cpp-python computes log-probs only with ``logits_all=True``, which with Gemma's 262k-token
vocabulary makes a short answer ~34x slower. Here every step evaluates one token, reads that
position's logits, and reads the log-probs it needs and samples in numpy (about a millisecond a step).
Several samples at temperature > 0 are decoded together: every sample is a sequence sharing the prompt's KV
cells, and each step decodes one token per running sample in one batch (``LlamaEngine._sample_batched``).
Not thread-safe: the async wrapper in ``gate.backends.embedded.local`` confines each engine to one worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from estimators.base import Cost, Generation, TokenLogprob
from estimators.equivalence import ExactMatch
from gate.config import SampleDecoding

logger = logging.getLogger(__name__)

PROMPT_BLOCK = 16
"""Prompt tokens evaluated per batch; the unit of prompt reuse across requests."""


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn when temperature > 0 (llama.cpp's own defaults)."""

    top_k: int = 40
    top_p: float = 0.95


class Scores:
    """One position's next-token logits, with their log-normaliser computed once.

    A step reads log-probs for a few tokens only (the one drawn, its top alternatives), so the log-softmax of
    Gemma's 262k-token vocabulary is never built: the normaliser is one pass in float32 with a float64 sum
    (about 0.5 ms on this project's CPUs, against 1.6 ms for a float64 log-softmax).
    """

    __slots__ = ("_likeliest", "log_norm", "logits")

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits  # float32, owned: llama.cpp's own buffer is overwritten by the next decode
        top = float(logits.max())
        self.log_norm = top + math.log(float(np.exp(logits - top).sum(dtype=np.float64)))
        self._likeliest: dict[int, np.ndarray] = {}  # samples that share a row draw from the same scores

    def logprob(self, token: int) -> float:
        """The log-prob of ``token``."""
        return float(self.logits[token]) - self.log_norm

    def likeliest(self, k: int) -> np.ndarray:
        """The ``k`` likeliest tokens, likeliest first (the lower token id first among equal scores)."""
        if k not in self._likeliest:
            best = top_k(self.logits, k)
            best.flags.writeable = False  # shared by every draw from these scores
            self._likeliest[k] = best
        return self._likeliest[k]


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of ``values`` (1-D), largest first, the lower index first among equals.

    ``np.argpartition`` of Gemma's 262k scores takes 2.3 ms, and a sample draws from the top 40 at every token.
    Here ``values`` are cut into ``4 k`` chunks: the ``k``-th largest chunk maximum is a floor for the ``k``-th
    largest value (the ``k`` chunk maxima above it are ``k`` values at least that large), so only the few values
    at or above it are sorted. Exact, ties included, and 0.08 ms.
    """
    n = values.size
    k = min(k, n)
    if k == 1:
        return np.array([int(np.argmax(values))])
    candidates = np.arange(n)
    if n >= 16 * k:
        maxima = np.maximum.reduceat(values, np.arange(0, n, n // (4 * k)))
        candidates = np.flatnonzero(values >= np.partition(maxima, -k)[-k])
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order[:k]]


def draw_token(scores: Scores, temperature: float, rng: np.random.Generator, params: SamplingParams) -> int:
    """Greedy at temperature 0; otherwise top-k, then top-p, then a tempered draw.

    The draw needs the top-k logits only: the normaliser cancels when their probabilities are renormalised.
    """
    if temperature <= 0:
        return int(np.argmax(scores.logits))
    candidates = scores.likeliest(min(params.top_k, scores.logits.size))
    scaled = scores.logits[candidates].astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), params.top_p) + 1)
    probs = probs[:keep] / probs[:keep].sum()
    return int(candidates[rng.choice(keep, p=probs)])


class LlamaEngine:
    """Generates from one loaded ``llama_cpp.Llama``; ``n`` samples share one evaluation of the prompt,
    and prompts that share a prefix share its evaluation in whole blocks.

    ``sample_decoding`` says how ``n > 1`` samples at temperature > 0 are decoded: ``batched`` (default),
    every running sample in one ``llama_decode`` a step (``_sample_batched``); ``serial``, one after the other.
    The two draw different samples from the same seed, each reproducible. Batched log-probs carry llama.cpp's
    rounding for a batch: a sample's tokens sit in other KV cells than a lone sequence's (the attention sums
    in another order), and from 4 rows repacked weights go through a GEMM kernel, so they differ from
    ``continuation_logprobs`` of the same text by rounding (up to 0.2 on a sampled token, measured with Gemma
    3 270M Q4_K_M: the size of the prompt-batching effect ``_evaluate_prompt`` avoids); serial samples match it.
    ``split_small_steps`` decodes a step of 2 or 3 rows one row at a time (``ONE_ROW_AT_A_TIME``; by default when
    the model runs on one thread), and ``pad_odd_rows`` (default on) evens out a larger step's rows (``_Padding``),
    each where that is faster; both move the rounding too, so samples drawn with either off differ from samples drawn
    with it on.
    """

    def __init__(
        self,
        model: Any,
        *,
        sampling: SamplingParams = SamplingParams(),
        sample_decoding: SampleDecoding = "batched",
        pad_odd_rows: bool = True,
        split_small_steps: bool | None = None,
    ) -> None:
        self._model = model
        self.pad_odd_rows = pad_odd_rows  # see ``_Padding``; may be switched between calls (to measure it)
        if split_small_steps is None:
            split_small_steps = splits_small_steps(int(_llama().llama_n_threads(model._ctx.ctx)))
        self.split_small_steps = split_small_steps  # see ``splits_small_steps``; may be switched as well
        self._sampling = sampling
        self._vocab_size = model.n_vocab()
        self._vocab = _vocab_handle(model)
        self._block_valid = 0  # leading tokens whose KV cache came from whole-block prompt evaluation
        # The last prompt evaluated and its last position's logits: the samples a gate draws after the answer ask
        # the same prompt again, and its cells are still in the cache (see ``_evaluate_prompt``).
        self._prompt_tokens: list[int] = []
        self._prompt_scores: Scores | None = None
        self._batching = sample_decoding == "batched"  # also set to False (with one warning) if batching fails

    @property
    def context_size(self) -> int:
        """The model's context window in tokens."""
        return int(self._model.n_ctx())

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` becomes as a prompt."""
        return len(self._model.tokenize(text.encode("utf-8"), add_bos=True))

    def generate(
        self,
        prompt: str,
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        top_logprobs: int | None,
        stop: Sequence[str],
        seed: int | None,
        on_text: Callable[[str], None] | None = None,
        agree_with: str | None = None,
        min_span_fraction: float = 0.5,
    ) -> list[Generation]:
        """Return ``n`` completions of ``prompt``; the prompt is evaluated once for all of them.

        ``on_text`` (one completion only) is called with the text so far after each token (a streamed answer).
        With ``agree_with`` (an answer) a completion also ends (reason ``"length"``) as soon as no text that starts with
        it could agree with that answer (``ExactMatch(min_span_fraction).could_agree``): a consistency sample stops
        once its verdict is settled.

        At temperature > 0 the ``n`` samples are decoded together (``_sample_batched``, unless
        ``sample_decoding="serial"``); the first generation's ``usage`` then carries the whole call's wall time and
        the others 0 s, as their decoding is shared. Otherwise (greedy, one sample) they are decoded one after
        the other and each generation's ``seconds`` is its own (the first also pays for the prompt).
        """
        started = time.perf_counter()
        prompt_tokens = self._model.tokenize(prompt.encode("utf-8"), add_bos=True)
        room = self.context_size - len(prompt_tokens)
        if room <= 0:
            raise ValueError(f"prompt is {len(prompt_tokens)} tokens; the model's context holds {self.context_size}")
        judge = ExactMatch(min_span_fraction=min_span_fraction) if agree_with is not None else None  # checks it
        ending = _Ending(tuple(stop), judge, agree_with or "")
        prompt_scores = self._evaluate_prompt(prompt_tokens)
        limit = min(max_tokens, room)
        if n > 1 and temperature > 0 and self._batching:
            samples = self._try_batched(
                prompt_scores,
                len(prompt_tokens),
                n=n,
                temperature=temperature,
                max_tokens=limit,
                top_logprobs=top_logprobs,
                ending=ending,
                seed=seed,
            )
            if samples is not None:
                seconds = time.perf_counter() - started
                return [
                    _generation(sample, index, len(prompt_tokens), seconds if index == 0 else 0.0, top_logprobs)
                    for index, sample in enumerate(samples)
                ]
            if not self._batching:  # it failed and cleared the cache: evaluate the prompt again
                prompt_scores = self._evaluate_prompt(prompt_tokens)
        rng = np.random.default_rng(seed)
        outputs = []
        for index in range(n):
            self._model.n_tokens = len(prompt_tokens)
            sample_started = started if index == 0 else time.perf_counter()  # the first pays for the prompt
            sample = self._continue(
                prompt_scores,
                temperature=temperature,
                max_tokens=limit,
                top_logprobs=top_logprobs,
                ending=ending,
                rng=rng,
                on_text=on_text if n == 1 else None,
            )
            seconds = time.perf_counter() - sample_started
            outputs.append(_generation(sample, index, len(prompt_tokens), seconds, top_logprobs))
        return outputs

    def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        """Log-prob of each token of ``continuation`` when forced after ``prompt``."""
        prompt_tokens = self._model.tokenize(prompt.encode("utf-8"), add_bos=True)
        forced = self._model.tokenize(continuation.encode("utf-8"), add_bos=False)
        if len(prompt_tokens) + len(forced) > self.context_size:
            raise ValueError(
                f"prompt and continuation are {len(prompt_tokens) + len(forced)} tokens; "
                f"the model's context holds {self.context_size}"
            )
        scores = self._evaluate_prompt(prompt_tokens)
        logprobs = []
        for token in forced:
            logprobs.append(scores.logprob(token))
            scores = self._step(token)
        return logprobs

    def _continue(
        self,
        scores: Scores,
        *,
        temperature: float,
        max_tokens: int,
        top_logprobs: int | None,
        ending: _Ending,
        rng: np.random.Generator,
        on_text: Callable[[str], None] | None = None,
    ) -> _Sample:
        sample = _Sample()
        for _ in range(max_tokens):
            ended = self._advance(
                sample, scores, temperature=temperature, top_logprobs=top_logprobs, ending=ending, rng=rng
            )
            if ended:
                return sample
            if on_text is not None:
                on_text(sample.text)
            scores = self._step(sample.ids[-1])
        return sample.finish("length")

    def _advance(
        self,
        sample: _Sample,
        scores: Scores,
        *,
        temperature: float,
        top_logprobs: int | None,
        ending: _Ending,
        rng: np.random.Generator,
    ) -> bool:
        """Draw ``sample``'s next token from ``scores``; ``True`` when that ended it (end of generation, a stop, a
        settled disagreement)."""
        token = draw_token(scores, temperature, rng, self._sampling)
        if _is_end_of_generation(self._vocab, token):
            sample.finish("stop", self._detokenize(sample.ids))
            return True
        sample.ids.append(token)
        sample.tokens.append(self._token_logprob(token, scores, top_logprobs or 0))
        text = self._detokenize(sample.ids)
        cut = _first_stop(text, ending.stop)
        if cut is not None:
            sample.finish("stop", text[:cut])
            sample.tokens = _tokens_within(sample.tokens, cut)
            return True
        sample.text = text
        if ending.settled(text):
            sample.finish("length")
            return True
        return False

    def _try_batched(
        self,
        prompt_scores: Scores,
        n_prompt: int,
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        top_logprobs: int | None,
        ending: _Ending,
        seed: int | None,
    ) -> list[_Sample] | None:
        """``n`` samples decoded in batches, or ``None`` where that cannot be done here.

        The batches hold as many sequences as the context has room for: ``n_seq_max`` (set when the model
        was loaded) and free cells for every sample's ``max_tokens``. A failure (an old llama.cpp without
        these calls, a failed decode) is logged once and turns batching off for this engine; the cache is
        then cleared, and the caller's serial path evaluates the prompt again (which gives the same logits).
        """
        try:
            ctx = self._model._ctx.ctx
            parallel = int(_llama().llama_n_seq_max(ctx))
            if parallel < 2:
                raise RuntimeError(f"the model's context holds {parallel} sequence(s)")
            room = (self.context_size - n_prompt) // max_tokens  # sequences of max_tokens cells that still fit
            group = min(n, parallel, room)
            if group < 2:
                return None  # not enough free cells for two samples of this length: one at a time
            rng = np.random.default_rng(seed)
            samples: list[_Sample] = []
            while len(samples) < n:
                size = min(group, n - len(samples))
                samples += self._sample_batched(
                    prompt_scores,
                    n_prompt,
                    size=size,
                    spare_seq=size if self.pad_odd_rows and size < min(parallel, room) else None,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    top_logprobs=top_logprobs,
                    ending=ending,
                    rng=rng,
                )
            return samples
        except Exception:
            self._batching = False
            logger.warning("batched sampling failed; decoding samples one at a time from now on", exc_info=True)
            with contextlib.suppress(Exception):  # it forgets the cache before it calls llama.cpp
                self._forget_cache()
            return None

    def _sample_batched(
        self,
        prompt_scores: Scores,
        n_prompt: int,
        *,
        size: int,
        spare_seq: int | None,
        temperature: float,
        max_tokens: int,
        top_logprobs: int | None,
        ending: _Ending,
        rng: np.random.Generator,
    ) -> list[_Sample]:
        """``size`` samples as sequences 0..size-1 sharing the prompt's KV cells, decoded together.

        Sequence 0 holds the evaluated prompt; its cells are shared with sequences 1..size-1 (a unified
        cache copies no data). Step ``t`` decodes token ``t`` of every running sample at position
        ``n_prompt + t`` in one batch; each sample draws from its own log-probs, in sequence order, from the
        one ``rng``; a finished sample leaves the batch. Samples that drew the same tokens so far share one
        row of the batch (one cell in every one of their sequences): their next logits are the same, and each
        row costs a pass through the 262k-token output layer. With ``split_small_steps`` a step of 2 or 3 rows is
        decoded one row at a time (``splits_small_steps``); a larger one with an odd number of rows gets one
        throwaway row in ``spare_seq`` when there is one (``_Padding``). Afterwards every generated cell is
        removed, so the cache holds exactly the prompt again, as after ``_evaluate_prompt``: later requests do not
        depend on this one.
        """
        llama = _llama()
        memory = llama.llama_get_memory(self._model._ctx.ctx)
        samples = [_Sample() for _ in range(size)]
        scores = [prompt_scores] * size
        batch = llama.llama_batch_init(size + 1, 0, size)
        helpers = list(range(1, size)) + ([spare_seq] if spare_seq is not None else [])
        padding = _Padding(spare_seq, n_prompt)
        try:
            for seq in helpers:
                llama.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            for step in range(max_tokens):
                running = []
                for seq, sample in enumerate(samples):
                    if sample.reason is not None:
                        continue
                    ended = self._advance(
                        sample, scores[seq], temperature=temperature, top_logprobs=top_logprobs, ending=ending, rng=rng
                    )
                    if not ended and step + 1 == max_tokens:
                        sample.finish("length")  # its last token needs no evaluation
                    elif not ended:
                        running.append(seq)
                if not running:
                    break
                rows = _same_tokens(samples, running)
                step_rows = [(group, samples[group[0]].ids[-1], n_prompt + step) for group in rows]
                for group, row_scores in zip(rows, self._decode_step(batch, padding, step_rows), strict=True):
                    for seq in group:
                        scores[seq] = row_scores
        finally:
            llama.llama_batch_free(batch)
            for seq in helpers:
                llama.llama_memory_seq_rm(memory, seq, -1, -1)
            self._model.n_tokens = n_prompt
            if not llama.llama_memory_seq_rm(memory, 0, n_prompt, -1):
                self._forget_cache()
        return samples

    def _decode_step(self, batch: Any, padding: _Padding, rows: list[_Row]) -> list[Scores]:
        """The scores of every row of one step of batched samples: one ``llama_decode`` a row for a step of
        ``ONE_ROW_AT_A_TIME`` rows, otherwise one for the whole step (padded by ``padding``)."""
        if self.split_small_steps and len(rows) in ONE_ROW_AT_A_TIME:
            scores = []
            for row in rows:
                self._decode_rows(batch, [row])
                scores.append(Scores(self._logits_at(0)))
            return scores
        self._decode_rows(batch, padding.even(rows))
        return [Scores(self._logits_at(row)) for row in range(len(rows))]

    def _decode_rows(self, batch: Any, rows: list[_Row]) -> None:
        """Decode one ``(sequences, token, position)`` per row, with logits for every row."""
        for row, (seqs, token, position) in enumerate(rows):
            batch.token[row] = token
            batch.pos[row] = position
            batch.n_seq_id[row] = len(seqs)
            for slot, seq in enumerate(seqs):
                batch.seq_id[row][slot] = seq
            batch.logits[row] = 1
        batch.n_tokens = len(rows)
        status = _llama().llama_decode(self._model._ctx.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status} for a batch of {len(rows)} samples")

    def _forget_cache(self) -> None:
        """Clear the KV cache; the next prompt is evaluated from its first token."""
        self._block_valid = 0
        self._prompt_tokens, self._prompt_scores = [], None
        self._model.n_tokens = 0
        memory = _llama().llama_get_memory(self._model._ctx.ctx)
        if memory is not None:
            _llama().llama_memory_clear(memory, True)

    def _evaluate_prompt(self, tokens: list[int]) -> Scores:
        """Evaluate ``tokens`` in fixed blocks, reusing cached blocks; return the last position's scores.

        llama.cpp's numerics depend on how a prompt is split into batches (logits moved by up to ~0.9 when
        a shared prefix was reused and the rest evaluated in one go), so results would depend on the
        previous request. Here every prompt is evaluated as the same sequence of ``PROMPT_BLOCK``-token
        blocks at fixed positions, and only whole blocks that were themselves evaluated that way (never
        generated tokens) are reused: the same prompt always gets the same logits, and a shared few-shot
        preamble is still evaluated once. The same prompt twice in a row (the answer, then the samples a gate
        draws to check it) is not evaluated again: its cells are all still there, evaluated the same way, so
        only the cells generated after it are dropped and its logits, kept from the first time, returned.
        """
        if self._prompt_scores is not None and tokens == self._prompt_tokens and self._holds(tokens):
            self._model.n_tokens = len(tokens)
            self._model._ctx.kv_cache_seq_rm(-1, len(tokens), -1)
            return self._prompt_scores  # never written to: every step makes new scores
        cached = self._model.input_ids[: self._block_valid]
        shared = 0
        while shared < len(cached) and shared < len(tokens) and cached[shared] == tokens[shared]:
            shared += 1
        start = min(shared, len(tokens) - 1) // PROMPT_BLOCK * PROMPT_BLOCK  # the last block always runs
        self._model.n_tokens = start
        for begin in range(start, len(tokens), PROMPT_BLOCK):
            self._model.eval(tokens[begin : begin + PROMPT_BLOCK])
        self._block_valid = len(tokens) // PROMPT_BLOCK * PROMPT_BLOCK
        self._prompt_tokens, self._prompt_scores = list(tokens), Scores(self._last_logits())
        return self._prompt_scores

    def _holds(self, tokens: list[int]) -> bool:
        """Whether the model's cache still starts with ``tokens`` (nothing else evaluated over them since)."""
        held = self._model.input_ids[: len(tokens)]
        return self._model.n_tokens >= len(tokens) and bool(np.array_equal(held, tokens))

    def _step(self, token: int) -> Scores:
        self._model.eval([token])
        return Scores(self._last_logits())

    def _last_logits(self) -> np.ndarray:
        raw = self._model._ctx.get_logits()  # the last evaluated position, when logits_all=False
        return np.ctypeslib.as_array(raw, shape=(self._vocab_size,)).copy()

    def _logits_at(self, row: int) -> np.ndarray:
        """The logits of row ``row`` of the last decoded batch."""
        raw = _llama().llama_get_logits_ith(self._model._ctx.ctx, row)
        if not ctypes.cast(raw, ctypes.c_void_p).value:
            raise RuntimeError(f"llama.cpp has no logits for batch row {row}")
        return np.ctypeslib.as_array(raw, shape=(self._vocab_size,)).copy()

    def _token_logprob(self, token: int, scores: Scores, top: int) -> TokenLogprob:
        best = scores.likeliest(top) if top > 0 else ()
        alternatives = tuple((self._piece(int(t)), scores.logprob(int(t))) for t in best)
        return TokenLogprob(token=self._piece(token), logprob=scores.logprob(token), top=alternatives)

    def _piece(self, token: int) -> str:
        return self._model.detokenize([token]).decode("utf-8", errors="replace")

    def _detokenize(self, ids: list[int]) -> str:
        return self._model.detokenize(ids).decode("utf-8", errors="ignore")


@dataclass
class _Sample:
    """One completion as it is decoded: token ids, kept log-probs, text so far, and why it ended."""

    ids: list[int] = field(default_factory=list)
    tokens: list[TokenLogprob] = field(default_factory=list)
    text: str = ""
    reason: str | None = None

    def finish(self, reason: str, text: str | None = None) -> _Sample:
        self.reason = reason
        if text is not None:
            self.text = text
        return self


@dataclass(frozen=True)
class _Ending:
    """What ends a completion besides the end-of-generation token and ``max_tokens``: the first of the ``stop``
    strings (cut from the text), or text that can no longer agree with the answer ``agree_with`` (kept)."""

    stop: tuple[str, ...]
    judge: ExactMatch | None = None  # judges against ``agree_with``; without one, nothing is settled early
    agree_with: str = ""

    def settled(self, text: str) -> bool:
        """Whether ``text`` (a completion so far) can no longer agree with ``agree_with``."""
        return self.judge is not None and not self.judge.could_agree(self.agree_with, text)


ONE_ROW_AT_A_TIME = frozenset({2, 3})
"""Row counts of a step that are decoded one row per ``llama_decode`` (``splits_small_steps``)."""


def splits_small_steps(n_threads: int) -> bool:
    """Whether steps of ``ONE_ROW_AT_A_TIME`` rows are decoded a row at a time on a model running ``n_threads``.

    llama.cpp's CPU kernels take the output layer (262k weight rows, Q8_0) through a matrix-vector path for one row
    and a matrix-matrix path for more. Measured on this project's AMD EPYC machine (``python -m
    benchmarks.local_backend``, table "one decode by output rows"): on one thread 2 rows in one decode cost 1.27x the
    same rows decoded one at a time and 3 rows 1.43x (and more than 3 padded to 4), while 4 rows and more cost less in
    one decode; on two threads 2 rows cost the same both ways and 3 rows padded to 4 cost least. So only one thread
    splits. The rule is fixed rather than timed at run time, so a seed still gives the same samples.
    """
    return n_threads == 1


_Row = tuple[list[int], int, int]
"""One row of a decoded batch: the sequences it belongs to, its token, its position."""


class _Padding:
    """Evens out a batch's rows with throwaway rows in a spare sequence, where the CPU kernels are faster so.

    llama.cpp's CPU matrix kernels take the output layer (262k weight rows) through a faster path for an even
    number of output rows. Measured with one thread on this project's AMD EPYC machine (``python -m
    benchmarks.local_backend``, table "one decode by output rows"): 3 rows took longer than 4, 5 longer than
    6, 7 longer than 8, while 1 and 2 rows each cost less than 4. So an odd count from 3 up gets one throwaway
    row (a step of 3 only when small steps are not split, ``ONE_ROW_AT_A_TIME``): the last row's token again, in
    ``spare_seq`` (which starts as a copy of the prompt's cells), at that sequence's next position (llama.cpp
    requires a sequence's positions to follow on). Its logits are never read; its cells go with the samples'.
    Without a spare sequence nothing is padded.
    """

    def __init__(self, spare_seq: int | None, n_prompt: int) -> None:
        self._spare_seq = spare_seq
        self._next_position = n_prompt

    def even(self, rows: list[_Row]) -> list[_Row]:
        """``rows``, with a throwaway row added when their count is odd and at least 3."""
        if self._spare_seq is None or len(rows) < 3 or len(rows) % 2 == 0:
            return rows
        pad: _Row = ([self._spare_seq], rows[-1][1], self._next_position)
        self._next_position += 1
        return [*rows, pad]


def _same_tokens(samples: list[_Sample], running: list[int]) -> list[list[int]]:
    """The running sequences grouped by the tokens their samples drew so far, in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for seq in running:
        groups.setdefault(tuple(samples[seq].ids), []).append(seq)
    return list(groups.values())


def _generation(sample: _Sample, index: int, n_prompt: int, seconds: float, top_logprobs: int | None) -> Generation:
    """The ``index``-th generation of a call: the first books the call and its prompt tokens."""
    usage = Cost(
        calls=1 if index == 0 else 0,
        prompt_tokens=n_prompt if index == 0 else 0,
        completion_tokens=len(sample.tokens),
        seconds=seconds,
    )
    kept = tuple(sample.tokens) if top_logprobs is not None else None
    return Generation(text=sample.text, tokens=kept, finish_reason=sample.reason, usage=usage)


def _llama() -> Any:
    import llama_cpp

    return llama_cpp


def _vocab_handle(model: Any) -> Any:
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(model.model)


def _is_end_of_generation(vocab: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    positions = [text.find(s) for s in stop if s and s in text]
    return min(positions) if positions else None


def _tokens_within(tokens: list[TokenLogprob], length: int) -> list[TokenLogprob]:
    """The tokens whose text lies before ``length`` characters (the stop sequence is dropped)."""
    kept, used = [], 0
    for token in tokens:
        if used >= length:
            break
        kept.append(token)
        used += len(token.token)
    return kept
