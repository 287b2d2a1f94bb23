"""AnthropicProvider against a loopback server: the exact request, reply parsing and faults."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    RuntimeClosedError,
    ServerError,
)
from runtime.loader import load_catalog
from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta, Usage
from tests.loopback import LoopbackServer, Recorded, Reply, sse
from tests.wire.anthropic_fakes import (
    MODEL,
    FastLoopbackServer,
    error_body,
    error_reply,
    message_body,
    stream_events,
    stream_reply,
)

CANARY = "sk-ant-canary-123"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with FastLoopbackServer() as srv:
        yield srv


@pytest.fixture
async def provider(server: LoopbackServer) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(api_key=CANARY, base_url=server.url)
    p.provider_name = "claude"
    yield p
    await p.aclose()


def req(*messages: tuple[str, str], **kw: Any) -> ChatRequest:
    msgs = tuple(Message(role, text) for role, text in messages)  # type: ignore[arg-type]
    return ChatRequest(model=MODEL, messages=msgs or (Message("user", "Hi"),), **kw)


async def collect(provider: AnthropicProvider, request: ChatRequest) -> tuple[list[str], StreamEnd]:
    deltas: list[str] = []
    ends: list[StreamEnd] = []
    async for event in provider.stream_chat(request):
        assert not ends, "an event after StreamEnd"
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        elif isinstance(event, StreamEnd):
            ends.append(event)
    assert len(ends) == 1
    return deltas, ends[0]


async def call(provider: AnthropicProvider, request: ChatRequest, *, stream: bool) -> None:
    """Make the call, streamed or not (the failure tests run both ways)."""
    if stream:
        await collect(provider, request)
    else:
        await provider.chat(request)


async def drain(provider: AnthropicProvider, request: ChatRequest, received: list[str]) -> None:
    """Stream ``request``, appending each delta to ``received``; a StreamEnd is a failure."""
    async for event in provider.stream_chat(request):
        assert not isinstance(event, StreamEnd)
        if isinstance(event, TextDelta):
            received.append(event.text)


def only(server: LoopbackServer) -> Recorded:
    assert len(server.requests) == 1
    return server.requests[0]


def assert_no_canary(exc: BaseException) -> None:
    assert CANARY not in str(exc)
    assert CANARY not in repr(exc)
    assert CANARY not in repr(exc.args)


# --------------------------------------------------------------------------- the request

USER_HI = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            ChatRequest(model=MODEL, messages=(Message("user", "Hi"),), prompt="Hi"),
            {"model": MODEL, "messages": [USER_HI], "max_tokens": 4096},
            id="plain-prompt-default-max-tokens",
        ),
        pytest.param(
            req(("system", "Be terse."), ("user", "Hi"), max_tokens=50, temperature=0.2),
            {
                "model": MODEL,
                "messages": [USER_HI],
                "max_tokens": 50,
                "system": "Be terse.",
                "temperature": 0.2,
            },
            id="system-and-temperature",
        ),
        pytest.param(
            req(("system", "One."), ("system", "Two."), ("user", "Hi")),
            {"model": MODEL, "messages": [USER_HI], "max_tokens": 4096, "system": "One.\n\nTwo."},
            id="two-system-messages-joined",
        ),
        pytest.param(
            req(("user", "Hi"), ("assistant", "Hello."), ("user", "Again")),
            {
                "model": MODEL,
                "messages": [
                    USER_HI,
                    {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Again"},
                ],
                "max_tokens": 4096,
            },
            id="multi-turn",
        ),
        pytest.param(
            req(temperature=0.0, max_tokens=7),
            {"model": MODEL, "messages": [USER_HI], "max_tokens": 7, "temperature": 0.0},
            id="zero-temperature-is-sent",
        ),
        pytest.param(
            req(max_tokens=100, max_tokens_param="max_completion_tokens"),
            {"model": MODEL, "messages": [USER_HI], "max_tokens": 100},
            id="wire-name-is-always-max_tokens",
        ),
        pytest.param(
            req(
                params={
                    "top_p": 0.9,
                    "top_k": 40,
                    "stop_sequences": ["END"],
                    "metadata": {"user_id": "u-1"},
                }
            ),
            {
                "model": MODEL,
                "messages": [USER_HI],
                "max_tokens": 4096,
                "top_p": 0.9,
                "top_k": 40,
                "stop_sequences": ["END"],
                "metadata": {"user_id": "u-1"},
            },
            id="params-merged",
        ),
    ],
)
async def test_request_sent(
    provider: AnthropicProvider,
    server: LoopbackServer,
    request_: ChatRequest,
    expected: dict[str, Any],
) -> None:
    server.queue(Reply(body=message_body()))
    await provider.chat(request_)
    sent = only(server)
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/messages", {})
    assert sent.headers["x-api-key"] == CANARY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "anthropic-beta" not in sent.headers
    assert "authorization" not in sent.headers
    assert sent.json == expected


async def test_stream_request_sent(provider: AnthropicProvider, server: LoopbackServer) -> None:
    server.queue(stream_reply())
    await collect(provider, req(("system", "S."), ("user", "Hi"), max_tokens=9))
    sent = only(server)
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["x-api-key"] == CANARY
    assert sent.json == {
        "model": MODEL,
        "messages": [USER_HI],
        "max_tokens": 9,
        "system": "S.",
        "stream": True,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_describe_request_is_what_is_sent(
    provider: AnthropicProvider, server: LoopbackServer, stream: bool
) -> None:
    request = req(("system", "S."), ("user", "Hi"), temperature=0.5, params={"top_k": 3})
    described = provider.describe_request(request, stream=stream)
    if stream:
        server.queue(stream_reply())
        await collect(provider, request)
    else:
        server.queue(Reply(body=message_body()))
        await provider.chat(request)
    sent = only(server)
    assert described["method"] == sent.method
    assert described["url"] == server.url + sent.path
    assert described["json"] == sent.json
    for name, value in described["headers"].items():
        assert sent.headers[name] == value
    assert set(described["headers"]) >= {"x-api-key", "anthropic-version", "content-type"}
    # The key appears in the headers dict only.
    assert CANARY not in json.dumps({k: v for k, v in described.items() if k != "headers"})


@pytest.mark.parametrize(
    ("suffix", "path"),
    [
        pytest.param("", "/v1/messages", id="no-slash"),
        pytest.param("/", "/v1/messages", id="trailing-slash"),
        pytest.param("/proxy/anthropic", "/proxy/anthropic/v1/messages", id="path-prefix"),
        pytest.param("/proxy/anthropic/", "/proxy/anthropic/v1/messages", id="prefix-slash"),
    ],
)
async def test_base_url_forms(server: LoopbackServer, suffix: str, path: str) -> None:
    p = AnthropicProvider(api_key=CANARY, base_url=server.url + suffix)
    try:
        server.queue(Reply(body=message_body()))
        await p.chat(req())
        assert only(server).path == path
        assert p.describe_request(req())["url"] == server.url + path
    finally:
        await p.aclose()


def test_default_base_url() -> None:
    p = AnthropicProvider(api_key=CANARY)
    assert p.describe_request(req())["url"] == "https://api.anthropic.com/v1/messages"


async def test_header_options(server: LoopbackServer) -> None:
    p = AnthropicProvider(
        api_key=CANARY,
        base_url=server.url,
        anthropic_version="2099-01-01",
        anthropic_beta=["prompt-caching-2024-07-31", "output-128k-2025-02-19"],
        headers={"x-team": "search"},
        max_connections=4,
        default_max_tokens=321,
    )
    try:
        server.queue(Reply(body=message_body()))
        await p.chat(req())
        sent = only(server)
        assert sent.headers["anthropic-version"] == "2099-01-01"
        assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31,output-128k-2025-02-19"
        assert sent.headers["x-team"] == "search"
        assert sent.json["max_tokens"] == 321
    finally:
        await p.aclose()


async def test_beta_as_string(server: LoopbackServer) -> None:
    p = AnthropicProvider(api_key=CANARY, base_url=server.url, anthropic_beta="b-1")
    try:
        server.queue(Reply(body=message_body()))
        await p.chat(req())
        assert only(server).headers["anthropic-beta"] == "b-1"
    finally:
        await p.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"anthropic_versoin": "x"},
            "AnthropicProvider: options.anthropic_versoin: unknown option 'anthropic_versoin' "
            "(did you mean 'anthropic_version'?)",
            id="unknown-option",
        ),
        pytest.param(
            {"headers": {"X-Api-Key": "other"}},
            "AnthropicProvider: option headers may not set 'x-api-key': the provider sets it",
            id="header-clash",
        ),
        pytest.param(
            {"headers": {"Anthropic-Beta": "b"}},
            "AnthropicProvider: option headers may not set 'anthropic-beta'",
            id="beta-header-clash",
        ),
        pytest.param(
            {"default_max_tokens": 0},
            "AnthropicProvider: options.default_max_tokens: must be >= 1",
            id="max0",
        ),
        pytest.param(
            {"max_connections": "many"},
            "AnthropicProvider: options.max_connections: must be an integer",
            id="conn",
        ),
        pytest.param(
            {"anthropic_beta": 3},
            "AnthropicProvider: options.anthropic_beta: must be a string or a list of strings",
            id="beta",
        ),
        pytest.param(
            {"anthropic_beta": ["a", 3]},
            "AnthropicProvider: options.anthropic_beta: must be a string or a list of strings",
            id="beta-list",
        ),
        pytest.param(
            {"anthropic_version": ""},
            "AnthropicProvider: options.anthropic_version: ",
            id="empty-version",
        ),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AnthropicProvider(api_key=CANARY, **options)
    assert message in str(info.value)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "plain-load"])
def test_bad_options_are_load_errors_with_their_position(tmp_path: Path, strict: bool) -> None:
    """Our provider classes' options are checked at every load, not only under --strict."""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n"
        "  claude:\n"
        "    class: runtime.providers.anthropic_provider.AnthropicProvider\n"
        "    options:\n"
        "      anthropic_versoin: '2023-06-01'\n"
        "      anthropic_beta: 3\n",
        encoding="utf-8",
    )
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  c: {provider: claude}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalog(providers, models, strict=strict)
    text = str(info.value)
    assert (
        f"{providers}:5:7: providers.claude.options.anthropic_versoin: unknown option "
        "'anthropic_versoin' (did you mean 'anthropic_version'?)"
    ) in text
    assert (
        f"{providers}:6:23: providers.claude.options.anthropic_beta: must be a string or a "
        "list of strings"
    ) in text


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param(
            req(("user", "Hi"), ("system", "late")),
            "messages[1]: a system message after the conversation started",
            id="late-system",
        ),
        pytest.param(
            req(("system", "only")),
            "needs at least one user or assistant message",
            id="system-only",
        ),
        pytest.param(req(params={"model": "x"}), "parameter 'model'", id="model"),
        pytest.param(req(params={"messages": []}), "parameter 'messages'", id="messages"),
        pytest.param(req(params={"system": "x"}), "parameter 'system'", id="system"),
        pytest.param(req(params={"stream": True}), "parameter 'stream'", id="stream"),
        pytest.param(req(params={"max_tokens": 5}), "parameter 'max_tokens'", id="max_tokens"),
        pytest.param(
            req(temperature=0.1, params={"temperature": 0.9}),
            "parameter 'temperature'",
            id="temperature-twice",
        ),
    ],
)
async def test_invalid_requests_send_nothing(
    provider: AnthropicProvider, server: LoopbackServer, request_: ChatRequest, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(request_)
    assert message in str(info.value)
    with pytest.raises(InvalidRequestError):
        await collect(provider, request_)
    with pytest.raises(InvalidRequestError):
        provider.describe_request(request_)
    assert server.requests == []


async def test_temperature_in_params_alone_is_sent(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=message_body()))
    await provider.chat(req(params={"temperature": 0.9}))
    assert only(server).json["temperature"] == 0.9


