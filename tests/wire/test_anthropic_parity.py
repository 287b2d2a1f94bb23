"""Parity with the official ``anthropic`` SDK: the same call sends the same request, and the
same reply reads the same, through the SDK and through AnthropicProvider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta, Usage
from tests.loopback import Recorded, Reply
from tests.wire.anthropic_fakes import (
    MODEL,
    FastLoopbackServer,
    message_body,
    stream_events,
    stream_reply,
)

anthropic = pytest.importorskip("anthropic")

CANARY = "sk-ant-canary-123"

#: Headers both clients must send alike (the SDK adds its own telemetry ones).
RELEVANT_HEADERS = ("anthropic-version", "content-type")

#: How our finish reasons read Anthropic's stop_reason (the provider's documented table).
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "unknown",
}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK reads these; a developer's shell must not change what it sends.
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FastLoopbackServer]:
    with FastLoopbackServer() as srv:
        yield srv


@pytest.fixture
async def sdk(server: FastLoopbackServer) -> AsyncIterator[Any]:
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key=CANARY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def ours(server: FastLoopbackServer, sdk: Any) -> AsyncIterator[AnthropicProvider]:
    # Why the SDK's version: newer SDKs pin a newer anthropic-version than our default
    # (2023-06-01); with the same version configured, the headers must agree.
    version = sdk.default_headers["anthropic-version"]
    provider = AnthropicProvider(api_key=CANARY, base_url=server.url, anthropic_version=version)
    yield provider
    await provider.aclose()


def sent_key(recorded: Recorded) -> str | None:
    """The API key a request carries: ``x-api-key``, or ``Authorization: Bearer`` (newer SDKs)."""
    if "x-api-key" in recorded.headers:
        return recorded.headers["x-api-key"]
    scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def assert_same_call(theirs: Recorded, mine: Recorded) -> None:
    assert (mine.method, mine.path, mine.query) == (theirs.method, theirs.path, theirs.query)
    assert mine.path == "/v1/messages"
    for name in RELEVANT_HEADERS:
        assert mine.headers.get(name) == theirs.headers.get(name), name
    assert sent_key(theirs) == sent_key(mine) == CANARY
    assert mine.headers["x-api-key"] == CANARY
    assert mine.json == theirs.json


CALLS = [
    pytest.param(
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4096},
        ChatRequest(model=MODEL, messages=(Message("user", "Hi"),), prompt="Hi"),
        id="plain-prompt",
    ),
    pytest.param(
        {
            "system": "Be terse.\n\nAnswer in French.",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 64,
            # Newer SDKs dropped temperature/top_p/top_k from create() (API 2026-10-21
            # removed them); extra_body still sends them, as API 2023-06-01 takes them.
            "extra_body": {"temperature": 0.2},
        },
        ChatRequest(
            model=MODEL,
            messages=(
                Message("system", "Be terse."),
                Message("system", "Answer in French."),
                Message("user", "Hi"),
            ),
            max_tokens=64,
            temperature=0.2,
        ),
        id="with-system",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Again"},
            ],
            "max_tokens": 10,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "extra_body": {"top_p": 0.9, "top_k": 5},
        },
        ChatRequest(
            model=MODEL,
            messages=(
                Message("user", "Hi"),
                Message("assistant", "Hello."),
                Message("user", "Again"),
            ),
            max_tokens=10,
            params={
                "top_p": 0.9,
                "top_k": 5,
                "stop_sequences": ["END"],
                "metadata": {"user_id": "u-1"},
            },
        ),
        id="multi-turn-with-params",
    ),
]


@pytest.mark.parametrize(("sdk_kwargs", "request_"), CALLS)
async def test_same_request(
    server: FastLoopbackServer,
    ours: AnthropicProvider,
    sdk: Any,
    sdk_kwargs: dict[str, Any],
    request_: ChatRequest,
) -> None:
    server.queue(Reply(body=message_body()), Reply(body=message_body()))
    await sdk.messages.create(model=MODEL, **sdk_kwargs)
    await ours.chat(request_)
    theirs, mine = server.requests
    assert_same_call(theirs, mine)


@pytest.mark.parametrize(("sdk_kwargs", "request_"), CALLS)
async def test_same_stream_request(
    server: FastLoopbackServer,
    ours: AnthropicProvider,
    sdk: Any,
    sdk_kwargs: dict[str, Any],
    request_: ChatRequest,
) -> None:
    server.queue(stream_reply(), stream_reply())
    stream = await sdk.messages.create(model=MODEL, stream=True, **sdk_kwargs)
    async for _ in stream:
        pass
    async for _ in ours.stream_chat(request_):
        pass
    theirs, mine = server.requests
    assert_same_call(theirs, mine)
    assert mine.json["stream"] is True


REPLIES = [
    pytest.param(message_body("Hello!"), id="plain"),
    pytest.param(
        message_body(
            ["Part one. ", "Part two."],
            stop_reason="max_tokens",
            blocks=[{"type": "thinking", "thinking": "hm", "signature": "s"}],
            usage={
                "input_tokens": 10,
                "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 30,
                "output_tokens": 40,
            },
        ),
        id="thinking-cache-max-tokens",
    ),
    pytest.param(message_body("I can't help.", stop_reason="refusal"), id="refusal"),
    pytest.param(message_body("Stop", stop_reason="stop_sequence"), id="stop-sequence"),
]


def sdk_usage(usage: Any) -> Usage:
    """Our reading of the SDK's parsed usage (the arithmetic the provider documents)."""
    creation = usage.cache_creation_input_tokens
    read = usage.cache_read_input_tokens
    return Usage(
        prompt_tokens=usage.input_tokens + (creation or 0) + (read or 0),
        completion_tokens=usage.output_tokens,
        cached_tokens=read,
        cache_write_tokens=creation,
    )


