"""Keeping secrets out of output: redaction of credential headers and known secret values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "SECRET_HEADERS", "redact", "scrub"]

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