# --------------------------------------------------------------------------- parsing


async def test_parse_text_blocks_and_usage(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    body = message_body(
        ["Hello, ", "world."],
        blocks=[
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"},
        ],
        usage={
            "input_tokens": 10,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 5,
        },
    )
    server.queue(Reply(body=body))
    response = await provider.chat(req())
    assert response.text == "Hello, world."
    assert response.finish_reason == "stop"
    assert response.model == MODEL
    assert response.usage == Usage(
        prompt_tokens=1110,
        completion_tokens=5,
        total_tokens=1115,
        cached_tokens=1000,
        cache_write_tokens=100,
    )
    assert response.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert response.raw == body


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {"input_tokens": 12, "output_tokens": 6},
            Usage(prompt_tokens=12, completion_tokens=6),
            id="no-cache-fields",
        ),
        pytest.param(
            {
                "input_tokens": 3,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
            Usage(prompt_tokens=3, completion_tokens=1, cached_tokens=0, cache_write_tokens=0),
            id="cache-zero",
        ),
        pytest.param(
            {"input_tokens": 3, "cache_read_input_tokens": None, "output_tokens": 1},
            Usage(prompt_tokens=3, completion_tokens=1),
            id="cache-null",
        ),
        pytest.param(
            {"input_tokens": 4, "cache_creation_input_tokens": 50, "output_tokens": 2},
            Usage(prompt_tokens=54, completion_tokens=2, cache_write_tokens=50),
            id="cache-write-only",
        ),
        pytest.param({}, Usage(), id="missing"),
    ],
)
async def test_parse_usage_variants(
    provider: AnthropicProvider, server: LoopbackServer, usage: dict[str, Any], expected: Usage
) -> None:
    server.queue(Reply(body=message_body(usage=usage)))
    assert (await provider.chat(req())).usage == expected


