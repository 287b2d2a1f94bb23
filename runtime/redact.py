"""Keeping secrets out of output: structural redaction by name, and scrubbing by value.

Structural first: mapping keys that name a credential (HTTP auth headers such as
``authorization``/``x-api-key``, and fields such as ``api_key``, ``token``, ``secret``,
``password``) always have their values replaced, whatever the value. By value second: every
occurrence of a known secret (the API keys in use) is replaced in any text, but only for
values of at least ``MIN_SECRET_LENGTH`` characters, so a placeholder key such as ``x`` or
``on`` cannot turn ``application/json`` into ``applicati***/js***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_HEADERS",
    "is_secret_name",
    "redact",
    "scrub",
    "snippet",
]

REDACTED = "***"
#: Shorter values are not searched for in text (they are redacted by name only).
MIN_SECRET_LENGTH = 8
#: Header names that carry credentials in any protocol we know; always redacted.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
#: Field names that hold a credential: api_key, apiKey, access_token, client_secret,
#: password, ... but not max_tokens or prompt_cache_key.
_SECRET_NAME = (
    r"^(?:key|token|secret|password|passwd|credentials?|bearer)$"
    r"|(?:^|[_\-.])(?:api[_\-]?key|apikey|(?:secret|access|private)[_\-]?key"
    r"|(?:auth|access|refresh|bearer|session|id)?[_\-]?token|secret|password|passwd"
    r"|credentials?)$"
)
_CAMEL_SECRET = r"(?:[a-z](?:Key|Token|Secret|Password))$"


@cache
def _name_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    # Compiled on first use, not at import: most processes never redact anything.
    return re.compile(_SECRET_NAME, re.IGNORECASE), re.compile(_CAMEL_SECRET)


def is_secret_name(name: str) -> bool:
    """Whether a header or field called ``name`` holds a credential."""
    lowered = name.lower()
    if lowered in SECRET_HEADERS:
        return True
    secret, camel = _name_patterns()
    return bool(secret.search(lowered)) or bool(camel.search(name))


def redact(value: Any, secret_headers: Iterable[str] = (), secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with credentials replaced by ``REDACTED``.

    Keys named by ``is_secret_name`` or listed in ``secret_headers`` (case-insensitive) get
    ``REDACTED``; every occurrence of each of ``secrets`` long enough is replaced anywhere.
    """
    names = frozenset(h.lower() for h in secret_headers)
    return _redact(value, names, _searchable(secrets))


def _searchable(secrets: Iterable[str | None]) -> list[str]:
    # Longest first: a key that contains another is replaced whole.
    found = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def _redact(value: Any, secret_headers: frozenset[str], secrets: list[str]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if (
                isinstance(k, str)
                and v is not None
                and (k.lower() in secret_headers or is_secret_name(k))
            ):
                out[k] = REDACTED
            else:
                out[k] = _redact(v, secret_headers, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_redact(v, secret_headers, secrets) for v in value]
    if isinstance(value, str):
        return _scrub(value, secrets)
    return value


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (of MIN_SECRET_LENGTH or more) replaced."""
    return _scrub(text, _searchable(secrets))


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
        found = re.search(r"\S", text)
        start = found.start() if found else len(text)
        head = text[start : start + window]
        cut = start + window < len(text)
    else:
        found_b = re.search(rb"\S", text)
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
