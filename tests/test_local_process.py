"""The embedded model in its own process: a native crash fails one call, is logged in one line, and heals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable
from typing import Any

import pytest

from gate.backends.embedded.local import LocalLLM
from gate.errors import LocalModelCrashError

pytestmark = pytest.mark.integration

HAMLET = [{"role": "user", "content": "Who wrote Hamlet?"}]


async def crash_during_next_call(llm: LocalLLM, call: Awaitable[Any]) -> Any:
    """Freeze the model's process, let ``call`` reach it, then kill it with SIGSEGV, as a native crash would."""
    pid = llm.process().ready["pid"]
    os.kill(pid, signal.SIGSTOP)
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0.3)  # the request is written to the frozen process's stdin
    os.kill(pid, signal.SIGSEGV)
    os.kill(pid, signal.SIGCONT)
    return await task


async def test_a_crash_fails_the_call_it_was_serving_and_the_next_call_restarts_the_process(caplog) -> None:
    llm = LocalLLM(n_ctx=512)  # a process of its own, so the other tests' model is not disturbed
    first = (await llm.load())["pid"]
    caplog.set_level(logging.ERROR, logger="gate.backends.embedded.process")
    with pytest.raises(LocalModelCrashError, match="SIGSEGV") as crash:
        await crash_during_next_call(llm, llm.generate(HAMLET))
    assert crash.value.status == 502
    [line] = [record.getMessage() for record in caplog.records]
    assert "died while running generate (signal SIGSEGV)" in line and "local_extra_buffers: off" in line
    [answer] = await llm.generate(HAMLET)
    assert answer.text and llm.process().ready["pid"] != first


async def test_a_process_that_died_between_calls_is_logged_and_replaced(caplog) -> None:
    llm = LocalLLM(n_ctx=512)
    pid = (await llm.load())["pid"]
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.5)  # SIGKILL is immediate; the process is left unreaped for the gate to find
    caplog.set_level(logging.ERROR, logger="gate.backends.embedded.process")
    [answer] = await llm.generate(HAMLET)
    assert answer.text
    assert any("died while idle (signal SIGKILL)" in record.getMessage() for record in caplog.records)


async def test_extra_buffers_off_loads_and_answers_like_on() -> None:
    """The AMX workaround's load path (no extra buffer types) works on every CPU; answers may differ by kernel."""
    off = LocalLLM(n_ctx=512, extra_buffers="off")
    assert (await off.load())["extra_buffers"] is False
    [answer] = await off.generate(HAMLET, logprobs=1)
    assert answer.text and answer.logprobs and all(value <= 0 for value in answer.logprobs)
    off.process().close()
