"""A hostile or broken server on loopback must not take the process down, nor get the key.

Every case runs against the real providers over HTTP, the OpenAI SDK provider included
(it shares the seam's pool, so the same transport bounds it). Servers stream their bodies
lazily: nothing here builds a big body in memory. Memory is measured with tracemalloc where
the point is memory; the servers stop by themselves when the client hangs up.
"""

from __future__ import annotations

import itertools
import traceback
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from runtime.config import HTTPConfig
from runtime.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
)
from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.providers.base import LLMProvider
from runtime.providers.cohere_provider import CohereProvider
from runtime.providers.gemini_provider import GeminiProvider
from runtime.providers.openai_provider import OpenAIProvider
from runtime.providers.openai_sdk_provider import OpenAISDKProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta
from tests.loopback import LoopbackServer, Reply, sse
from tests.unit.helpers import catalog, runtime_for
from tests.wire import anthropic_fakes, cohere_fakes, gemini_fakes, openai_fakes

MiB = 1024 * 1024
KEY = "sk-proj-Q7vX2mN9pL4kR8tW1yZ6bC3dF5gH0jA2sE4uIo"  # 46 characters, the canary
assert len(KEY) == 46
OPENAI_PROVIDERS = [
    pytest.param(OpenAIProvider, id="wire"),
    pytest.param(OpenAISDKProvider, id="sdk"),
]
PIECE = b"x" * (64 * 1024)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def other() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def request(model: str = openai_fakes.MODEL) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "hi"),))


async def stream(provider: LLMProvider, req: ChatRequest | None = None) -> list[str]:
    deltas: list[str] = []
    async for event in provider.stream_chat(req or request()):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert isinstance(event, StreamEnd)
    return deltas


async def call(provider: LLMProvider, req: ChatRequest, *, streaming: bool) -> None:
    """The call, streamed or not."""
    if streaming:
        await stream(provider, req)
    else:
        await provider.chat(req)


async def gather(provider: LLMProvider, req: ChatRequest, seen: list[str]) -> None:
    """Stream ``req``, appending each delta to ``seen``."""
    async for event in provider.stream_chat(req):
        assert isinstance(event, TextDelta)
        seen.append(event.text)


class Sent:
    """Counts what a lazy body generator handed to the server to send."""

    def __init__(self) -> None:
        self.bytes = 0

    def count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes += len(chunk)
            yield chunk


async def peak_memory(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException, int]:
    """The exception ``call`` raised, and the peak of traced memory while it ran."""
    tracemalloc.start()
    try:
        await call()
    except BaseException as exc:
        caught = exc
    else:
        raise AssertionError("the call did not fail")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return caught, peak


def json_reply(chunks: Iterator[bytes], status: int = 200, **headers: str) -> Reply:
    return Reply(status, chunks=chunks, content_type="application/json", headers=headers)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
async def test_a_300_mib_reply_stops_at_max_body_bytes_with_memory_near_it(
    cls: type[LLMProvider], server: LoopbackServer
) -> None:
    sent = Sent()
    body = itertools.chain([b'{"pad": "'], itertools.repeat(PIECE, 300 * 16), [b'"}'])
    server.queue(json_reply(sent.count(body)))
    provider = cls(api_key=KEY, base_url=server.url)
    error, peak = await peak_memory(lambda: provider.chat(request()))
    await provider.aclose()
    assert isinstance(error, ResponseTooLargeError), repr(error)
    assert "the reply is larger than http.max_body_bytes = 33554432 bytes" in str(error)
    assert "raise max_body_bytes under settings.http (or the provider's http:)" in str(error)
    assert peak < 48 * MiB, f"peak {peak / MiB:.0f} MiB for a 32 MiB limit"
    assert sent.bytes < 100 * MiB  # the client hung up; the server did not send it all


async def test_an_endless_reply_stops_at_the_limit(server: LoopbackServer) -> None:
    sent = Sent()
    # Endless but for a safety stop at 256 MiB, so a regression cannot eat the machine.
    server.queue(json_reply(sent.count(itertools.islice(itertools.repeat(b" " * 65536), 4096))))
    provider = OpenAIProvider(api_key=KEY, base_url=server.url)
    error, peak = await peak_memory(lambda: provider.chat(request()))
    await provider.aclose()
    assert isinstance(error, ResponseTooLargeError), repr(error)
    assert peak < 48 * MiB
    assert sent.bytes < 100 * MiB