async def test_tool_use_only_reply(provider: AnthropicProvider, server: LoopbackServer) -> None:
    body = message_body([], stop_reason="tool_use")
    body["content"] = [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]
    server.queue(Reply(body=body))
    response = await provider.chat(req())
    assert (response.text, response.finish_reason) == ("", "tool_calls")


STOP_REASONS = [
    pytest.param("end_turn", "stop", id="end_turn"),
    pytest.param("stop_sequence", "stop", id="stop_sequence"),
    pytest.param("max_tokens", "length", id="max_tokens"),
    pytest.param("model_context_window_exceeded", "length", id="context_window"),
    pytest.param("tool_use", "tool_calls", id="tool_use"),
    pytest.param("refusal", "content_filter", id="refusal"),
    pytest.param("pause_turn", "unknown", id="pause_turn"),
    pytest.param(None, "unknown", id="null"),
    pytest.param("brand_new_reason", "unknown", id="unknown"),
]


@pytest.mark.parametrize(("stop_reason", "finish"), STOP_REASONS)
async def test_stop_reasons(
    provider: AnthropicProvider, server: LoopbackServer, stop_reason: str | None, finish: str
) -> None:
    server.queue(Reply(body=message_body(stop_reason=stop_reason)))
    assert (await provider.chat(req())).finish_reason == finish


