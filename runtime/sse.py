"""Server-sent events from raw bytes: linear time, bounded lines and events, engine-free.

The WHATWG event-stream algorithm, with these choices of ours (each tested):

* Lines end at CR, LF or CRLF, a CRLF split across two chunks included. Each byte is
  searched for a line end once (only the new chunk is searched, never the buffered start of
  a line), so a long line costs time in proportion to its length, and a line or an event
  past its bound raises ``ResponseTooLargeError`` as soon as the bound is passed, before its
  end arrives.
* A leading U+FEFF (byte order mark) is ignored, as the algorithm says.
* An event the end of the stream cut off before its blank line is still dispatched, marked
  ``at_eof``: ``data: [DONE]\\n`` and then the end is a complete answer (the official SDKs
  accept such a stream too). A provider that cannot parse an ``at_eof`` event treats the
  stream as cut, not as malformed.
* Lines that are no field of the protocol (a server's bare JSON error object at the end of
  a stream, pretty-printed over several lines) are ignored by the algorithm; with
  ``unframed=True`` the ones after the last event are handed over, bounded, as one final
  event marked ``unframed``, so a provider can raise the error they carry.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass

from .body import too_large

__all__ = ["SSEEvent", "SSELimits", "SSEParser", "iter_sse"]

_LINE_END = re.compile(rb"[\r\n]")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event (``event`` defaults to "message" as the SSE spec says).

    ``at_eof``: the end of the stream, not a blank line, ended it (it may have been cut).
    ``unframed``: not an event but the text after the last one that no ``data:`` framed.
    """

    event: str
    data: str
    id: str | None = None
    at_eof: bool = False
    unframed: bool = False


@dataclass(frozen=True, slots=True)
class SSELimits:
    """Bounds of one stream, in bytes (``HTTPConfig`` carries the configured ones)."""

    max_line: int = 4 * 1024 * 1024
    max_event: int = 16 * 1024 * 1024
    max_unframed: int = 256 * 1024


class SSEParser:
    """Feed raw chunks, get events; ``finish()`` at the end of the stream."""

    def __init__(self, limits: SSELimits = SSELimits(), *, unframed: bool = False) -> None:
        self.limits = limits
        self._keep_unframed = unframed
        self._partial = bytearray()  # the line being received
        self._skip_lf = False  # the last chunk ended with CR: a LF first in the next is its pair
        self._first = True  # the next line is the stream's first (it may start with a BOM)
        self._event = ""
        self._data: list[str] = []
        self._event_size = 0
        self._last_id: str | None = None
        self._unframed: list[str] = []
        self._unframed_size = 0

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        """The events that ``chunk`` completes."""
        if not chunk:
            return
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        if b"\r" not in chunk:
            # The common framing, LF only: find each line end, no regex, no CRLF pairing.
            find = chunk.find
            end = find(b"\n", start)
            while end >= 0:
                if self._partial:
                    self._partial += chunk[start:end]
                    line = bytes(self._partial)
                    self._partial.clear()
                else:
                    line = chunk[start:end]
                if len(line) > self.limits.max_line:
                    self._check_line(len(line))
                event = self._line(line)
                if event is not None:
                    yield event
                start = end + 1
                end = find(b"\n", start)
            if start < len(chunk):
                self._partial += chunk[start:]
                self._check_line(len(self._partial))
            return
        for match in _LINE_END.finditer(chunk, start):
            end = match.start()
            if end == start and chunk[end] == 0x0A and start > 0 and chunk[start - 1] == 0x0D:
                start = end + 1  # the LF of a CRLF
                continue
            if self._partial:
                self._partial += chunk[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start:end]
            self._check_line(len(line))
            event = self._line(line)
            if event is not None:
                yield event
            start = end + 1
        if start < len(chunk):
            self._partial += chunk[start:]
            self._check_line(len(self._partial))
        elif chunk[-1:] == b"\r":
            self._skip_lf = True

    def finish(self) -> Iterator[SSEEvent]:
        """What the end of the stream leaves: a cut-off event, then any unframed text."""
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            # A last line without its line end may be cut; it still counts, as in the SDKs.
            self._line(line)
        if self._data:
            yield self._dispatch(at_eof=True)
        if self._keep_unframed and self._unframed:
            text = "\n".join(self._unframed)
            self._unframed.clear()
            yield SSEEvent("", text, self._last_id, at_eof=True, unframed=True)

    # ------------------------------------------------------------------ one line

    def _check_line(self, size: int) -> None:
        if size > self.limits.max_line:
            raise too_large(
                "a line of the event stream", "max_sse_line_bytes", self.limits.max_line
            )

    def _line(self, raw: bytes) -> SSEEvent | None:
        if self._first:
            self._first = False
            if raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
        if not raw:
            if self._data:
                return self._dispatch()
            self._reset()
            return None
        if raw[:6] == b"data: ":  # the common field line: no partition, no name compare
            self._grow(len(raw))
            self._data.append(raw[6:].decode("utf-8", errors="replace"))
            if self._unframed:
                self._unframed.clear()
                self._unframed_size = 0
            return None
        if raw[:1] == b":":
            return None  # a comment (keep-alive)
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._grow(len(raw))
            self._data.append(value)
        elif name == "event":
            self._grow(len(raw))
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name != "retry":  # retry is for reconnecting browsers; nothing here reconnects
            self._stray(line)
            return None
        self._unframed.clear()  # only the text after the last field line is kept
        self._unframed_size = 0
        return None

    def _grow(self, size: int) -> None:
        self._event_size += size
        if self._event_size > self.limits.max_event:
            raise too_large(
                "an event of the event stream", "max_sse_event_bytes", self.limits.max_event
            )

    def _stray(self, line: str) -> None:
        if self._keep_unframed and self._unframed_size + len(line) <= self.limits.max_unframed:
            self._unframed.append(line)
            self._unframed_size += len(line) + 1

    def _dispatch(self, *, at_eof: bool = False) -> SSEEvent:
        event = SSEEvent(self._event or "message", "\n".join(self._data), self._last_id, at_eof)
        self._reset()
        return event

    def _reset(self) -> None:
        self._event, self._data, self._event_size = "", [], 0


async def iter_sse(
    chunks: AsyncIterator[bytes], limits: SSELimits = SSELimits(), *, unframed: bool = False
) -> AsyncGenerator[SSEEvent, None]:
    """Parse a byte stream as server-sent events (see the module docstring)."""
    parser = SSEParser(limits, unframed=unframed)
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.finish():
        yield event
