"""Keeping secrets out of output: redaction of credential headers and known secret values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "SECRET_HEADERS", "redact", "scrub", "snippet"]

REDACTED = "***"
#: Header names that carry credentials in any protocol we know; always redacted.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"}
)


def redact(value: Any, secret_headers: Iterable[str] = (), secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with credential headers and secret strings replaced.

    Mapping keys named in ``SECRET_HEADERS`` or ``secret_headers`` (case-insensitive) get
    ``REDACTED``; every occurrence of a non-empty string of ``secrets`` is replaced anywhere.
    """
    names = SECRET_HEADERS | {h.lower() for h in secret_headers}
    return _redact(value, names, [s for s in secrets if s])


def _redact(value: Any, secret_headers: frozenset[str], secrets: list[str]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k.lower() in secret_headers and v is not None:
                out[k] = REDACTED
            else:
                out[k] = _redact(v, secret_headers, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_redact(v, secret_headers, secrets) for v in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    return value


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``REDACTED``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


_TEXT_START = re.compile(r"\S")
_BYTES_START = re.compile(rb"\S")


def snippet(text: str | bytes | bytearray, secrets: Iterable[str | None], limit: int = 300) -> str:
    """``text`` fit to quote in an error: secrets scrubbed first, then cut to ``limit`` chars.

    The order matters: a key that straddles the cut would leave its first part visible if
    the text were cut before it is scrubbed. Only a prefix of a long text is decoded and
    searched (``limit`` plus the longest secret characters); a key's beginning cut off at
    the end of that prefix is dropped too, or it would slide into view once earlier copies
    shrink to ``***``.
    """
    keys = [s for s in secrets if s]
    window = limit + max((len(s) for s in keys), default=0) + 1
    if isinstance(text, str):
        found = _TEXT_START.search(text)
        start = found.start() if found else len(text)
        head = text[start : start + window]
        cut = start + window < len(text)
    else:
        found_b = _BYTES_START.search(text)
        start = found_b.start() if found_b else len(text)
        # UTF-8 takes at most 4 bytes a character: this many bytes hold ``window`` characters.
        raw = bytes(text[start : start + 4 * window])
        decoded = raw.decode("utf-8", errors="replace")
        head = decoded[:window]
        cut = len(decoded) > window or start + len(raw) < len(text)
    if cut:
        for key in keys:
            for size in range(min(len(key) - 1, len(head)), 0, -1):
                if head.endswith(key[:size]):
                    head = head[:-size]
                    break
    head = scrub(head, keys).rstrip()
    return head[:limit] + "..." if cut or len(head) > limit else head