@pytest.mark.parametrize(("stop_reason", "finish"), STOP_REASONS)
async def test_stream_stop_reasons(
    provider: AnthropicProvider, server: LoopbackServer, stop_reason: str | None, finish: str
) -> None:
    server.queue(stream_reply(stream_events(stop_reason=stop_reason)))
    _, end = await collect(provider, req())
    assert end.finish_reason == finish


async def test_stream_parsing(provider: AnthropicProvider, server: LoopbackServer) -> None:
    events = stream_events(
        ["Hel", "", "lo", "!"],
        thinking=["Hmm", " let me see"],
        input_usage={"input_tokens": 20, "cache_read_input_tokens": 80},
        output_tokens=15,
    )
    server.queue(stream_reply(events))
    deltas, end = await collect(provider, req())
    assert deltas == ["Hel", "lo", "!"]  # empty deltas and thinking are not text
    assert end == StreamEnd(
        "stop",
        Usage(prompt_tokens=100, completion_tokens=15, cached_tokens=80),
        MODEL,
        "msg_01XFDUDYJgAACzvnptvVoYEL",
    )


async def test_stream_usage_from_message_delta_wins(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = stream_events(["x"])
    # Newer servers repeat the (cumulative) input counts in message_delta.
    events[-2][1]["usage"] = {"input_tokens": 30, "cache_read_input_tokens": 5, "output_tokens": 9}
    server.queue(stream_reply(events))
    _, end = await collect(provider, req())
    assert end.usage == Usage(prompt_tokens=35, completion_tokens=9, cached_tokens=5)


async def test_stream_ignores_ping_and_unknown_events(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = stream_events(["a", "b"])
    events.insert(1, ("ping", {"type": "ping"}))
    events.insert(3, ("future_event", {"type": "future_event", "x": 1}))
    events.insert(4, (None, {"type": "ping"}))  # no event: line; the data names the type
    server.queue(stream_reply(events))
    deltas, end = await collect(provider, req())
    assert deltas == ["a", "b"]
    assert end.finish_reason == "stop"


async def test_stream_input_json_delta_is_not_text(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = stream_events(["a"], stop_reason="tool_use")
    events.insert(
        -3,
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
            },
        ),
    )
    server.queue(stream_reply(events))
    deltas, end = await collect(provider, req())
    assert (deltas, end.finish_reason) == (["a"], "tool_calls")


async def test_completion_is_derived_from_chat(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=message_body("Done.")))
    assert await provider.completion("Hi", MODEL, 0.3, 20) == "Done."
    assert only(server).json == {
        "model": MODEL,
        "messages": [USER_HI],
        "max_tokens": 20,
        "temperature": 0.3,
    }