@pytest.mark.parametrize("body", REPLIES)
async def test_same_reading(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any, body: dict[str, Any]
) -> None:
    server.queue(Reply(body=body), Reply(body=body))
    message = await sdk.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    response = await ours.chat(
        ChatRequest(model=MODEL, messages=(Message("user", "Hi"),), max_tokens=100)
    )
    sdk_text = "".join(block.text for block in message.content if block.type == "text")
    assert response.text == sdk_text
    assert response.finish_reason == FINISH[message.stop_reason]
    assert response.usage == sdk_usage(message.usage)
    assert response.model == message.model


STREAMS = [
    pytest.param(stream_events(["Hel", "lo", "!"]), id="plain"),
    pytest.param(
        stream_events(
            ["One", " two"],
            thinking=["let me think"],
            stop_reason="max_tokens",
            input_usage={"cache_read_input_tokens": 50, "cache_creation_input_tokens": 7},
            output_tokens=33,
        ),
        id="thinking-cache-max-tokens",
    ),
]


@pytest.mark.parametrize("events", STREAMS)
async def test_same_stream_reading_raw_events(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any, events: list[Any]
) -> None:
    server.queue(stream_reply(events), stream_reply(events))
    sdk_texts: list[str] = []
    stop_reason = None
    start_usage: Any = None
    output_tokens = None
    stream = await sdk.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    async for event in stream:
        if event.type == "message_start":
            start_usage = event.message.usage
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            sdk_texts.append(event.delta.text)
        elif event.type == "message_delta":
            stop_reason = event.delta.stop_reason
            output_tokens = event.usage.output_tokens
    mine: list[str] = []
    ends: list[StreamEnd] = []
    async for item in ours.stream_chat(
        ChatRequest(model=MODEL, messages=(Message("user", "Hi"),), max_tokens=100)
    ):
        if isinstance(item, TextDelta):
            mine.append(item.text)
        else:
            ends.append(item)
    assert mine == sdk_texts
    (end,) = ends
    assert stop_reason is not None
    assert end.finish_reason == FINISH[stop_reason]
    expected = sdk_usage(start_usage)
    assert end.usage == Usage(
        expected.prompt_tokens,
        output_tokens,
        cached_tokens=expected.cached_tokens,
        cache_write_tokens=expected.cache_write_tokens,
    )


@pytest.mark.parametrize("events", STREAMS)
async def test_same_stream_reading_helper(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any, events: list[Any]
) -> None:
    server.queue(stream_reply(events), stream_reply(events))
    async with sdk.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        sdk_texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    mine: list[str] = []
    end: StreamEnd | None = None
    async for item in ours.stream_chat(
        ChatRequest(model=MODEL, messages=(Message("user", "Hi"),), max_tokens=100)
    ):
        if isinstance(item, TextDelta):
            mine.append(item.text)
        else:
            end = item
    assert mine == sdk_texts
    assert end is not None
    assert "".join(mine) == "".join(b.text for b in final.content if b.type == "text")
    assert end.finish_reason == FINISH[final.stop_reason]
    assert end.usage == sdk_usage(final.usage)
    assert end.model == final.model
    theirs, mine_sent = server.requests
    assert mine_sent.json == theirs.json
