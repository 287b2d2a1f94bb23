"""The HTTP seam: a JSON request -> a JSON reply or a stream of SSE events, errors mapped once.

Wire providers speak their protocol through ``HTTPClient`` and never touch the transport
library (httpx2 today) directly, so it can be tuned or swapped without touching a provider.
Every transport failure and every HTTP error status becomes one of ``runtime.errors`` here;
a provider only supplies how its error envelope reads (``ErrorParser``).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from .errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)
from .redact import scrub

__all__ = [
    "ErrorInfo",
    "ErrorParser",
    "HTTPClient",
    "SSEEvent",
    "default_error_parser",
    "error_for_status",
    "iter_sse",
    "parse_retry_after",
]

#: Longest slice of a foreign body quoted in an error message.
_SNIPPET = 300

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|exceeds the (maximum|context)|exceed context limit|token limit|"
    r"reduce the length",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event (``event`` defaults to "message" as the SSE spec says)."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


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


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``retry-after`` in seconds or as HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0 and value == value:  # not NaN
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


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

    ``secrets`` (API keys) are scrubbed from the message: servers echo keys back.
    """
    info: ErrorInfo | None = None
    text = body.decode("utf-8", errors="replace")
    try:
        info = parse(json.loads(text)) if text.strip() else None
    except ValueError:
        info = None
    message = info.message if info else _snippet(text)
    if not message or message in ("{}", "[]", "null", '""'):
        message = f"HTTP {status} with no error message in the reply"
    message = scrub(message, secrets)
    code = info.code if info else None
    kind = info.type if info else None
    retry_after = parse_retry_after(headers)
    if retry_after is None and info is not None:
        retry_after = info.retry_after
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "vendor_code": code or kind,
    }
    markers = " ".join(x for x in (code, kind) if x).lower()
    if status == 429 or "rate_limit" in markers or "resource_exhausted" in markers:
        return RateLimitError(message, retry_after=retry_after, **common)
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


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncGenerator[SSEEvent, None]:
    """Parse a byte stream as server-sent events (the WHATWG algorithm; CR, LF or CRLF).

    An event is dispatched at a blank line; an unterminated event at end of stream is
    discarded, as the spec says (a cut stream is then detected by the provider, which
    expects its protocol's final event).
    """
    buffer = b""
    event = ""
    data: list[str] = []
    last_id: str | None = None
    pending_cr = False
    async for chunk in chunks:
        if pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        pending_cr = chunk.endswith(b"\r")
        buffer += chunk
        lines = re.split(rb"\r\n|\r|\n", buffer)
        buffer = lines.pop()  # the incomplete tail
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield SSEEvent(event or "message", "\n".join(data), last_id)
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                last_id = value


class HTTPClient:
    """One pooled HTTP client for one provider instance; JSON in, JSON or SSE out.

    ``secrets`` (API keys) are scrubbed from any text this client puts into an error.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        provider: str | None = None,
        error_parser: ErrorParser = default_error_parser,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 120.0,
        max_connections: int = 100,
        secrets: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self._parse = error_parser
        self._secrets = tuple(s for s in secrets if s)
        self._closed = False
        self._client = httpx2.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx2.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def raw(self) -> httpx2.AsyncClient:
        """The underlying client, for SDK-backed providers that share this pool."""
        return self._client

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _timeout(self, connect: float | None, read: float | None) -> Any:
        if connect is None and read is None:
            return httpx2.USE_CLIENT_DEFAULT
        base = self._client.timeout
        return httpx2.Timeout(
            read if read is not None else base.read,
            connect=connect if connect is not None else base.connect,
            pool=connect if connect is not None else base.pool,
        )

    def _transport_error(self, exc: Exception, model: str | None, what: str) -> ProviderError:
        detail = self._scrub(str(exc))
        text = f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
        common: dict[str, Any] = {"provider": self.provider, "model": model}
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderTimeoutError(text, **common)
        return ProviderConnectionError(text, **common)

    def _status_error(
        self, response: httpx2.Response, body: bytes, model: str | None
    ) -> ProviderError:
        err = error_for_status(
            response.status_code,
            response.headers,
            body,
            provider=self.provider,
            model=model,
            parse=self._parse,
            secrets=self._secrets,
        )
        return err

    async def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        model: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        """POST ``body`` as JSON and return the parsed JSON reply; errors are ours."""
        try:
            response = await self._client.post(
                path,
                json=body,
                headers=headers,
                params=params,
                timeout=self._timeout(connect_timeout, read_timeout),
            )
            content = response.content
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, model, f"POST {path} failed") from exc
        if response.status_code >= 400:
            raise self._status_error(response, content, model)
        try:
            return json.loads(content)
        except ValueError as exc:
            raise MalformedResponseError(
                f"POST {path}: the reply is not JSON: "
                f"{self._scrub(_snippet(content.decode('utf-8', 'replace')))!r}",
                provider=self.provider,
                model=model,
                status_code=response.status_code,
            ) from exc

    @asynccontextmanager
    async def stream_sse(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        model: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """POST ``body`` and yield an async iterator of SSE events; the response is closed on exit.

        Use as ``async with client.stream_sse(...) as events: async for ev in events: ...``.
        An error status raises before any event; a broken connection mid-stream raises ours.
        """
        request = self._client.build_request(
            "POST",
            path,
            json=body,
            headers={"accept": "text/event-stream", **(headers or {})},
            params=params,
            timeout=self._timeout(connect_timeout, read_timeout),
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, model, f"POST {path} failed") from exc
        try:
            if response.status_code >= 400:
                try:
                    content = await response.aread()
                except httpx2.HTTPError as exc:
                    raise self._transport_error(exc, model, f"POST {path} failed") from exc
                raise self._status_error(response, content, model)
            ctype = response.headers.get("content-type", "")
            if "json" in ctype and "event-stream" not in ctype:
                # Some servers answer a stream request with one JSON error body and 200.
                content = await response.aread()
                raise MalformedResponseError(
                    f"POST {path}: expected an event stream, got JSON: "
                    f"{self._scrub(_snippet(content.decode('utf-8', 'replace')))!r}",
                    provider=self.provider,
                    model=model,
                    status_code=response.status_code,
                )
            events = self._events(response, path, model)
            try:
                yield events
            finally:
                await events.aclose()  # a consumer that stopped early left it suspended
        finally:
            await response.aclose()

    async def _events(
        self, response: httpx2.Response, path: str, model: str | None
    ) -> AsyncGenerator[SSEEvent, None]:
        chunks = response.aiter_bytes()
        events = iter_sse(chunks)
        try:
            async for event in events:
                yield event
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, model, f"POST {path}: the stream broke") from exc
        finally:
            # Close both now, rather than in tasks the event loop's finalizer would start.
            await events.aclose()
            await chunks.aclose()