# --------------------------------------------------------------------------- failures

FUTURE = "<an HTTP date an hour from when the test runs>"  # made at run time, not at import

HTTP_FAILURES = [
    pytest.param(
        error_reply(400, "invalid_request_error", "max_tokens: Field required"),
        BadRequestError,
        400,
        "invalid_request_error",
        "max_tokens: Field required",
        id="400-invalid-request",
    ),
    pytest.param(
        error_reply(
            400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
        ),
        ContextLengthExceededError,
        400,
        "invalid_request_error",
        "prompt is too long: 210000 tokens > 200000 maximum",
        id="400-prompt-too-long",
    ),
    pytest.param(
        error_reply(
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000",
        ),
        ContextLengthExceededError,
        400,
        "context_length_exceeded",
        "exceed context limit: 197000 + 8192 > 200000",
        id="400-input-plus-max-tokens",
    ),
    pytest.param(
        error_reply(401, "authentication_error", "invalid x-api-key"),
        AuthenticationError,
        401,
        "authentication_error",
        "invalid x-api-key",
        id="401",
    ),
    pytest.param(
        error_reply(403, "permission_error", "Your API key does not have permission"),
        PermissionDeniedError,
        403,
        "permission_error",
        "does not have permission",
        id="403",
    ),
    pytest.param(
        error_reply(404, "not_found_error", "model: claude-nope", request_id="req_011CS"),
        NotFoundError,
        404,
        "not_found_error",
        "model: claude-nope (request_id req_011CS)",
        id="404-with-request-id",
    ),
    pytest.param(
        error_reply(500, "api_error", "Internal server error"),
        ServerError,
        500,
        "api_error",
        "Internal server error",
        id="500",
    ),
    pytest.param(
        error_reply(529, "overloaded_error", "Overloaded"),
        ServerError,
        529,
        "overloaded_error",
        "Overloaded",
        id="529-overloaded",
    ),
    pytest.param(
        Reply(502, "<html>Bad gateway</html>"),
        ServerError,
        502,
        None,
        "<html>Bad gateway</html>",
        id="502-not-json",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status", "vendor", "text"), HTTP_FAILURES)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_http_errors(
    provider: AnthropicProvider,
    server: LoopbackServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    vendor: str | None,
    text: str,
    stream: bool,
) -> None:
    server.queue(reply)
    with pytest.raises(cls) as info:
        await call(provider, req(), stream=stream)
    exc = info.value
    assert type(exc) is cls
    assert (exc.status_code, exc.vendor_code) == (status, vendor)
    assert (exc.provider, exc.model) == ("claude", MODEL)
    assert text in str(exc)
    assert str(exc).startswith(f"[provider 'claude', model '{MODEL}', HTTP {status}] ")
    assert exc.retryable is (status >= 500)
    assert_no_canary(exc)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        pytest.param({"retry-after": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after-ms": "1500", "retry-after": "9"}, 1.5, id="ms-wins"),
        pytest.param({"retry-after": FUTURE}, "date", id="http-date"),
        pytest.param({}, None, id="absent"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_rate_limit(
    provider: AnthropicProvider,
    server: LoopbackServer,
    headers: dict[str, str],
    retry_after: float | str | None,
    stream: bool,
) -> None:
    message = "Number of request tokens has exceeded your per-minute rate limit"
    in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    headers = {k: in_an_hour if v == FUTURE else v for k, v in headers.items()}
    server.queue(error_reply(429, "rate_limit_error", message, headers=headers))
    with pytest.raises(RateLimitError) as info:
        await call(provider, req(), stream=stream)
    exc = info.value
    assert (exc.status_code, exc.vendor_code, exc.retryable) == (429, "rate_limit_error", True)
    assert message in str(exc)
    if retry_after == "date":
        assert exc.retry_after is not None
        assert 3000 < exc.retry_after <= 3600
    else:
        assert exc.retry_after == retry_after
    assert_no_canary(exc)


async def test_529_keeps_retry_after(provider: AnthropicProvider, server: LoopbackServer) -> None:
    server.queue(error_reply(529, "overloaded_error", "Overloaded", headers={"retry-after": "3"}))
    with pytest.raises(ServerError) as info:
        await provider.chat(req())
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_connection_reset(
    provider: AnthropicProvider, server: LoopbackServer, stream: bool
) -> None:
    server.queue(Reply(reset=True))
    with pytest.raises(ProviderConnectionError) as info:
        await call(provider, req(), stream=stream)
    assert type(info.value) is ProviderConnectionError
    host_port = server.url.removeprefix("http://")
    assert f"POST /v1/messages to {host_port} failed" in str(info.value)
    assert_no_canary(info.value)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_stall_past_read_timeout(
    provider: AnthropicProvider, server: LoopbackServer, stream: bool
) -> None:
    server.queue(Reply(body=message_body(), stall=1))
    with pytest.raises(ProviderTimeoutError) as info:
        await call(provider, req(read_timeout=0.2), stream=stream)
    assert "ReadTimeout" in str(info.value)
    assert_no_canary(info.value)


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        pytest.param(
            Reply(body=b"{not json", content_type="application/json"),
            "the reply is not JSON: '{not json'",
            id="not-json",
        ),
        pytest.param(Reply(body=[1, 2]), "the reply is a JSON list", id="json-list"),
        pytest.param(
            Reply(body={"type": "message", "usage": {}}), "no 'content' list", id="no-content"
        ),
        pytest.param(
            Reply(body=message_body() | {"content": [{"type": "text", "text": 5}]}),
            "a text block has no 'text' string",
            id="text-not-string",
        ),
    ],
)
async def test_malformed_reply(
    provider: AnthropicProvider, server: LoopbackServer, reply: Reply, text: str
) -> None:
    server.queue(reply)
    with pytest.raises(MalformedResponseError) as info:
        await provider.chat(req())
    assert text in str(info.value)
    assert_no_canary(info.value)


@pytest.mark.parametrize(
    ("bad", "text"),
    [
        pytest.param(
            ("content_block_delta", "{oops"),
            "the 'content_block_delta' event's data is not JSON: '{oops'",
            id="not-json",
        ),
        pytest.param(
            ("content_block_delta", "[1]"),
            "the 'content_block_delta' event's data is not a JSON object: '[1]'",
            id="not-object",
        ),
        pytest.param(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
            ),
            "a text_delta has no 'text' string",
            id="delta-without-text",
        ),
    ],
)
async def test_malformed_sse(
    provider: AnthropicProvider, server: LoopbackServer, bad: tuple[str, Any], text: str
) -> None:
    events = stream_events(["ok"])
    events.insert(3, bad)
    server.queue(stream_reply(events))
    with pytest.raises(MalformedResponseError) as info:
        await collect(provider, req())
    assert text in str(info.value)


async def test_stream_cut_mid_way(provider: AnthropicProvider, server: LoopbackServer) -> None:
    server.queue(stream_reply(stream_events(["a", "b", "c"]), cut_after=5))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError) as info:
        await drain(provider, req(), received)
    assert ["a", "b", "c"][: len(received)] == received
    assert_no_canary(info.value)


