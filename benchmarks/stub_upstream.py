"""An OpenAI-compatible upstream that answers instantly: fixed text, fixed log-probs, HTTP/1.1 keep-alive.

Run: ``.venv/bin/python -m benchmarks.stub_upstream --port 9100 [--fail-rate 0.1] [--hang-rate 0.05]
[--delay-ms 0] [--seed 0]``

Written on raw asyncio so that it costs next to nothing per request: the overhead benchmark measures what
the proxies in front of it add, so the stub must not be the bottleneck. It answers every POST with the
same chat completion (``choices[0].message.content`` = "Paris", one log-prob per token) and every GET with
a model list; it reads the request body only to keep the connection in step.

For the reliability benchmark it can also misbehave, drawn per POST from a seeded generator: a share of
answers are 500s (``--fail-rate``), a share never come (``--hang-rate``: the connection stays open and
silent until the client gives up), and every answer can wait ``--delay-ms`` first (a slow model).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import re
from dataclasses import dataclass, field

ANSWER = "Paris"
COMPLETION = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": ANSWER, "logprob": -0.05, "bytes": None, "top_logprobs": []}]},
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
}
MODELS = {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "benchmark"}]}


def _response(payload: dict[str, object], status: str = "200 OK") -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


CHAT_RESPONSE = _response(COMPLETION)
MODELS_RESPONSE = _response(MODELS)
N_FIELD = re.compile(rb'"n":\s*(\d+)')


@functools.cache
def chat_response(n: int) -> bytes:
    """The completion with ``n`` identical choices (a request for samples gets as many as it asked)."""
    if n == 1:
        return CHAT_RESPONSE
    choices = [{**COMPLETION["choices"][0], "index": i} for i in range(n)]  # type: ignore[index]
    return _response({**COMPLETION, "choices": choices})
FAILURE = {"error": {"message": "stub failure", "type": "server_error"}}
FAILURE_RESPONSE = _response(FAILURE, "500 Internal Server Error")


@dataclass
class Faults:
    """How the stub misbehaves, and a seeded generator that draws it per request."""

    fail_rate: float = 0.0
    hang_rate: float = 0.0
    delay_s: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self) -> str:
        """"fail", "hang" or "ok" for the next POST."""
        roll = self.rng.random()
        return "fail" if roll < self.fail_rate else "hang" if roll < self.fail_rate + self.hang_rate else "ok"


class StubProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (request line, content-length) to answer pipelined keep-alive requests."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.faults = faults or Faults()
        self.hung = False  # a hung connection answers nothing more; the client closes it when it gives up

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.hung:
            return
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            if not head.startswith("POST"):
                self._write(MODELS_RESPONSE)
                continue
            fault = self.faults.draw()
            if fault == "hang":
                self.hung = True
                return
            n = N_FIELD.search(body)
            self._write(FAILURE_RESPONSE if fault == "fail" else chat_response(int(n.group(1)) if n else 1))

    def _write(self, response: bytes) -> None:
        assert self.transport is not None
        if self.faults.delay_s:
            asyncio.get_running_loop().call_later(self.faults.delay_s, self._send, response)
        else:
            self.transport.write(response)

    def _send(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(host: str, port: int, faults: Faults | None = None) -> None:
    loop = asyncio.get_running_loop()
    shared = faults or Faults()  # one generator for all connections: the rates hold over the whole run
    server = await loop.create_server(lambda: StubProtocol(shared), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of POSTs answered 500")
    parser.add_argument("--hang-rate", type=float, default=0.0, help="share of POSTs never answered")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before every answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    args = parser.parse_args()
    faults = Faults(args.fail_rate, args.hang_rate, args.delay_ms / 1000, args.seed)
    asyncio.run(serve(args.host, args.port, faults))


if __name__ == "__main__":
    main()
