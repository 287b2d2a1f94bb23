"""An asyncio HTTP/1.1 server on 127.0.0.1 that injects faults, for fault and load tests.

Unlike ``tests.loopback.LoopbackServer`` (one thread per connection), it runs one event loop
in a daemon thread, so it keeps up with thousands of concurrent keep-alive requests. It
records every request, answers each with a ``Reply`` (scripted in a queue or chosen by a
handler) and tracks what a leak test needs: connections opened and still open, requests in
flight and the most seen at once, and clients that hung up while it was stalling.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.loopback import Recorded

__all__ = ["FaultServer", "Recorded", "Reply"]

#: Largest request head accepted; a client sending more is cut off.
_MAX_HEAD = 64 * 1024


@dataclass
class Reply:
    """One scripted answer (or fault).

    ``body``: dict/list (sent as JSON), str or bytes. ``chunks``: sent with chunked transfer
    encoding (SSE); ``delays`` maps a chunk's index to the seconds waited before it (index 0:
    after the headers). ``stall``: seconds before anything is sent. ``reset``: close with RST
    instead of answering. ``cut_after``: with ``chunks``, reset after this many chunks.
    ``close``: close the connection (FIN) after the reply, without saying so in a header, as
    a server does when it drops an idle keep-alive connection. Every wait ends early when
    the client hangs up.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    delays: dict[int, float] = field(default_factory=dict)
    stall: float = 0.0
    reset: bool = False
    cut_after: int | None = None
    close: bool = False
    content_type: str | None = None


Handler = Callable[[Recorded], Reply]


class _Gone(Exception):
    """The client closed the connection while the server was waiting."""


class FaultServer:
    """Start with ``with FaultServer(handler) as srv:``; ``srv.url`` is its base URL."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[Recorded] = []
        self.handler = handler
        self._queue: deque[Reply] = deque()
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0
        self.connections_opened = 0
        self.open_connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.hangups = 0

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FaultServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result()
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order (before the handler)."""
        with self._cond:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not used yet."""
        with self._cond:
            return len(self._queue)

    def clear(self) -> None:
        """Forget recorded requests, queued replies and the in-flight peak."""
        with self._cond:
            self.requests.clear()
            self._queue.clear()
            self.max_in_flight = self.in_flight
            self.hangups = 0

    def wait_for(self, predicate: Callable[[FaultServer], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (checked on every change), or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def _change(self, **deltas: int) -> None:
        with self._cond:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()

    def _next_reply(self, request: Recorded) -> Reply:
        with self._cond:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()
            if self._queue:
                return self._queue.popleft()
        if self.handler is None:
            return Reply(500, {"error": {"message": "no reply scripted", "type": "server_error"}})
        return self.handler(request)

    # ------------------------------------------------------------------ protocol

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._change(connections_opened=1, open_connections=1)
        buf = bytearray()
        try:
            while await self._one_request(reader, writer, buf):
                pass
        except (_Gone, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            # close() sends what is buffered, then FIN; a reset has aborted already.
            writer.transport.close()
            self._tasks.discard(task)
            self._change(open_connections=-1)

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buf: bytearray
    ) -> bool:
        """Read one request and answer it; False when the connection should end."""
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                return False
            data = await reader.read(65536)
            if not data:
                return False
            buf += data
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        method, target, _version = head[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            return False  # no client here sends chunked request bodies
        length = int(headers.get("content-length") or 0)
        while len(buf) < length:
            data = await reader.read(65536)
            if not data:
                return False
            buf += data
        body = bytes(buf[:length])
        del buf[:length]
        parts = urlsplit(target)
        recorded = Recorded(method, parts.path, dict(parse_qsl(parts.query)), headers, body)
        reply = self._next_reply(recorded)
        finished = False

        def finish() -> None:
            # Called just before the last bytes leave, with no await in between, so a client
            # that starts its next request on receiving them is never counted twice.
            nonlocal finished
            if not finished:
                finished = True
                self._change(in_flight=-1)

        try:
            return await self._answer(reply, reader, writer, buf, finish) and (
                headers.get("connection", "").lower() != "close"
            )
        finally:
            finish()

    async def _pause(self, seconds: float, reader: asyncio.StreamReader, buf: bytearray) -> None:
        """Wait ``seconds``, or raise _Gone as soon as the client hangs up."""
        if seconds <= 0:
            return
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                async with asyncio.timeout(left):
                    data = await reader.read(65536)
            except TimeoutError:
                return
            except ConnectionError:
                data = b""
            if not data:
                self._change(hangups=1)
                raise _Gone
            buf += data  # a pipelined request: keep it for later

    async def _answer(
        self,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        buf: bytearray,
        finish: Callable[[], None],
    ) -> bool:
        await self._pause(reply.stall, reader, buf)
        if reply.reset:
            finish()
            _reset(writer)
            return False
        status = f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
        if reply.chunks is None:
            if isinstance(reply.body, dict | list):
                payload = json.dumps(reply.body).encode()
                ctype = "application/json"
            elif isinstance(reply.body, str):
                payload = reply.body.encode()
                ctype = "text/plain"
            else:
                payload = reply.body or b""
                ctype = "application/octet-stream"
            head = _head(
                status,
                {
                    "content-type": reply.content_type or ctype,
                    "content-length": str(len(payload)),
                    **reply.headers,
                },
            )
            finish()
            writer.write(head + payload)
            await writer.drain()
            return not reply.close
        head = _head(
            status,
            {
                "content-type": reply.content_type or "text/event-stream",
                "transfer-encoding": "chunked",
                **reply.headers,
            },
        )
        writer.write(head)
        await writer.drain()
        for index, chunk in enumerate(reply.chunks):
            if reply.cut_after is not None and index >= reply.cut_after:
                finish()
                _reset(writer)
                return False
            await self._pause(reply.delays.get(index, 0.0), reader, buf)
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        finish()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not reply.close


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [status, *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"]
    return "".join(lines).encode("latin-1")


def _reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