async def test_stream_without_message_stop(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(stream_reply(stream_events(["a", "b"], stop=False)))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError) as info:
        await drain(provider, req(), received)
    assert received == ["a", "b"]
    assert "the stream ended before its message_stop event" in str(info.value)
    assert (info.value.provider, info.value.model) == ("claude", MODEL)


async def test_empty_stream(provider: AnthropicProvider, server: LoopbackServer) -> None:
    server.queue(Reply(chunks=[]))
    with pytest.raises(ProviderConnectionError, match="message_stop"):
        await collect(provider, req())


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        pytest.param("overloaded_error", ServerError, id="overloaded"),
        pytest.param("api_error", ServerError, id="api"),
        pytest.param("rate_limit_error", RateLimitError, id="rate-limit"),
        pytest.param("invalid_request_error", BadRequestError, id="invalid-request"),
        pytest.param("authentication_error", AuthenticationError, id="auth"),
        pytest.param("permission_error", PermissionDeniedError, id="permission"),
        pytest.param("not_found_error", NotFoundError, id="not-found"),
        pytest.param("timeout_error", ServerError, id="timeout"),
        pytest.param("some_future_error", ServerError, id="unknown-kind"),
    ],
)
async def test_error_event_mid_stream(
    provider: AnthropicProvider, server: LoopbackServer, kind: str, cls: type[ProviderError]
) -> None:
    events = stream_events(["a", "b"], stop=False)[:5]  # start, block start, ping, a, b
    events.append(("error", error_body(kind, f"{kind} says no")))
    events.append(("message_stop", {"type": "message_stop"}))  # never reached
    server.queue(stream_reply(events))
    received: list[str] = []
    with pytest.raises(cls) as info:
        await drain(provider, req(), received)
    exc = info.value
    assert type(exc) is cls
    assert received == ["a", "b"]
    assert (exc.status_code, exc.vendor_code) == (None, kind)
    assert (
        str(exc)
        == f"[provider 'claude', model '{MODEL}'] the stream reported {kind}: {kind} says no"
    )
    assert exc.retryable is (cls in (ServerError, RateLimitError))


