"""The embedded model's own process: ``python -m gate.backends.embedded.worker --model PATH ...``.

llama.cpp is native code; when it crashes (a segfault in a CPU kernel, say) it takes its process with
it. Running it here, apart from the proxy, turns such a crash into an error for the one call it was
serving (``gate.backends.embedded.process`` restarts this process for the next one).

Protocol, one JSON object per line: after loading the model and decoding one token (the first decode is
where the AMX defect crashed), this process writes ``{"ready": {...}}`` to stdout; then for each request
``{"method": ..., "params": {...}}`` read from stdin it writes ``{"result": ...}`` or
``{"error": {"type": ..., "message": ...}}``; a ``generate`` request with ``"stream": true`` (one completion) first
writes ``{"piece": TEXT_SO_FAR}`` after each token. It exits when stdin closes. Plain JSON, nothing pickled.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import IO, Any, get_args

from gate.backends.embedded.cpu import (
    build_features,
    cpu_flags,
    load_llama,
    system_info,
    use_extra_buffers,
)
from gate.backends.embedded.engine import LlamaEngine, SamplingParams
from gate.config import ExtraBuffers, SampleDecoding

logger = logging.getLogger(__name__)

SELF_TEST_PROMPT = "Q: What is the capital of France?\nA:"


def main(argv: list[str] | None = None) -> int:
    """Load the model, say ready, then answer requests until stdin closes."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    faulthandler.enable()  # a native crash writes the Python stack to stderr, which the parent keeps
    protocol = _protocol_stream()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    _route_llama_logs()
    info = system_info()
    extra = use_extra_buffers(args.extra_buffers, cpu=cpu_flags(), build=build_features(info))
    model = load_llama(args.model, n_ctx=args.n_ctx, n_threads=args.n_threads, extra_buffers=extra)
    engine = LlamaEngine(model, sampling=SamplingParams(), sample_decoding=args.sample_decoding)
    engine.generate(SELF_TEST_PROMPT, n=1, temperature=0.0, max_tokens=1, top_logprobs=None, stop=(), seed=None)
    _send(protocol, {"ready": {"pid": os.getpid(), "extra_buffers": extra, "system_info": info}})
    for line in sys.stdin:
        _send(protocol, _answer(engine, line, lambda text: _send(protocol, {"piece": text})))
    return 0


def _answer(engine: LlamaEngine, line: str, send_piece: Callable[[str], None]) -> dict[str, Any]:
    try:
        request = json.loads(line)
        method, params = request["method"], request["params"]
        if method == "generate":
            on_text = send_piece if params.pop("stream", False) else None
            generations = engine.generate(**params, on_text=on_text)
            return {"result": [generation.model_dump() for generation in generations]}
        if method == "continuation_logprobs":
            return {"result": engine.continuation_logprobs(**params)}
        if method == "count_tokens":
            return {"result": engine.count_tokens(**params)}
        return {"error": {"type": "ValueError", "message": f"unknown method {method!r}"}}
    except ValueError as exc:  # the caller's mistake (a prompt longer than the context): theirs to see
        return {"error": {"type": "ValueError", "message": str(exc)}}
    except Exception as exc:  # a bug here must not end the process: report it, keep serving
        logger.exception("the embedded model failed a request")
        return {"error": {"type": type(exc).__name__, "message": str(exc)}}


def _protocol_stream() -> IO[str]:
    """Keep stdout for the protocol and send file descriptor 1 to stderr, so native prints cannot corrupt it."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return protocol


def _send(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")  # log-probs of -inf travel as -Infinity, which json reads back
    stream.flush()


def _route_llama_logs() -> None:
    """Send llama.cpp's C-level log lines to our logger instead of stderr (its notes are not for users)."""
    import llama_cpp

    @llama_cpp.llama_log_callback
    def sink(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        logger.debug("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())

    llama_cpp.llama_log_set(sink, ctypes.c_void_p(0))
    _route_llama_logs.sink = sink  # type: ignore[attr-defined]  # C holds only a raw pointer: keep it alive


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gate.backends.embedded.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--n-threads", type=int, required=True)
    parser.add_argument("--extra-buffers", choices=get_args(ExtraBuffers), default="auto")
    parser.add_argument("--sample-decoding", choices=get_args(SampleDecoding), default="batched")
    return parser


if __name__ == "__main__":
    sys.exit(main())
