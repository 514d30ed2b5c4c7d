"""The embedded model in a child process (``worker``): a native crash in llama.cpp costs one call, not the server.

If llama.cpp crashes, the call it was serving fails with ``LocalModelCrashError`` (an upstream error, so the
proxy answers 502 and an estimator loses only its signal), one log line names the signal and the likely
cause, and the next call starts a fresh process. Calls are serialized: one model, one request at a time,
as llama.cpp's context allows.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import functools
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from gate.config import ExtraBuffers, SampleDecoding
from gate.errors import LocalModelCrashError

logger = logging.getLogger(__name__)

STDERR_TAIL_LINES = 40
EXIT_WAIT_S = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    """What the child loads: the model file and its shape."""

    model_path: str
    n_ctx: int
    n_threads: int
    extra_buffers: ExtraBuffers = "auto"
    sample_decoding: SampleDecoding = "batched"

    def command(self) -> list[str]:
        """The child's command line (the same interpreter as ours)."""
        return [
            sys.executable,
            "-m",
            "gate.backends.embedded.worker",
            "--model",
            self.model_path,
            "--n-ctx",
            str(self.n_ctx),
            "--n-threads",
            str(self.n_threads),
            "--extra-buffers",
            self.extra_buffers,
            "--sample-decoding",
            self.sample_decoding,
        ]


class ModelProcess:
    """One child process running the model, started on first use and again after a crash."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.ready: dict[str, Any] = {}  # what the child reported when it last started (pid, kernels)
        self._process: subprocess.Popen[str] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llama-process")

    async def request(self, method: str, **params: Any) -> Any:
        """Run ``method`` in the child without blocking the event loop."""
        call = functools.partial(self.call, method, params)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def request_streamed(self, method: str, on_piece: Callable[[str], None], **params: Any) -> Any:
        """:meth:`request` with ``stream: true``: ``on_piece`` gets each piece the child reports, in this loop."""
        loop = asyncio.get_running_loop()

        def report(piece: str) -> None:  # called in the executor's thread
            loop.call_soon_threadsafe(on_piece, piece)

        call = functools.partial(self.call, method, {**params, "stream": True}, on_piece=report)
        return await loop.run_in_executor(self._executor, call)

    def call(self, method: str, params: dict[str, Any], *, on_piece: Callable[[str], None] | None = None) -> Any:
        """Send one request and wait for its reply; raise ``LocalModelCrashError`` when the child died.

        Pieces the child reports before its reply (a streamed generation) go to ``on_piece``.
        """
        with self._lock:
            process = self._started()
            line = _exchange(process, json.dumps({"method": method, "params": params}))
            while line and on_piece is not None and (piece := json.loads(line).get("piece")) is not None:
                on_piece(piece)
                line = _read_line(process)
            if not line:
                raise self._crashed(process, doing=f"running {method}")
        reply = json.loads(line)
        if "error" in reply:
            error = reply["error"]
            if error["type"] == "ValueError":
                raise ValueError(error["message"])
            raise RuntimeError(f"the embedded model failed ({error['type']}): {error['message']}")
        return reply["result"]

    def start(self) -> dict[str, Any]:
        """Start the child now (load the model, decode once) unless it runs; return what it reported."""
        with self._lock:
            self._started()
            return dict(self.ready)

    def close(self) -> None:
        """Let the child exit (it stops when its stdin closes); kill it if it does not."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _started(self) -> subprocess.Popen[str]:
        if self._process is not None:
            if self._process.poll() is None:
                return self._process
            self._crashed(self._process, doing="idle")  # no call failed, but the death is logged all the same
        self._stderr_tail.clear()
        process = subprocess.Popen(
            self.spec.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(target=self._keep_stderr, args=(process.stderr,), daemon=True).start()
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise self._crashed(process, doing="loading the model")
        self.ready = json.loads(line)["ready"]
        self._process = process
        logger.info(
            "embedded model ready in process %s (extra buffer types %s; %s)",
            self.ready["pid"],
            "on" if self.ready["extra_buffers"] else "off",
            self.ready["system_info"],
        )
        return process

    def _crashed(self, process: subprocess.Popen[str], *, doing: str) -> LocalModelCrashError:
        """The child is gone: log one line that names how it died, and forget it so the next call restarts it."""
        self._process = None
        try:
            code = process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # stdout closed but still alive: not a state to keep
            process.kill()
            code = process.wait()
        how = _exit_description(code)
        hint = _hint(how, list(self._stderr_tail))
        logger.error("the embedded model process died while %s (%s); the next call restarts it. %s", doing, how, hint)
        return LocalModelCrashError(f"the embedded model crashed while {doing} ({how}); the next call restarts it")

    def _keep_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr_tail.append(line.rstrip())
            logger.debug("model process: %s", line.rstrip())


def _exchange(process: subprocess.Popen[str], message: str) -> str:
    """Write one request line and read one reply line; an empty string means the child is gone."""
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(message + "\n")
        process.stdin.flush()
    except (BrokenPipeError, OSError):
        return ""
    return _read_line(process)


def _read_line(process: subprocess.Popen[str]) -> str:
    """The child's next line; an empty string means the child is gone."""
    assert process.stdout is not None
    return process.stdout.readline()


def _exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _hint(how: str, stderr_tail: list[str]) -> str:
    """What the child said last (its Python stack for a native crash) and what to do about it."""
    frames = [line.strip() for line in stderr_tail if line.strip().startswith("File ")]
    where = f"Innermost frame: {frames[0]}. " if frames else ""
    if "SIGSEGV" in how or "SIGILL" in how or "SIGBUS" in how:
        return (
            f"{where}A crash in llama.cpp's native code: on CPUs with AMX, run with local_extra_buffers: off "
            "(GATE_LOCAL_EXTRA_BUFFERS=off) or reinstall llama-cpp-python with the portable build (make clean run)."
        )
    last = next((line for line in reversed(stderr_tail) if line.strip()), "")
    return f"{where}Its last words: {last}" if last else where


@functools.cache
def model_process(spec: WorkerSpec) -> ModelProcess:
    """One child per model file and shape in this process, shared by every ``LocalLLM`` that asks for it."""
    process = ModelProcess(spec)
    atexit.register(process.close)
    return process