def gzip_bomb(sent: Sent, gib: int = 1) -> Iterator[bytes]:
    """1 GiB of zeros gzipped (about 1 MiB on the wire), compressed as it is sent."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)

    def pieces() -> Iterator[bytes]:
        for _ in range(1024 * gib):
            if out := deflate.compress(zeros):
                yield out
        yield deflate.flush()

    return sent.count(pieces())


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
async def test_a_gzip_bomb_is_decoded_within_the_limit(
    cls: type[LLMProvider], server: LoopbackServer
) -> None:
    sent = Sent()
    server.queue(json_reply(gzip_bomb(sent), **{"content-encoding": "gzip"}))
    provider = cls(api_key=KEY, base_url=server.url)
    error, peak = await peak_memory(lambda: provider.chat(request()))
    await provider.aclose()
    assert isinstance(error, ResponseTooLargeError), repr(error)
    assert "http.max_body_bytes = 33554432" in str(error)
    assert peak < 48 * MiB, f"peak {peak / MiB:.0f} MiB for a 32 MiB limit"
    assert sent.bytes < 2 * MiB  # a 1 MiB bomb: inflated 32 MiB of it, then hung up


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
async def test_a_gzip_bomb_as_an_error_body_is_still_the_status_error(
    cls: type[LLMProvider], server: LoopbackServer
) -> None:
    server.queue(json_reply(gzip_bomb(Sent()), 503, **{"content-encoding": "gzip"}))
    provider = cls(api_key=KEY, base_url=server.url)
    error, peak = await peak_memory(lambda: provider.chat(request()))
    await provider.aclose()
    assert type(error) is ServerError, repr(error)  # retryable, as a 503 is
    assert error.status_code == 503
    assert peak < 8 * MiB  # max_error_body_bytes is 256 KiB


async def test_an_endless_stream_stops_at_the_providers_max_stream_bytes(
    server: LoopbackServer,
) -> None:
    cat = catalog(
        {"m": {"provider": "p", "retry": {"max_attempts": 1}}},
        {
            "p": {
                "class": "runtime.providers.openai_provider.OpenAIProvider",
                "base_url": server.url,
                "api_key_env": "HOSTILE_KEY",
                "http": {"max_stream_bytes": MiB},
            }
        },
        settings={"http": {"max_sse_line_bytes": 1000, "max_stream_bytes": 5 * MiB}},
    )
    rt = runtime_for(cat, environ={"HOSTILE_KEY": KEY})
    # Keep-alive comments only, forever (with a safety stop at 64 MiB).
    server.queue(Reply(chunks=itertools.islice(itertools.repeat(b": ping\n" * 8192), 1200)))  # type: ignore[arg-type]
    with pytest.raises(ResponseTooLargeError) as info:
        async for _ in rt.stream(model="m", prompt="hi"):
            pass
    assert "the event stream is larger than http.max_stream_bytes = 1048576 bytes" in str(
        info.value
    )
    merged = rt.provider_for("m")._client.config  # type: ignore[attr-defined]
    assert merged == HTTPConfig(max_sse_line_bytes=1000, max_stream_bytes=MiB)
    await rt.aclose()


async def test_an_sse_line_past_the_limit_through_a_provider(server: LoopbackServer) -> None:
    server.queue(Reply(chunks=itertools.islice(itertools.repeat(b"data: " + PIECE), 256)))  # type: ignore[arg-type]
    provider = OpenAIProvider(api_key=KEY, base_url=server.url)
    with pytest.raises(ResponseTooLargeError) as info:
        await stream(provider)
    await provider.aclose()
    assert "a line of the event stream is larger than http.max_sse_line_bytes" in str(info.value)
    assert info.value.provider is None or isinstance(info.value.provider, str)
    assert info.value.model == openai_fakes.MODEL


# ---------------------------------------------------------------------------- deep JSON

DEEP = b"[" * 100_000


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(200, MalformedResponseError, id="200"),
        pytest.param(429, RateLimitError, id="429"),
        pytest.param(503, ServerError, id="503"),
    ],
)
async def test_deeply_nested_json_is_typed(
    cls: type[LLMProvider], status: int, kind: type[ProviderError], server: LoopbackServer
) -> None:
    server.queue(Reply(status, DEEP, content_type="application/json"))
    provider = cls(api_key=KEY, base_url=server.url)
    with pytest.raises(ProviderError) as info:
        await provider.chat(request())
    await provider.aclose()
    assert type(info.value) is kind
    if status == 200:
        assert "nested too deeply to parse" in str(info.value)
    assert not isinstance(info.value.__cause__, RecursionError)


@pytest.mark.parametrize(
    ("cls", "model"),
    [
        pytest.param(OpenAIProvider, openai_fakes.MODEL, id="openai"),
        pytest.param(OpenAISDKProvider, openai_fakes.MODEL, id="sdk"),
        pytest.param(AnthropicProvider, anthropic_fakes.MODEL, id="anthropic"),
        pytest.param(GeminiProvider, "gemini-2.5-flash", id="gemini"),
        pytest.param(CohereProvider, cohere_fakes.MODEL, id="cohere"),
    ],
)
async def test_a_deeply_nested_stream_event_is_malformed(
    cls: type[LLMProvider], model: str, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=[b"event: message_start\ndata: " + DEEP + b"\n\n"]))
    provider = cls(api_key=KEY, base_url=server.url)
    with pytest.raises(MalformedResponseError) as info:
        await stream(provider, request(model))
    await provider.aclose()
    assert "nested too deeply" in str(info.value)


# ---------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
async def test_a_redirect_is_never_the_answer_and_never_followed(
    cls: type[LLMProvider],
    status: int,
    streaming: bool,
    server: LoopbackServer,
    other: LoopbackServer,
) -> None:
    target = f"{other.url}/v1/chat/completions?key=abc"
    # The redirect's own body looks like an answer: it must not be taken for one.
    body = openai_fakes.completion("from the redirect")
    server.queue(Reply(status, body, headers={"location": target}))
    provider = cls(api_key=KEY, base_url=server.url)
    with pytest.raises(ProviderError) as info:
        await call(provider, request(), streaming=streaming)
    await provider.aclose()
    assert type(info.value) is ProviderError
    assert info.value.status_code == status
    shown = f"{other.url}/v1/chat/completions"
    assert str(info.value).endswith(
        f"POST /chat/completions: the server answered HTTP {status}, a redirect to {shown} on "
        "another host; the runtime follows no redirect (the API key must not travel to "
        "another URL): set the provider's base_url to the URL that answers"
    )
    assert other.requests == []
    assert not info.value.retryable


async def test_a_same_host_redirect_is_refused_too(server: LoopbackServer) -> None:
    server.queue(Reply(307, b"", headers={"location": "/v2/chat/completions"}))
    provider = OpenAIProvider(api_key=KEY, base_url=server.url)
    with pytest.raises(ProviderError) as info:
        await provider.chat(request())
    await provider.aclose()
    assert f"a redirect to {server.url}/v2/chat/completions;" in str(info.value)
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------- cookies


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
async def test_cookies_a_server_sets_are_not_sent_back(
    cls: type[LLMProvider], server: LoopbackServer
) -> None:
    cookie = {"set-cookie": "session=abc123; Path=/"}
    server.queue(
        Reply(body=openai_fakes.completion("one"), headers=cookie),
        Reply(body=openai_fakes.completion("two")),
    )
    provider = cls(api_key=KEY, base_url=server.url)
    await provider.chat(request())
    await provider.chat(request())
    await provider.aclose()
    assert "cookie" not in server.requests[1].headers


async def test_cookies_are_kept_when_the_provider_asks(server: LoopbackServer) -> None:
    cat = catalog(
        {"m": {"provider": "p"}},
        {
            "p": {
                "class": "runtime.providers.openai_provider.OpenAIProvider",
                "base_url": server.url,
                "http": {"cookies": True},
            }
        },
    )
    rt = runtime_for(cat)
    server.queue(
        Reply(body=openai_fakes.completion("one"), headers={"set-cookie": "session=abc; Path=/"}),
        Reply(body=openai_fakes.completion("two")),
    )
    assert await rt.completion("hi", "m") == "one"
    assert await rt.completion("hi", "m") == "two"
    await rt.aclose()
    assert server.requests[1].headers.get("cookie") == "session=abc"


# ---------------------------------------------------------------------------- secrets


def leaked(text: str) -> list[str]:
    """Every 8-character piece of the key found in ``text``."""
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


def around(start: int) -> str:
    """A text with the key starting at ``start``, so that it straddles a cut point."""
    return "q" * start + KEY + " " + "z" * 400


CANARY_CASES = [
    pytest.param(OpenAIProvider, False, 500, "text", id="openai-500-text"),
    pytest.param(OpenAIProvider, False, 200, "text", id="openai-200-not-json"),
    pytest.param(OpenAIProvider, True, 200, "event", id="openai-stream-event-not-json"),
    pytest.param(OpenAISDKProvider, False, 500, "text", id="sdk-500-text"),
    pytest.param(OpenAISDKProvider, False, 429, "text", id="sdk-429-text"),
    pytest.param(OpenAISDKProvider, False, 200, "text", id="sdk-200-not-json"),
    pytest.param(OpenAISDKProvider, True, 200, "event", id="sdk-stream-event-not-json"),
    pytest.param(GeminiProvider, False, 503, "text", id="gemini-503-text"),
    pytest.param(GeminiProvider, True, 200, "event", id="gemini-stream-event-not-json"),
    pytest.param(AnthropicProvider, False, 529, "text", id="anthropic-529-text"),
    pytest.param(AnthropicProvider, True, 200, "event", id="anthropic-stream-event-not-json"),
    pytest.param(CohereProvider, False, 500, "text", id="cohere-500-text"),
    pytest.param(CohereProvider, False, 498, "text", id="cohere-498-text"),
    pytest.param(CohereProvider, True, 200, "event", id="cohere-stream-event-not-json"),
]


@pytest.mark.parametrize("start", [180, 280, 295])
@pytest.mark.parametrize(("cls", "streaming", "status", "shape"), CANARY_CASES)
async def test_a_key_echoed_across_the_cut_never_shows_even_in_part(
    cls: type[LLMProvider],
    streaming: bool,
    status: int,
    shape: str,
    start: int,
    server: LoopbackServer,
) -> None:
    text = around(start)
    if shape == "event":
        reply = Reply(chunks=[f"event: message_start\ndata: {text}\n\n".encode()])
    else:
        reply = Reply(status, text, content_type="text/plain")
    server.queue(reply)
    provider = cls(api_key=KEY, base_url=server.url)
    model = anthropic_fakes.MODEL if cls is AnthropicProvider else openai_fakes.MODEL
    with pytest.raises(ProviderError) as info:
        await call(provider, request(model), streaming=streaming)
    await provider.aclose()
    error = info.value
    assert server.requests, "the call never reached the server"
    printed = "".join(traceback.format_exception(error))
    for where, shown in (("str", str(error)), ("repr", repr(error)), ("traceback", printed)):
        assert not leaked(shown), f"{where} shows {leaked(shown)}: {shown}"
    if (cls, shape) != (OpenAISDKProvider, "event"):  # the SDK's JSON error quotes nothing
        assert "qqqq" in str(error)  # the body was quoted, so the test proves something


# ---------------------------------------------------------------------------- connections


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
async def test_a_connection_error_says_where(cls: type[LLMProvider], streaming: bool) -> None:
    provider = cls(api_key=KEY, base_url="http://127.0.0.1:1")
    with pytest.raises(ProviderConnectionError) as info:
        await call(provider, request(), streaming=streaming)
    await provider.aclose()
    assert "POST /chat/completions: cannot connect to 127.0.0.1:1 (ConnectError: " in str(
        info.value
    )
    assert not leaked(str(info.value))


# ---------------------------------------------------------------------------- SSE details

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("cls", OPENAI_PROVIDERS)
async def test_a_leading_bom_does_not_drop_the_first_openai_delta(
    cls: type[LLMProvider], server: LoopbackServer
) -> None:
    events = sse([(None, openai_fakes.chunk("First")), (None, openai_fakes.chunk(" second"))])
    events += openai_fakes.stream_events(("!",))
    server.queue(Reply(chunks=[BOM + events[0], *events[1:]]))
    provider = cls(api_key=KEY, base_url=server.url)
    assert await stream(provider) == ["First", " second", "!"]
    await provider.aclose()


async def test_a_leading_bom_does_not_drop_the_first_gemini_delta(
    server: LoopbackServer,
) -> None:
    chunks = sse(
        [
            (None, gemini_fakes.response(gemini_fakes.candidate("First", finish=None))),
            (None, gemini_fakes.response(gemini_fakes.candidate(" last"))),
        ]
    )
    server.queue(Reply(chunks=[BOM + chunks[0], chunks[1]]))
    provider = GeminiProvider(api_key=KEY, base_url=server.url)
    assert await stream(provider, request("gemini-2.5-flash")) == ["First", " last"]
    await provider.aclose()


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(b"data: [DONE]\n", id="no-blank-line"),
        pytest.param(b"data: [DONE]\r\n", id="crlf-no-blank-line"),
        pytest.param(b"data: [DONE]", id="no-line-end"),
    ],
)
async def test_an_openai_stream_ending_without_the_blank_line_is_complete(
    ending: bytes, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=[*openai_fakes.stream_events(done=False), ending]))
    provider = OpenAIProvider(api_key=KEY, base_url=server.url)
    assert await stream(provider) == ["Hel", "lo", "!"]
    await provider.aclose()


async def test_an_event_cut_mid_way_is_a_cut_stream_not_a_malformed_one(
    server: LoopbackServer,
) -> None:
    events = openai_fakes.stream_events(done=False)
    server.queue(Reply(chunks=[*events[:2], b'data: {"id": "chatcmpl-123", "choi']))
    provider = OpenAIProvider(api_key=KEY, base_url=server.url)
    with pytest.raises(ProviderConnectionError) as info:
        await stream(provider)
    await provider.aclose()
    assert "the stream ended in the middle of an event" in str(info.value)
    assert info.value.retryable


async def test_an_anthropic_stream_ending_without_the_blank_line_is_complete(
    server: LoopbackServer,
) -> None:
    chunks = sse(anthropic_fakes.stream_events())
    server.queue(Reply(chunks=[*chunks[:-1], chunks[-1].rstrip(b"\n") + b"\n"]))
    provider = AnthropicProvider(api_key=KEY, base_url=server.url)
    assert await stream(provider, request(anthropic_fakes.MODEL)) == ["Hel", "lo", "!"]
    await provider.aclose()


def google_error(code: int, status: str, message: str) -> bytes:
    """Google's bare error object after the last event, pretty-printed, no ``data:``."""
    return (
        "{\n"
        '  "error": {\n'
        f'    "code": {code},\n'
        f'    "message": "{message}",\n'
        f'    "status": "{status}"\n'
        "  }\n"
        "}\n"
    ).encode()


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        pytest.param(429, "RESOURCE_EXHAUSTED", RateLimitError, id="429"),
        pytest.param(503, "UNAVAILABLE", ServerError, id="503"),
    ],
)
async def test_a_gemini_stream_ending_in_a_bare_error_object_raises_it(
    code: int, status: str, kind: type[ProviderError], server: LoopbackServer
) -> None:
    first = sse([(None, gemini_fakes.response(gemini_fakes.candidate("Hi", finish=None)))])
    message = "The model is overloaded. Please try again later."
    server.queue(Reply(chunks=[*first, b"\n", google_error(code, status, message)]))
    provider = GeminiProvider(api_key=KEY, base_url=server.url)
    seen: list[str] = []
    with pytest.raises(ProviderError) as info:
        await gather(provider, request("gemini-2.5-flash"), seen)
    await provider.aclose()
    assert seen == ["Hi"]
    assert type(info.value) is kind
    assert info.value.message == message
    assert info.value.vendor_code == status


async def test_a_gemini_stream_with_stray_text_and_no_finish_is_still_cut(
    server: LoopbackServer,
) -> None:
    first = sse([(None, gemini_fakes.response(gemini_fakes.candidate("Hi", finish=None)))])
    server.queue(Reply(chunks=[*first, b"<html>proxy says no</html>\n"]))
    provider = GeminiProvider(api_key=KEY, base_url=server.url)
    with pytest.raises(ProviderConnectionError, match="stream ended before the model finished"):
        await stream(provider, request("gemini-2.5-flash"))
    await provider.aclose()
