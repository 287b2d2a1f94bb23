"""A fast loopback fake of OpenAI's Chat Completions endpoint, for the benchmarks (not tests).

Every POST on a keep-alive HTTP/1.1 connection gets a fixed ``chat.completion`` JSON or,
when its body asks ``"stream": true``, an event stream framed as the API sends it: a role
chunk, ``--deltas`` content chunks (``usage: null`` on each), a finish chunk, a usage-only
chunk (``choices: []``) when ``stream_options.include_usage`` is set, then ``data: [DONE]``;
chunked transfer encoding, one HTTP chunk per event. Both replies are built once at start,
so the server spends its time on reading request heads, not on JSON, and stays well ahead
of any client on its own core.

Run: ``python benchmarks/fake_openai.py --port-file F [--deltas N]``; it listens on
127.0.0.1 (port 0) and writes its port to ``F`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

MODEL = "bench-model"
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
#: Cap on a request head and body: the clients here send a few hundred bytes.
MAX_REQUEST = 1 << 20
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_INCLUDE_USAGE = re.compile(rb'"include_usage"\s*:\s*true')


def completion() -> bytes:
    """The ``chat.completion`` object of the API reference, as JSON bytes."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    ).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def stream_events(deltas: int, include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer of ``deltas`` content chunks."""
    events: list[Any] = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": "tok "}) for _ in range(deltas)]
    events.append(_chunk({}, "stop"))
    if include_usage:
        usage = _chunk({})
        usage["choices"] = []
        usage["usage"] = USAGE
        events.append(usage)
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def chunked(events: list[bytes]) -> bytes:
    """``events`` as a chunked body: one HTTP chunk per event, then the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


class Replies:
    """The prebuilt replies: JSON, and the stream with and without the usage chunk."""

    def __init__(self, deltas: int) -> None:
        body = completion()
        self.json = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"x-request-id: req_bench\r\ncontent-length: %d\r\n\r\n" % len(body)
        ) + body
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"x-request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        self.stream = head + chunked(stream_events(deltas, False))
        self.stream_usage = head + chunked(stream_events(deltas, True))


class _Connection(asyncio.Protocol):
    """One client connection: read request heads and bodies, answer each in order."""

    def __init__(self, replies: Replies) -> None:
        self._replies = replies
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_REQUEST:
                    self._fail()
                return
            head = bytes(buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail()  # every client here sends a sized body
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if length > MAX_REQUEST:
                self._fail()
                return
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            assert self._transport is not None
            if _STREAM.search(body):
                usage = _INCLUDE_USAGE.search(body) is not None
                self._transport.write(self._replies.stream_usage if usage else self._replies.stream)
            else:
                self._transport.write(self._replies.json)

    def _fail(self) -> None:
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self._transport.close()


async def serve(port_file: Path, deltas: int) -> None:
    replies = Replies(deltas)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(replies), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    partial = port_file.with_suffix(".tmp")
    partial.write_text(str(port), encoding="utf-8")
    partial.replace(port_file)  # atomically: the reader never sees a half-written port
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--deltas", type=int, default=1000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port_file, args.deltas))
