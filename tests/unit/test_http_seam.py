"""The HTTP seam's pure parts: SSE framing, Retry-After forms and the status -> error mapping."""

from __future__ import annotations

import email.utils
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime import errors
from runtime.body import PIECE, BodyDecoder
from runtime.http import SSEEvent, error_for_status, iter_sse, loads, parse_retry_after
from runtime.redact import snippet


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
        pytest.param(
            [b"data: unterminated"],
            [SSEEvent("message", "unterminated", at_eof=True)],
            id="unterminated-event-dispatched-at-eof",
        ),
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
    error = client.transport_error(exc_class("boom sk-secret"), "m", "/x")
    expected = (
        errors.ProviderTimeoutError
        if issubclass(exc_class, httpx2.TimeoutException)
        else errors.ProviderConnectionError
    )
    assert type(error) is expected
    assert error.retryable
    cause = f"{exc_class.__name__}: boom ***"
    if issubclass(exc_class, httpx2.ConnectError | httpx2.ConnectTimeout):
        what = f"POST /x: cannot connect to 127.0.0.1:9 ({cause})"
    else:
        what = f"POST /x to 127.0.0.1:9 failed ({cause})"
    assert str(error) == f"[provider 'p', model 'm'] {what}"


# ---------------------------------------------------------------------------- hostile values


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"retry-after": "inf"}, id="inf"),
        pytest.param({"retry-after": "Infinity"}, id="infinity"),
        pytest.param({"retry-after": "nan"}, id="nan"),
        pytest.param({"retry-after": "1e400"}, id="overflow"),
        pytest.param({"retry-after-ms": "inf"}, id="ms-inf"),
        pytest.param({"retry-after-ms": "1e400"}, id="ms-overflow"),
        pytest.param({"retry-after-ms": "nan"}, id="ms-nan"),
        pytest.param({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, id="date-overflow"),
    ],
)
def test_unusable_retry_after_is_ignored(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers) is None
    error = error_for_status(429, headers, b"{}", provider="p", model="m")
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after is None


def test_unusable_retry_after_ms_falls_back_to_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "inf", "retry-after": "2"}) == 2.0


def test_a_gemini_retry_delay_that_overflows_is_ignored() -> None:
    from runtime.providers.gemini_provider import parse_gemini_error

    body = {
        "error": {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9" * 400 + "s"}
            ],
        }
    }
    info = parse_gemini_error(body)
    assert info is not None
    assert info.retry_after is None
    error = error_for_status(
        429, {}, json.dumps(body).encode(), provider="p", model="m", parse=parse_gemini_error
    )
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after is None


DEEP = b"[" * 100_000


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(429, errors.RateLimitError, id="429"),
        pytest.param(503, errors.ServerError, id="503"),
        pytest.param(400, errors.BadRequestError, id="400"),
    ],
)
def test_an_error_body_nested_too_deeply_keeps_its_status_kind(
    status: int, kind: type[errors.ProviderError]
) -> None:
    error = error_for_status(status, {"retry-after": "1"}, DEEP, provider="p", model="m")
    assert type(error) is kind
    assert error.message == "[" * 300 + "..."
    if isinstance(error, errors.RateLimitError | errors.ServerError):
        assert error.retry_after == 1.0


def test_loads_turns_deep_nesting_into_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(DEEP)


# ---------------------------------------------------------------------------- snippets

KEY = "sk-proj-Q7vX2mN9pL4kR8tW1yZ6bC3dF5gH0jA2sE4uIo"  # 46 characters


def _leaked(text: str) -> list[str]:
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


@pytest.mark.parametrize("start", [*range(250, 305, 3), 0, 1000])
@pytest.mark.parametrize("kind", [str, bytes])
def test_snippet_scrubs_before_it_cuts(start: int, kind: type) -> None:
    assert len(KEY) == 46
    text = "x" * start + KEY + " then " + KEY + "y" * 500
    quoted = snippet(text.encode() if kind is bytes else text, [KEY])
    assert not _leaked(quoted), quoted
    assert len(quoted) <= 303


def test_snippet_of_a_short_text_is_whole() -> None:
    assert snippet(f"  bad key {KEY}  ", [KEY]) == "bad key ***"
    assert snippet(b"\xffoops", []) == "\ufffdoops"


def test_error_for_status_scrubs_a_text_body_before_cutting_it() -> None:
    body = ("e" * 280 + KEY + "z" * 400).encode()
    error = error_for_status(500, {}, body, provider="p", model="m", secrets=(KEY,))
    assert not _leaked(str(error))
    assert not _leaked(repr(error))


# ---------------------------------------------------------------------------- body decoding


