"""A scripted HTTP/1.1 server on 127.0.0.1 for wire and fault tests.

It records every request (method, path, query, headers, body) and answers with ``Reply``
objects: JSON or raw bodies, SSE streams sent chunk by chunk, and faults (stall before the
headers, abrupt reset, a stream cut mid-way, malformed bodies). It binds port 0 on loopback
only and runs in a daemon thread; ``stop()`` (or the context manager) ends it.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["LoopbackServer", "Recorded", "Reply", "sse"]


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """A scripted answer.

    ``body``: dict/list (sent as JSON), str or bytes. ``chunks``: sent one by one with
    ``chunk_delay`` seconds between them (chunked transfer encoding), for SSE.
    ``stall``: seconds to sleep before sending anything. ``reset``: close the socket abruptly
    (RST) instead of answering. ``cut_after``: with ``chunks``, drop the connection after
    this many chunks, without the terminating chunk.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    stall: float = 0.0
    reset: bool = False
    cut_after: int | None = None
    content_type: str | None = None
    stall_after: float = 0.0  # with chunks: seconds to wait before ending the body


def sse(events: Iterable[tuple[str | None, Any]]) -> list[bytes]:
    """Encode ``(event_name_or_None, data)`` pairs as SSE chunks (dict data becomes JSON)."""
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {text}\n\n".encode())
    return out


Handler = Callable[[Recorded], Reply]


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print tracebacks for clients that hung up."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a reset or a client that gave up: part of the faults we inject
        super().handle_error(request, client_address)


class LoopbackServer:
    """Start with ``with LoopbackServer(handler) as srv:``; ``srv.url`` is its base URL."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._handler = handler
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._make_handler())
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown() (once per test) from costing 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def reset(self) -> None:
        """Forget recorded requests and queued replies (to reuse one server across tests)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order (before the handler)."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        if self._handler is None:
            return Reply(500, {"error": {"message": "no reply scripted"}})
        return self._handler(request)

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                reply = server._next_reply(recorded)
                if reply.stall:
                    time.sleep(reply.stall)
                if reply.reset:
                    self._reset()
                    return
                if reply.chunks is not None:
                    self._send_chunks(reply)
                else:
                    self._send_body(reply)

            do_POST = _handle
            do_GET = _handle

            def _reset(self) -> None:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def _send_body(self, reply: Reply) -> None:
                if isinstance(reply.body, dict | list):
                    payload = json.dumps(reply.body).encode()
                    ctype = "application/json"
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                    ctype = "text/plain"
                else:
                    payload = reply.body or b""
                    ctype = "application/octet-stream"
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type or ctype)
                self.send_header("content-length", str(len(payload)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (e.g. a read timeout)

            def _send_chunks(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type or "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.flush()
                assert reply.chunks is not None
                try:
                    for index, chunk in enumerate(reply.chunks):
                        if reply.cut_after is not None and index >= reply.cut_after:
                            self._reset()
                            return
                        if index and reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                    if reply.stall_after:
                        time.sleep(reply.stall_after)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return _Handler
