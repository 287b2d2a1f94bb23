"""The HTTP seam's pure parts: SSE framing, Retry-After forms and the status -> error mapping."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator

import pytest

from runtime import errors
from runtime.http import SSEEvent, error_for_status, iter_sse, parse_retry_after


async def _events(*chunks: bytes) -> list[SSEEvent]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return [event async for event in iter_sse(source())]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"data: a\n\n"], [SSEEvent("message", "a")], id="one-event"),
        pytest.param([b"event: ping\ndata: {}\r\n\r\n"], [SSEEvent("ping", "{}")], id="crlf-named"),
        pytest.param(
            [b"data: a\r", b"\n\r", b"\ndata: b\n\n"],
            [SSEEvent("message", "a"), SSEEvent("message", "b")],
            id="crlf-split-across-chunks",
        ),
        pytest.param(
            [b"data: line1\ndata: line2\n\n"],
            [SSEEvent("message", "line1\nline2")],
            id="multi-line-data",
        ),
        pytest.param(
            [b": keep-alive comment\n\ndata:no-space\n\n"],
            [SSEEvent("message", "no-space")],
            id="comment-and-no-space",
        ),
        pytest.param(
            [b"id: 7\ndata: x\n\ndata: y\n\n"],
            [SSEEvent("message", "x", "7"), SSEEvent("message", "y", "7")],
            id="last-event-id-carries",
        ),
        pytest.param(
            [b"da", b"ta: sp", b"lit\n", b"\n"], [SSEEvent("message", "split")], id="split-mid-line"
        ),
        pytest.param([b"data: unterminated"], [], id="unterminated-event-discarded"),
        pytest.param([b"event: x\n\n"], [], id="event-without-data-ignored"),
        pytest.param(["data: é\n\n".encode()], [SSEEvent("message", "é")], id="utf8"),
    ],
)
async def test_sse_framing(chunks: list[bytes], expected: list[SSEEvent]) -> None:
    assert await _events(*chunks) == expected


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "junk", "retry-after": "9"}) == 9.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        pytest.param(
            400, b'{"error": {"message": "bad temp"}}', errors.BadRequestError, "bad temp", id="400"
        ),
        pytest.param(
            400,
            b'{"error": {"message": "x", "code": "context_length_exceeded"}}',
            errors.ContextLengthExceededError,
            "x",
            id="context-code",
        ),
        pytest.param(
            401, b'{"error": {"message": "who?"}}', errors.AuthenticationError, "who?", id="401"
        ),
        pytest.param(
            403,
            b"",
            errors.PermissionDeniedError,
            "HTTP 403 with no error message in the reply",
            id="403-empty",
        ),
        pytest.param(404, b"not here", errors.NotFoundError, "not here", id="404-text"),
        pytest.param(
            408,
            b"{}",
            errors.ServerError,
            "HTTP 408 with no error message in the reply",
            id="408-retryable",
        ),
        pytest.param(
            429,
            b"{}",
            errors.RateLimitError,
            "HTTP 429 with no error message in the reply",
            id="429-empty-json",
        ),
        pytest.param(
            503, b"<html>busy</html>", errors.ServerError, "<html>busy</html>", id="503-html"
        ),
    ],
)
def test_status_mapping(
    status: int, body: bytes, kind: type[errors.ProviderError], message: str
) -> None:
    error = error_for_status(status, {}, body, provider="p", model="m")
    assert type(error) is kind
    assert error.message == message
    assert error.status_code == status


def _transport_exception_classes() -> list[type[Exception]]:
    import httpx2

    found: list[type[Exception]] = []
    todo: list[type[Exception]] = [httpx2.TransportError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted({c for c in found if c.__module__.startswith("httpx")}, key=lambda c: c.__name__)


@pytest.mark.parametrize("exc_class", _transport_exception_classes(), ids=lambda c: c.__name__)
def test_every_transport_exception_maps_to_ours(exc_class: type[Exception]) -> None:
    import httpx2

    from runtime.http import HTTPClient

    client = HTTPClient(base_url="http://127.0.0.1:9", provider="p", secrets=("sk-secret",))
    error = client._transport_error(exc_class("boom sk-secret"), "m", "POST /x failed")
    expected = (
        errors.ProviderTimeoutError
        if issubclass(exc_class, httpx2.TimeoutException)
        else errors.ProviderConnectionError
    )
    assert type(error) is expected
    assert error.retryable
    assert str(error) == f"[provider 'p', model 'm'] POST /x failed: {exc_class.__name__}: boom ***"