async def test_error_body_with_status_200(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=error_body("overloaded_error", "Overloaded")))
    with pytest.raises(ServerError) as info:
        await provider.chat(req())
    assert (info.value.status_code, info.value.vendor_code) == (None, "overloaded_error")
    assert str(info.value) == (
        f"[provider 'claude', model '{MODEL}'] the reply reported overloaded_error: Overloaded"
    )


# --------------------------------------------------------------------------- secrets


async def test_key_echoed_by_server_is_scrubbed(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(error_reply(401, "authentication_error", f"invalid x-api-key {CANARY}"))
    with pytest.raises(AuthenticationError) as info:
        await provider.chat(req())
    assert "invalid x-api-key ***" in str(info.value)
    assert_no_canary(info.value)


async def test_key_echoed_in_error_event_is_scrubbed(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = stream_events(["a"], stop=False)[:2]
    events.append(("error", error_body("api_error", f"bad key {CANARY}")))
    server.queue(stream_reply(events))
    with pytest.raises(ServerError) as info:
        await collect(provider, req())
    assert "bad key ***" in str(info.value)
    assert_no_canary(info.value)


async def test_key_in_malformed_data_is_scrubbed(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=sse([("message_start", f"{{{CANARY}")])))
    with pytest.raises(MalformedResponseError) as info:
        await collect(provider, req())
    assert_no_canary(info.value)


def test_repr_hides_key() -> None:
    p = AnthropicProvider(api_key=CANARY, base_url="http://127.0.0.1:9")
    assert CANARY not in repr(p)
    assert "api_key=set" in repr(p)
    assert AnthropicProvider.secret_headers == frozenset({"x-api-key"})
    assert AnthropicProvider.streams_natively is True


async def test_no_key_sends_no_key_header(server: LoopbackServer) -> None:
    p = AnthropicProvider(base_url=server.url, headers={"authorization": "Bearer gateway"})
    try:
        server.queue(Reply(body=message_body()))
        await p.chat(req())
        sent = only(server)
        assert "x-api-key" not in sent.headers
        assert sent.headers["authorization"] == "Bearer gateway"
    finally:
        await p.aclose()


# --------------------------------------------------------------------------- lifecycle


async def test_closed_provider_refuses(server: LoopbackServer) -> None:
    p = AnthropicProvider(api_key=CANARY, base_url=server.url)
    await p.aclose()
    await p.aclose()  # twice is harmless
    with pytest.raises(RuntimeClosedError):
        await p.chat(req())
    with pytest.raises(RuntimeClosedError):
        await collect(p, req())
    assert server.requests == []


async def test_unnamed_provider_reports_anthropic(server: LoopbackServer) -> None:
    p = AnthropicProvider(api_key=CANARY, base_url=server.url)
    try:
        server.queue(error_reply(404, "not_found_error", "model: x"))
        with pytest.raises(NotFoundError) as info:
            await p.chat(req())
        assert info.value.provider == "anthropic"
    finally:
        await p.aclose()
