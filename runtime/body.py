"""Reading reply bodies within bounds: content decoding, size limits and JSON, engine-free.

Everything here takes raw bytes and header values, never a transport library's objects, so
every HTTP engine under the seam (httpx2 today) reads with the same limits and errors.

* ``BodyDecoder`` undoes ``Content-Encoding`` (gzip, deflate) from raw chunks, in pieces of
  at most ``PIECE`` bytes however much one compressed chunk inflates, and counts the decoded
  bytes against a bound as they come: past it, ``ResponseTooLargeError`` (a reply) or the
  end of the body (an error reply, which is quoted, never needed whole).
* ``loads`` is the one ``json.loads`` for network data: nesting too deep for the parser is a
  ``ValueError`` like any other bad JSON, never a ``RecursionError``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import MalformedResponseError, ResponseTooLargeError
from .redact import snippet

__all__ = [
    "ACCEPT_ENCODING",
    "PIECE",
    "BodyDecoder",
    "JSONTooDeepError",
    "loads",
    "malformed_json",
    "too_large",
]

#: What the runtime asks for: the encodings it decodes itself (zlib is in the standard library).
ACCEPT_ENCODING = "gzip, deflate"
#: Most bytes one decoding step produces; a 1 KiB chunk of a gzip bomb inflates in these steps.
PIECE = 64 * 1024

_GZIP = ("gzip", "x-gzip")
_BOM = b"\xef\xbb\xbf"


def too_large(what: str, setting: str, limit: int) -> ResponseTooLargeError:
    """The error for ``what`` going past ``http.<setting>`` (``limit`` bytes)."""
    return ResponseTooLargeError(
        f"{what} is larger than http.{setting} = {limit} bytes, so reading stopped there; "
        f"if such replies are expected, raise {setting} under settings.http (or the "
        "provider's http:) in providers.yaml"
    )


class _Inflate:
    """One gzip or deflate layer, drained in bounded pieces."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        # HTTP "deflate" is zlib-wrapped by the RFC, but some servers send it raw.
        self._raw_fallback = coding == "deflate"
        wbits = zlib.MAX_WBITS | 16 if coding in _GZIP else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(wbits)

    def decode(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for data in pieces:
            while data:
                out = self._step(data)
                data = self._inflater.unconsumed_tail
                if out:
                    yield out
                # Output capped at PIECE may leave more inside the inflater: drain it.
                while len(out) == PIECE and not data:
                    out = self._step(b"")
                    if out:
                        yield out

    def _step(self, data: bytes) -> bytes:
        try:
            out = self._inflater.decompress(data, PIECE)
        except zlib.error as exc:
            if not self._raw_fallback:
                raise MalformedResponseError(
                    f"the reply's {self.coding} data is corrupt: {exc}"
                ) from None
            self._raw_fallback = False
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._step(data)
        self._raw_fallback = False
        return out


class BodyDecoder:
    """Decode one reply body from raw chunks, within ``limit`` decoded bytes.

    ``content_encoding`` is the header's value (a list applied in order, as HTTP says).
    Past the limit, ``truncate=False`` raises ``ResponseTooLargeError`` naming ``setting``;
    ``truncate=True`` yields the first ``limit`` bytes and sets ``done`` (stop reading).
    ``strip_bom=True`` drops a leading UTF-8 byte order mark (an event stream's, which the
    SSE algorithm ignores: done here, every parser above gets a stream without it).
    An encoding it cannot decode raises ``MalformedResponseError`` at construction.
    """

    def __init__(
        self,
        content_encoding: str | None,
        limit: int,
        *,
        setting: str,
        what: str = "the reply",
        truncate: bool = False,
        strip_bom: bool = False,
    ) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        unknown = [c for c in codings if c not in (*_GZIP, "deflate")]
        if unknown or len(codings) > 2:
            raise MalformedResponseError(
                f"{what} is encoded as {content_encoding!r}, which the runtime does not "
                f"decode (it asks for {ACCEPT_ENCODING!r} only)"
            )
        self._layers = [_Inflate(c) for c in reversed(codings)]  # the last applied comes off first
        self.limit = limit
        self.size = 0
        self.done = False
        self._setting = setting
        self._what = what
        self._truncate = truncate
        self._head: bytes | None = b"" if strip_bom else None  # the start, until BOM-checked

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """Decoded pieces of one raw chunk, counted against the limit."""
        if self.done or not raw:
            return
        pieces: Iterable[bytes] = (raw,)
        for layer in self._layers:
            pieces = layer.decode(pieces)
        for piece in pieces:
            if self._head is not None:
                piece = self._without_bom(piece)
                if not piece:
                    continue
            room = self.limit - self.size
            if len(piece) > room:
                if not self._truncate:
                    raise too_large(self._what, self._setting, self.limit)
                self.done = True
                if room:
                    self.size += room
                    yield piece[:room]
                return
            self.size += len(piece)
            yield piece

    def _without_bom(self, piece: bytes) -> bytes:
        """``piece`` minus a leading UTF-8 byte order mark of the body (maybe split)."""
        assert self._head is not None
        head = self._head + piece
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head  # too short to tell yet
            return b""
        self._head = None
        return head[len(_BOM) :] if head.startswith(_BOM) else head


class JSONTooDeepError(ValueError):
    """JSON nested deeper than the parser can follow (about a thousand levels)."""


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` for network data: any failure, deep nesting included, is a ValueError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise JSONTooDeepError("JSON nested too deeply to parse") from None


def malformed_json(
    what: str, data: str | bytes | bytearray, error: ValueError, secrets: Iterable[str | None]
) -> str:
    """The message for ``data`` that ``loads`` refused: ``what`` ... is not JSON: '<snippet>'."""
    if isinstance(error, JSONTooDeepError):
        return f"{what} is JSON nested too deeply to parse (a hostile or broken reply)"
    return f"{what} is not JSON: {snippet(data, secrets)!r}"
