"""HTTP error replies -> our errors: the vendor's envelope, its status, Retry-After.

Engine-free like ``runtime.body``: it takes a status, header values and the (bounded) body.
Every provider maps an error through here, in-band ones (an ``error`` object inside a 200
reply or a stream) included, so a foreign message is always scrubbed of keys before it is
cut to length, and a hint to wait is always a finite number of seconds or None.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .body import loads
from .errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .redact import snippet

__all__ = [
    "ErrorInfo",
    "ErrorParser",
    "default_error_parser",
    "error_for_payload",
    "error_for_status",
    "finite_seconds",
    "parse_retry_after",
]

#: Longest vendor error message kept whole in an error (a quoted foreign body: 300 chars).
_MESSAGE_LIMIT = 2000

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|exceeds the (maximum|context)|exceed context limit|token limit|"
    r"reduce the length",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What a provider's error envelope says: the vendor's message, code and type."""

    message: str
    code: str | None = None
    type: str | None = None
    retry_after: float | None = None  # seconds, from the body (e.g. google.rpc.RetryInfo)


ErrorParser = Callable[[Any], ErrorInfo | None]


def default_error_parser(body: Any) -> ErrorInfo | None:
    """Read ``{"error": {"message", "code", "type"/"status"}}`` and its common variants."""
    if isinstance(body, list) and body:  # Gemini sometimes wraps the envelope in a list
        body = body[0]
    if not isinstance(body, Mapping):
        return None
    err = body.get("error", body)
    if isinstance(err, str):
        return ErrorInfo(err)
    if not isinstance(err, Mapping):
        return None
    message = err.get("message") or err.get("detail") or body.get("message")
    if not isinstance(message, str):
        return None
    code = err.get("code")
    kind = err.get("type") or err.get("status")
    return ErrorInfo(
        message,
        str(code) if code is not None else None,
        str(kind) if kind is not None else None,
    )


def finite_seconds(value: Any) -> float | None:
    """``value`` as seconds to wait when it is a usable one: finite and not negative."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` in seconds or as HTTP date.

    An unusable value (not a number, negative, NaN, infinite, an overflowing date) is
    ignored like a missing one: the result is a finite number of seconds or None.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = finite_seconds(float(raw_ms) / 1000.0)
        except ValueError:
            value = None
        if value is not None:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return finite_seconds(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
        current = time.time() if now is None else now
        return finite_seconds(max(0.0, when.timestamp() - current))
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


_NOT_JSON = object()


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str | None,
    model: str | None,
    parse: ErrorParser = default_error_parser,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """Map an HTTP error reply to our hierarchy, keeping the vendor's message.

    ``secrets`` (API keys) are scrubbed from the message (servers echo keys back) before it
    is cut to length. A body that is no JSON, or JSON too deep to parse, is quoted instead:
    the status alone still decides the kind (a 429 stays a RateLimitError).
    """
    payload: Any = None
    if body.strip():
        try:
            payload = loads(body)
        except ValueError:
            payload = _NOT_JSON
    return _error(status, headers, payload, body, provider, model, parse, secrets)


def error_for_payload(
    status: int,
    payload: Any,
    *,
    provider: str | None,
    model: str | None,
    parse: ErrorParser = default_error_parser,
    secrets: Iterable[str | None] = (),
    headers: Mapping[str, str] | None = None,
    where: str | None = None,
    reported: str | None = None,
) -> ProviderError:
    """``error_for_status`` for an error object already parsed (one inside a 200 reply).

    With ``where`` (e.g. "the stream"), the error came inside a 200: ``status`` chooses its
    kind, its ``status_code`` is None and the message says "{where} reported an error: ...";
    ``reported`` (the vendor's error type, scrubbed and cut) replaces "an error" there.
    """
    return _error(
        status,
        headers or {},
        payload,
        None,
        provider,
        model,
        parse,
        secrets,
        where=where,
        reported=reported,
    )


def _error(
    status: int,
    headers: Mapping[str, str],
    payload: Any,
    body: bytes | None,
    provider: str | None,
    model: str | None,
    parse: ErrorParser,
    secrets: Iterable[str | None],
    *,
    where: str | None = None,
    reported: str | None = None,
) -> ProviderError:
    secrets = tuple(secrets)
    info: ErrorInfo | None = None
    if payload is not _NOT_JSON and payload is not None:
        try:
            info = parse(payload)
        except RecursionError:  # a parser's str() of a value nested too deeply
            info = None
    if info is not None:
        message = snippet(info.message, secrets, _MESSAGE_LIMIT)
    else:
        message = snippet(body, secrets) if body is not None else ""
    if not message or message in ("{}", "[]", "null", '""'):
        message = (
            f"HTTP {status} with no error message in the reply"
            if where is None
            else "an error without a message"
        )
    if where is not None:
        named = snippet(reported, secrets, 100) if reported else "an error"
        message = f"{where} reported {named}: {message}"
    # Vendor strings, kept as attributes: scrubbed and bounded like the message.
    code = snippet(info.code, secrets, 200) if info and info.code else None
    kind = snippet(info.type, secrets, 200) if info and info.type else None
    retry_after = parse_retry_after(headers)
    if retry_after is None and info is not None:
        retry_after = finite_seconds(info.retry_after)
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status if where is None else None,
        "vendor_code": code or kind,
    }
    markers = " ".join(x for x in (code, kind) if x).lower()
    return _typed(status, markers, message, retry_after, common)


def _typed(
    status: int, markers: str, message: str, retry_after: float | None, common: dict[str, Any]
) -> ProviderError:
    """The error kind of an HTTP status and the vendor's code/type words (``markers``)."""
    if status == 429 or "rate_limit" in markers or "resource_exhausted" in markers:
        # Waiting does not refill an exhausted quota: not retried (fallbacks still try).
        quota = "insufficient_quota" in markers
        return RateLimitError(
            message, retry_after=retry_after, retryable=False if quota else None, **common
        )
    if status == 401 or "api_key_invalid" in markers:
        return AuthenticationError(message, **common)
    if status == 403:
        return PermissionDeniedError(message, **common)
    if status == 404:
        return NotFoundError(message, **common)
    if status in (408, 409) or status >= 500:
        return ServerError(message, retry_after=retry_after, **common)
    if "context_length" in markers or _CONTEXT_PATTERNS.search(message):
        return ContextLengthExceededError(message, **common)
    if "content_filter" in markers or "content_policy" in markers:
        return ContentFilteredError(message, **common)
    return BadRequestError(message, **common)
