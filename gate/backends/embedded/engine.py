"""Synchronous generation on a llama.cpp model, with log-probs read from the last position only.

llama-cpp-python computes log-probs only with ``logits_all=True``, which with Gemma's 262k-token
vocabulary makes a short answer ~34x slower. Here every step evaluates one token, reads that
position's logits, and does the log-softmax and sampling in numpy (about a millisecond a step).
Not thread-safe: the async wrapper in ``gate.backends.embedded.local`` confines each engine to one worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from estimators.base import Cost, Generation, TokenLogprob

PROMPT_BLOCK = 16
"""Prompt tokens evaluated per batch; the unit of prompt reuse across requests."""


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn when temperature > 0 (llama.cpp's own defaults)."""

    top_k: int = 40
    top_p: float = 0.95


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax of one logit vector."""
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def draw_token(logprobs: np.ndarray, temperature: float, rng: np.random.Generator, params: SamplingParams) -> int:
    """Greedy at temperature 0; otherwise top-k, then top-p, then a tempered draw."""
    if temperature <= 0:
        return int(np.argmax(logprobs))
    k = min(params.top_k, logprobs.size)
    candidates = np.argpartition(logprobs, -k)[-k:]
    candidates = candidates[np.argsort(logprobs[candidates])[::-1]]
    scaled = logprobs[candidates] / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), params.top_p) + 1)
    probs = probs[:keep] / probs[:keep].sum()
    return int(candidates[rng.choice(keep, p=probs)])


class LlamaEngine:
    """Generates from one loaded ``llama_cpp.Llama``; ``n`` samples share one evaluation of the prompt,
    and prompts that share a prefix share its evaluation in whole blocks."""

    def __init__(self, model: Any, *, sampling: SamplingParams = SamplingParams()) -> None:
        self._model = model
        self._sampling = sampling
        self._vocab_size = model.n_vocab()
        self._vocab = _vocab_handle(model)
        self._block_valid = 0  # leading tokens whose KV cache came from whole-block prompt evaluation

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
    ) -> list[Generation]:
        """Return ``n`` completions of ``prompt``; the prompt is evaluated once for all of them."""
        started = time.perf_counter()
        prompt_tokens = self._model.tokenize(prompt.encode("utf-8"), add_bos=True)
        room = self.context_size - len(prompt_tokens)
        if room <= 0:
            raise ValueError(f"prompt is {len(prompt_tokens)} tokens; the model's context holds {self.context_size}")
        prompt_logits = self._evaluate_prompt(prompt_tokens)
        rng = np.random.default_rng(seed)
        outputs = []
        for index in range(n):
            self._model.n_tokens = len(prompt_tokens)
            sample_started = started if index == 0 else time.perf_counter()  # the first pays for the prompt
            text, tokens, reason = self._continue(
                prompt_logits,
                temperature=temperature,
                max_tokens=min(max_tokens, room),
                top_logprobs=top_logprobs,
                stop=stop,
                rng=rng,
            )
            seconds = time.perf_counter() - sample_started
            usage = Cost(
                calls=1 if index == 0 else 0,
                prompt_tokens=len(prompt_tokens) if index == 0 else 0,
                completion_tokens=len(tokens),
                seconds=seconds,
            )
            kept = tuple(tokens) if top_logprobs is not None else None
            outputs.append(Generation(text=text, tokens=kept, finish_reason=reason, usage=usage))
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
        logits = self._evaluate_prompt(prompt_tokens)
        scores = []
        for token in forced:
            scores.append(float(log_softmax(logits)[token]))
            logits = self._step(token)
        return scores

    def _continue(
        self,
        logits: np.ndarray,
        *,
        temperature: float,
        max_tokens: int,
        top_logprobs: int | None,
        stop: Sequence[str],
        rng: np.random.Generator,
    ) -> tuple[str, list[TokenLogprob], str]:
        ids: list[int] = []
        tokens: list[TokenLogprob] = []
        for _ in range(max_tokens):
            logprobs = log_softmax(logits)
            token = draw_token(logprobs, temperature, rng, self._sampling)
            if _is_end_of_generation(self._vocab, token):
                return self._detokenize(ids), tokens, "stop"
            ids.append(token)
            tokens.append(self._token_logprob(token, logprobs, top_logprobs or 0))
            text = self._detokenize(ids)
            cut = _first_stop(text, stop)
            if cut is not None:
                return text[:cut], _tokens_within(tokens, cut), "stop"
            logits = self._step(token)
        return self._detokenize(ids), tokens, "length"

    def _evaluate_prompt(self, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens`` in fixed blocks, reusing cached blocks; return the last position's logits.

        llama.cpp's numerics depend on how a prompt is split into batches (logits moved by up to ~0.9 when
        a shared prefix was reused and the rest evaluated in one go), so results would depend on the
        previous request. Here every prompt is evaluated as the same sequence of ``PROMPT_BLOCK``-token
        blocks at fixed positions, and only whole blocks that were themselves evaluated that way (never
        generated tokens) are reused: the same prompt always gets the same logits, and a shared few-shot
        preamble is still evaluated once.
        """
        cached = self._model.input_ids[: self._block_valid]
        shared = 0
        while shared < len(cached) and shared < len(tokens) and cached[shared] == tokens[shared]:
            shared += 1
        start = min(shared, len(tokens) - 1) // PROMPT_BLOCK * PROMPT_BLOCK  # the last block always runs
        self._model.n_tokens = start
        for begin in range(start, len(tokens), PROMPT_BLOCK):
            self._model.eval(tokens[begin : begin + PROMPT_BLOCK])
        self._block_valid = len(tokens) // PROMPT_BLOCK * PROMPT_BLOCK
        return self._last_logits()

    def _step(self, token: int) -> np.ndarray:
        self._model.eval([token])
        return self._last_logits()

    def _last_logits(self) -> np.ndarray:
        raw = self._model._ctx.get_logits()  # the last evaluated position, when logits_all=False
        return np.ctypeslib.as_array(raw, shape=(self._vocab_size,)).astype(np.float64)

    def _token_logprob(self, token: int, logprobs: np.ndarray, top: int) -> TokenLogprob:
        alternatives: tuple[tuple[str, float], ...] = ()
        if top > 0:
            best = np.argpartition(logprobs, -top)[-top:]
            best = best[np.argsort(logprobs[best])[::-1]]
            alternatives = tuple((self._piece(int(t)), float(logprobs[t])) for t in best)
        return TokenLogprob(token=self._piece(token), logprob=float(logprobs[token]), top=alternatives)

    def _piece(self, token: int) -> str:
        return self._model.detokenize([token]).decode("utf-8", errors="replace")

    def _detokenize(self, ids: list[int]) -> str:
        return self._model.detokenize(ids).decode("utf-8", errors="ignore")


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
