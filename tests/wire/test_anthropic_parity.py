"""Parity with the official ``anthropic`` SDK: the same call sends the same request, and the
same reply reads the same, through the SDK and through AnthropicProvider."""

from __future__ import annotations

import base64
import datetime
import enum
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.providers.anthropic_request import strict_schema
from runtime.types import (
    ChatRequest,
    ImagePart,
    Message,
    OutputSchema,
    ReasoningConfig,
    ReasoningDelta,
    ReasoningPart,
    StreamEnd,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDone,
    ToolResult,
    Usage,
)
from tests.loopback import Recorded, Reply
from tests.wire.anthropic_fakes import (
    MODEL,
    FastLoopbackServer,
    block_stream,
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


# --------------------------------------------------------------------------- tools, images,
# thinking and structured output: the same body, and the same reading of the replies

WEATHER = Tool(
    "get_weather",
    "Current weather",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
WEATHER_PARAM = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": WEATHER.schema,
}
PNG = b"\x89PNG\r\n\x1a\nfake"
PNG_B64 = base64.b64encode(PNG).decode()


class Answer(BaseModel):
    city: str
    population: int = Field(ge=0, description="People living there")


FEATURE_CALLS = [
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_01",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_02",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_02",
                            "content": "down",
                            "is_error": True,
                        },
                    ],
                },
            ],
            "max_tokens": 512,
            "tools": [WEATHER_PARAM],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        },
        ChatRequest(
            model=MODEL,
            messages=(
                Message("user", "Weather in Paris and Rome?"),
                Message(
                    "assistant",
                    [
                        TextPart("Checking."),
                        ToolCall("toolu_01", "get_weather", {"city": "Paris"}),
                        ToolCall("toolu_02", "get_weather", {"city": "Rome"}),
                    ],
                ),
                Message("tool", [ToolResult("toolu_01", "18 C")]),
                Message("tool", [ToolResult("toolu_02", "down", is_error=True)]),
            ),
            max_tokens=512,
            tools=(WEATHER,),
            tool_choice="required",
            parallel_tool_calls=False,
        ),
        id="tools",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.jpg"},
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": PNG_B64,
                            },
                        },
                    ],
                }
            ],
            "max_tokens": 100,
        },
        ChatRequest(
            model=MODEL,
            messages=(
                Message(
                    "user",
                    [
                        TextPart("Compare"),
                        ImagePart(url="https://example.com/a.jpg"),
                        ImagePart(data=PNG, media_type="image/png"),
                    ],
                ),
            ),
            max_tokens=100,
        ),
        id="images",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-1"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {
                            "type": "tool_use",
                            "id": "toolu_9",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "-3"}],
                },
            ],
            "max_tokens": 4096,
            "tools": [WEATHER_PARAM],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
        },
        ChatRequest(
            model=MODEL,
            messages=(
                Message("user", "Weather?"),
                Message(
                    "assistant",
                    [
                        ReasoningPart("Use the tool.", "sig-1", origin="anthropic"),
                        ReasoningPart(redacted="opaque", origin="anthropic"),
                        ToolCall("toolu_9", "get_weather", {"city": "Oslo"}),
                    ],
                ),
                Message("tool", [ToolResult("toolu_9", "-3")]),
            ),
            max_tokens=4096,
            tools=(WEATHER,),
            tool_choice="auto",
            reasoning=ReasoningConfig(budget_tokens=2048),
        ),
        id="thinking-round-trip",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "Oslo?"}],
            "max_tokens": 300,
            "tools": [
                {
                    "name": "answer",
                    "description": "Give the final answer as this tool's input.",
                    "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
                }
            ],
            "tool_choice": {"type": "tool", "name": "answer"},
        },
        ChatRequest(
            model=MODEL,
            messages=(Message("user", "Oslo?"),),
            max_tokens=300,
            response_format=OutputSchema(
                "answer", {"type": "object", "properties": {"x": {"type": "integer"}}}
            ),
        ),
        id="structured-through-a-forced-tool",
    ),
]


@pytest.mark.parametrize(("sdk_kwargs", "request_"), [*CALLS, *FEATURE_CALLS])
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


@pytest.mark.parametrize(("sdk_kwargs", "request_"), [*CALLS, *FEATURE_CALLS])
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
        elif isinstance(item, StreamEnd):
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
        elif isinstance(item, StreamEnd):
            end = item
    assert mine == sdk_texts
    assert end is not None
    assert "".join(mine) == "".join(b.text for b in final.content if b.type == "text")
    assert end.finish_reason == FINISH[final.stop_reason]
    assert end.usage == sdk_usage(final.usage)
    assert end.model == final.model
    theirs, mine_sent = server.requests
    assert mine_sent.json == theirs.json


