"""The concurrency guard, at the ASGI level: exact about when a request holds its slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from gate.server.guards import ConcurrencyLimit
from gate.server.state import Slots


def in_flight_gauge() -> Gauge:
    return Gauge("in_flight", "Requests in flight.", registry=CollectorRegistry())

SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


async def test_the_slot_is_given_back_when_the_last_body_part_is_sent_not_when_the_app_returns():
    """A streamed response's app returns after its last byte (Starlette tears down its disconnect listener);
    a client that sends its next request on seeing [DONE] must find the slot free (issue 17, item 6)."""
    slots, in_use, finish = Slots(limit=1), [], asyncio.Event()

    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        in_use.append(slots.in_use)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        in_use.append(slots.in_use)
        await finish.wait()

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    gauge = in_flight_gauge()
    guard = ConcurrencyLimit(streaming_app, slots=slots, in_flight=gauge, retry_after_s=1, prefix="/v1")
    request = asyncio.create_task(guard(SCOPE, receive, send))
    while len(in_use) < 2:
        await asyncio.sleep(0)
    assert in_use == [1, 0] and not request.done()
    finish.set()
    await request
    assert slots.in_use == 0 and gauge._value.get() == 0  # given back once, not twice


async def test_an_app_that_fails_before_answering_gives_its_slot_back():
    slots = Slots(limit=1)

    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    guard = ConcurrencyLimit(failing_app, slots=slots, in_flight=in_flight_gauge(), retry_after_s=1, prefix="/v1")
    with pytest.raises(RuntimeError, match="boom"):
        await guard(SCOPE, receive, send)
    assert slots.in_use == 0
