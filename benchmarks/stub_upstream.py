"""An OpenAI-compatible upstream that answers instantly: fixed text, fixed log-probs, HTTP/1.1 keep-alive.

Run: ``.venv/bin/python -m benchmarks.stub_upstream --port 9100``

Written on raw asyncio so that it costs next to nothing per request: the overhead benchmark measures what
the proxies in front of it add, so the stub must not be the bottleneck. It answers every POST with the
same chat completion (``choices[0].message.content`` = "Paris", one log-prob per token) and every GET with
a model list; it reads the request body only to keep the connection in step.
"""

from __future__ import annotations

import argparse
import asyncio
import json

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


def _response(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


CHAT_RESPONSE = _response(COMPLETION)
MODELS_RESPONSE = _response(MODELS)


class StubProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (request line, content-length) to answer pipelined keep-alive requests."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
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
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(CHAT_RESPONSE if head.startswith("POST") else MODELS_RESPONSE)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