async def test_same_native_structured_request_as_the_sdk_parse_helper(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any
) -> None:
    """The SDK's messages.parse(output_format=Model) and our response_format=Model on a
    model whose capabilities say native: the same output_config, schema made strict alike."""
    text = '{"city": "Oslo", "population": 700000}'
    server.queue(Reply(body=message_body(text)), Reply(body=message_body(text)))
    parsed = await sdk.messages.parse(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Oslo?"}],
        output_format=Answer,
    )
    await ours.chat(
        ChatRequest(
            model=MODEL,
            messages=(Message("user", "Oslo?"),),
            max_tokens=200,
            response_format=OutputSchema("Answer", Answer.model_json_schema(), True, Answer),
            capabilities={"structured_output": "native"},
        )
    )
    theirs, mine = server.requests
    assert_same_call(theirs, mine)
    assert mine.json["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert parsed.parsed_output == Answer(city="Oslo", population=700000)


TOOL_REPLY = message_body(
    "Both.",
    stop_reason="tool_use",
    blocks=[{"type": "thinking", "thinking": "Two cities.", "signature": "sig-2"}],
)
TOOL_REPLY["content"] += [
    {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Rome"}},
]


def sdk_calls(content: Any) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(b.id, b.name, b.input) for b in content if b.type == "tool_use")


async def test_the_sdk_reads_our_tool_call_reply_as_we_do(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any
) -> None:
    server.queue(Reply(body=TOOL_REPLY), Reply(body=TOOL_REPLY))
    message = await sdk.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    )
    response = await ours.chat(
        ChatRequest(
            model=MODEL, messages=(Message("user", "Hi"),), max_tokens=100, tools=(WEATHER,)
        )
    )
    assert response.tool_calls == sdk_calls(message.content) != ()
    assert response.finish_reason == FINISH[message.stop_reason] == "tool_calls"
    (thinking,) = [b for b in message.content if b.type == "thinking"]
    assert response.parts[0] == ReasoningPart(
        thinking.thinking, thinking.signature, None, "anthropic"
    )


TOOL_STREAM = block_stream(
    [
        ("thinking", ["Two ", "cities."], "sig-2"),
        ("text", ["Bo", "th."]),
        ("tool_use", "toolu_A", "get_weather", ["", '{"ci', 'ty": "Par', 'is"}']),
        ("tool_use", "toolu_B", "get_weather", ['{"city": "Rome"}']),
    ],
    stop_reason="tool_use",
)


async def test_the_sdk_reads_our_tool_call_stream_as_we_do(
    server: FastLoopbackServer, ours: AnthropicProvider, sdk: Any
) -> None:
    server.queue(stream_reply(TOOL_STREAM), stream_reply(TOOL_STREAM))
    async with sdk.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = await stream.get_final_message()
    done: list[ToolCall] = []
    reasoning: list[ReasoningDelta] = []
    async for event in ours.stream_chat(
        ChatRequest(
            model=MODEL, messages=(Message("user", "Hi"),), max_tokens=100, tools=(WEATHER,)
        )
    ):
        if isinstance(event, ToolCallDone):
            done.append(event.call)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event)
    assert tuple(done) == sdk_calls(final.content) != ()
    (thinking,) = [b for b in final.content if b.type == "thinking"]
    assert "".join(r.text for r in reasoning) == thinking.thinking
    assert [r.signature for r in reasoning if r.signature] == [thinking.signature]


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Place(BaseModel):
    name: str = Field(max_length=40)
    visited: datetime.date | None = None


class Trip(BaseModel):
    """A trip."""

    places: list[Place] = Field(min_length=1)
    colour: Colour = Colour.RED
    kind: Literal["work", "fun"]
    notes: list[str] = Field(default_factory=list, min_length=0, max_length=3)
    contact: str = Field(json_schema_extra={"format": "email"})
    score: float = Field(gt=0, le=10, multiple_of=0.5)
    extra: dict[str, int] = Field(default_factory=dict)


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param(Trip.model_json_schema(), id="nested-models-enum-literal-optional"),
        pytest.param(Answer.model_json_schema(), id="constraints"),
        pytest.param(
            {
                "type": "object",
                "properties": {"a": {"oneOf": [{"type": "integer"}, {"const": "x"}]}},
            },
            id="one-of",
        ),
        pytest.param(
            {"allOf": [{"type": "object", "properties": {}}], "description": "d", "default": {}},
            id="all-of",
        ),
        pytest.param({"$ref": "#/$defs/A", "$defs": {"A": {"type": "null"}}}, id="root-ref"),
    ],
)
def test_strict_schema_is_the_sdks_transform(schema: dict[str, Any]) -> None:
    assert strict_schema(schema) == anthropic.transform_schema(schema)