def _bomb(size: int) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    return b"".join(deflate.compress(zeros) for _ in range(size // len(zeros))) + deflate.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("deflate", zlib.compress, id="deflate-zlib"),
        pytest.param("deflate", lambda d: zlib.compress(d)[2:-4], id="deflate-raw"),
        pytest.param("gzip, gzip", lambda d: gzip.compress(gzip.compress(d)), id="twice"),
        pytest.param(None, lambda d: d, id="identity"),
    ],
)
def test_body_decoder_undoes_each_encoding_in_any_chunking(
    encoding: str | None, encode: Any
) -> None:
    data = b'{"text": "hello"} ' * 20_000
    wire = encode(data)
    decoder = BodyDecoder(encoding, len(data), setting="max_body_bytes")
    out = b"".join(p for i in range(0, len(wire), 13) for p in decoder.feed(wire[i : i + 13]))
    assert out == data


def test_body_decoder_inflates_a_bomb_in_bounded_pieces_and_stops_at_the_limit() -> None:
    bomb = _bomb(64 * 1024 * 1024)  # 64 MiB of zeros in about 64 kB
    decoder = BodyDecoder("gzip", 8 * 1024 * 1024, setting="max_body_bytes")
    sizes: list[int] = []

    def inflate() -> None:
        sizes.extend(len(piece) for piece in decoder.feed(bomb))

    with pytest.raises(errors.ResponseTooLargeError) as info:
        inflate()
    assert max(sizes) <= PIECE
    assert sum(sizes) == 8 * 1024 * 1024
    assert "http.max_body_bytes = 8388608 bytes" in str(info.value)


def test_body_decoder_truncates_an_error_body() -> None:
    decoder = BodyDecoder("gzip", 1000, setting="max_error_body_bytes", truncate=True)
    assert sum(len(p) for p in decoder.feed(_bomb(8 * 1024 * 1024))) == 1000
    assert decoder.done
    assert list(decoder.feed(b"more")) == []


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip, gzip"])
def test_body_decoder_refuses_what_it_did_not_ask_for(encoding: str) -> None:
    with pytest.raises(errors.MalformedResponseError, match="asks for 'gzip, deflate' only"):
        BodyDecoder(encoding, 100, setting="max_body_bytes")


def test_body_decoder_reports_corrupt_data() -> None:
    decoder = BodyDecoder("gzip", 100, setting="max_body_bytes")
    with pytest.raises(errors.MalformedResponseError, match="gzip data is corrupt"):
        list(decoder.feed(b"not gzip at all"))


@pytest.mark.parametrize("split", [1, 2, 3, 4, 100])
def test_body_decoder_strips_a_leading_bom_when_asked(split: int) -> None:
    body = b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbf"
    decoder = BodyDecoder(None, 100, setting="max_stream_bytes", strip_bom=True)
    out = b"".join(p for i in range(0, len(body), split) for p in decoder.feed(body[i : i + split]))
    assert out == b"data: x\n\n\xef\xbb\xbf"  # only the leading one
    plain = BodyDecoder(None, 100, setting="max_body_bytes")
    assert b"".join(plain.feed(body)) == body


# ---------------------------------------------------------------------------- settings

PROVIDERS_YAML = """\
settings:
  http: {max_body_bytes: 1000, max_error_body_bytes: 500}
providers:
  p:
    class: runtime.providers.openai_provider.OpenAIProvider
    base_url: http://127.0.0.1:9
    http: {cookies: true, max_body_bytes: 2000}
"""


def test_http_settings_merge_field_by_field_from_yaml(tmp_path: Any) -> None:
    from runtime import load_runtime
    from runtime.config import HTTPConfig

    (tmp_path / "providers.yaml").write_text(PROVIDERS_YAML, encoding="utf-8")
    (tmp_path / "models.yaml").write_text("models:\n  m: {provider: p}\n", encoding="utf-8")
    rt = load_runtime(tmp_path / "providers.yaml", tmp_path / "models.yaml")
    client = rt.provider_for("m").http()  # type: ignore[attr-defined]
    assert client.config == HTTPConfig(max_body_bytes=2000, max_error_body_bytes=500, cookies=True)


def test_a_typo_in_http_settings_is_a_load_error_with_its_place(tmp_path: Any) -> None:
    from runtime import load_runtime

    text = PROVIDERS_YAML.replace("cookies: true", "cookie: true")
    (tmp_path / "providers.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "models.yaml").write_text("models:\n  m: {provider: p}\n", encoding="utf-8")
    with pytest.raises(errors.ConfigError) as info:
        load_runtime(tmp_path / "providers.yaml", tmp_path / "models.yaml")
    expected = "providers.yaml:7:12: providers.p.http.cookie: unknown key 'cookie'"
    assert f"{expected} (did you mean 'cookies'?)" in str(info.value)
