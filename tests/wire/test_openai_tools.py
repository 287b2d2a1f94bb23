"""Tools, structured output, images and reasoning on the OpenAI Chat Completions protocol.

Every test runs against both ``OpenAIProvider`` (wire) and ``OpenAISDKProvider`` (the same
body and decoders, sent and read through the official SDK) on a loopback server that
answers in the shapes of the API reference and the SDK's types; what is sent is asserted
exactly, as the JSON body that arrived.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from runtime.errors import (
    CapabilityError,
    InvalidRequestError,
    MalformedResponseError,
    StructuredOutputError,
    ToolArgumentsError,
)
from runtime.providers.base import ChatProvider
from runtime.providers.openai_body import strict_ready
from runtime.providers.openai_provider import OpenAIProvider, OpenAIStream
from runtime.providers.openai_sdk_provider import OpenAISDKProvider
from runtime.types import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningConfig,
    ReasoningDelta,
    ReasoningPart,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
    normalize_response_format,
)
from tests.loopback import LoopbackServer, Reply, sse
from tests.unit.helpers import catalog, runtime_for
from tests.wire.openai_fakes import (
    CANARY,
    MODEL,
    PARALLEL,
    chunk,
    completion,
    split,
    stream_reply,
    tool_call,
    tool_call_chunks,
    tool_call_stream,
)

PROVIDERS = [
    pytest.param(OpenAIProvider, id="wire"),
    pytest.param(OpenAISDKProvider, id="sdk"),
]
CLASS_PATHS = [
    pytest.param("runtime.providers.openai_provider.OpenAIProvider", id="wire"),
    pytest.param("runtime.providers.openai_sdk_provider.OpenAISDKProvider", id="sdk"),
]

USER = (Message("user", "Weather in Paris?"),)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER = Tool("get_weather", "Current weather", WEATHER_SCHEMA)
STOCK = Tool("get_stock_price", "", {"type": "object", "properties": {"ticker": {}}})
WEATHER_WIRE = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER_SCHEMA,
    },
}
STRICT_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "sources": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"url": {"type": "string"}},
                "required": ["url"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["answer", "sources"],
    "additionalProperties": False,
}
PNG = b"\x89PNG\r\n\x1a\n-not-really"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> Iterator[LoopbackServer]:
    shared_server.reset()
    yield shared_server
    assert not shared_server._queue, "a scripted reply was not used"
    shared_server.reset()


@pytest.fixture(params=PROVIDERS)
async def provider(
    request: pytest.FixtureRequest, server: LoopbackServer
) -> AsyncIterator[ChatProvider]:
    made = request.param(api_key=CANARY, base_url=f"{server.url}/v1")
    made.provider_name = "openai"
    yield made
    await made.aclose()


async def events_of(
    provider: ChatProvider, request: ChatRequest, seen: list[StreamEvent] | None = None
) -> list[StreamEvent]:
    """A stream's events; ``seen`` (if given) receives them as they arrive, even on failure."""
    seen = [] if seen is None else seen
    async for event in provider.stream_chat(request):
        seen.append(event)
    return seen


def _request(**fields: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=fields.pop("messages", USER), **fields)


# --------------------------------------------------------------------------- what is sent

SENT = [
    pytest.param(
        _request(tools=(WEATHER,)),
        {"tools": [WEATHER_WIRE]},
        id="tools-without-choice",
    ),
    pytest.param(
        _request(tools=(WEATHER,), tool_choice="auto"),
        {"tools": [WEATHER_WIRE], "tool_choice": "auto"},
        id="choice-auto",
    ),
    pytest.param(
        _request(tools=(WEATHER,), tool_choice="required"),
        {"tools": [WEATHER_WIRE], "tool_choice": "required"},
        id="choice-required",
    ),
    pytest.param(
        _request(tools=(WEATHER,), tool_choice="none"),
        {"tools": [WEATHER_WIRE], "tool_choice": "none"},
        id="choice-none",
    ),
    pytest.param(
        _request(tools=(WEATHER, STOCK), tool_choice="get_weather", parallel_tool_calls=False),
        {
            "tools": [
                WEATHER_WIRE,
                {  # no description: the key is left out, as the SDK's types allow
                    "type": "function",
                    "function": {
                        "name": "get_stock_price",
                        "parameters": {"type": "object", "properties": {"ticker": {}}},
                    },
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        id="choice-named-and-parallel-off",
    ),
    pytest.param(
        # The API refuses tool_choice and parallel_tool_calls without tools.
        _request(tool_choice="none", parallel_tool_calls=True),
        {},
        id="choice-without-tools-not-sent",
    ),
    pytest.param(
        # o3-mini / o4-mini refuse the parameter; declared without parallel calls, false is
        # what they do anyway.
        _request(
            tools=(WEATHER,), parallel_tool_calls=False, capabilities={"parallel_tool_calls": False}
        ),
        {"tools": [WEATHER_WIRE]},
        id="parallel-off-not-sent-to-a-model-without-it",
    ),
    pytest.param(
        _request(response_format=normalize_response_format(STRICT_SCHEMA)),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": STRICT_SCHEMA, "strict": True},
            }
        },
        id="schema-strict",
    ),
    pytest.param(
        _request(response_format=normalize_response_format({**WEATHER_SCHEMA, "title": "W x"})),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "W_x",
                    "schema": {**WEATHER_SCHEMA, "title": "W x"},
                    "strict": False,  # not closed: additionalProperties is not false
                },
            }
        },
        id="schema-not-strict-ready",
    ),
    pytest.param(
        _request(
            response_format=normalize_response_format(
                {
                    "type": "json_schema",
                    "json_schema": {"name": "ans", "schema": STRICT_SCHEMA, "strict": False},
                }
            )
        ),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "ans", "schema": STRICT_SCHEMA, "strict": False},
            }
        },
        id="schema-strict-turned-off",
    ),
    pytest.param(
        _request(reasoning=ReasoningConfig("high"), max_tokens_param="max_completion_tokens"),
        {"reasoning_effort": "high"},
        id="reasoning-effort",
    ),
    pytest.param(
        _request(reasoning=ReasoningConfig("low", 2048)),
        {"reasoning_effort": "low"},
        id="reasoning-effort-and-budget",
    ),
    pytest.param(
        _request(
            params={"response_format": {"type": "json_object"}, "reasoning_effort": "low"},
            response_format=normalize_response_format(STRICT_SCHEMA),
            reasoning=ReasoningConfig("medium"),
        ),
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": STRICT_SCHEMA, "strict": True},
            },
            "reasoning_effort": "medium",
        },
        id="call-arguments-win-over-params",
    ),
]


@pytest.mark.parametrize(("request_", "added"), SENT)
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_the_body_sent_is_exact(
    provider: ChatProvider,
    server: LoopbackServer,
    request_: ChatRequest,
    added: dict[str, Any],
    stream: bool,
) -> None:
    if stream:
        server.queue(stream_reply())
        await events_of(provider, request_)
    else:
        server.queue(Reply(body=completion()))
        await provider.chat(request_)
    [got] = server.requests
    expected = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if stream:
        expected |= {"stream": True, "stream_options": {"include_usage": True}}
    assert got.json == expected | added
    assert provider.describe_request(request_, stream=stream)["json"] == got.json


CONVERSATION = (
    Message("system", "Be brief."),
    Message(
        "user",
        [
            TextPart("What is in these?"),
            ImagePart(url="https://example.com/cat.png", detail="high"),
            ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
            ImagePart(data=PNG, media_type="image/png", detail="low"),
        ],
    ),
    Message(
        "assistant",
        [
            ReasoningPart("hmm, two calls", signature="sig-from-claude", origin="anthropic"),
            TextPart("Let me look."),
            ToolCall("toolu_01", "get_weather", {"city": "Zürich", "note": 'say "hi"'}),
            ToolCall("toolu_02", "get_stock_price", {}),
        ],
    ),
    Message(
        "tool",
        [
            ToolResult("toolu_01", "18 C, sunny", name="get_weather"),
            ToolResult("toolu_02", "no such ticker", is_error=True),
        ],
    ),
    Message("assistant", [ToolCall("call_3", "get_weather", {"city": "Bern"})]),
    Message("tool", [ToolResult("call_3", '{"c": 12}')]),
    Message("assistant", [ReasoningPart("", redacted="opaque-blob", origin="anthropic")]),
    Message("user", "Thanks"),
)

CONVERSATION_WIRE = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
            },
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {
                "type": "image_url",
                "image_url": {
                    "url": "data:image/png;base64,iVBORw0KGgotbm90LXJlYWxseQ==",
                    "detail": "low",
                },
            },
        ],
    },
    {  # the reasoning from another vendor is dropped; text and calls stay
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city":"Zürich","note":"say \\"hi\\""}',
                },
            },
            {
                "id": "toolu_02",
                "type": "function",
                "function": {"name": "get_stock_price", "arguments": "{}"},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_01", "content": "18 C, sunny"},
    {"role": "tool", "tool_call_id": "toolu_02", "content": "no such ticker"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call("call_3", "get_weather", '{"city":"Bern"}')],
    },
    {"role": "tool", "tool_call_id": "call_3", "content": '{"c": 12}'},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "Thanks"},
]


async def test_a_conversation_with_images_tool_calls_results_and_foreign_reasoning(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion()))
    await provider.chat(_request(messages=CONVERSATION, tools=(WEATHER, STOCK)))
    [got] = server.requests
    assert got.json["messages"] == CONVERSATION_WIRE
    assert json.loads(got.json["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Zürich",
        "note": 'say "hi"',
    }
    assert "sig-from-claude" not in got.body.decode()
    assert "opaque-blob" not in got.body.decode()


async def test_a_budget_only_reasoning_request_is_refused_before_sending(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    request = _request(reasoning=ReasoningConfig(budget_tokens=2048))
    with pytest.raises(CapabilityError, match="effort level, not a token budget") as info:
        await provider.chat(request)
    assert info.value.capability == "reasoning"
    with pytest.raises(CapabilityError):
        await events_of(provider, request)
    assert server.requests == []


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        pytest.param(
            Message("user", [ToolCall("c", "f", {})]), "a user message cannot carry a tool_call"
        ),
        pytest.param(
            Message("system", [ImagePart(url="https://x/y.png")]),
            "a system message cannot carry a image",
        ),
        pytest.param(Message("tool", "plain"), "a tool message cannot carry a text part"),
    ],
)
def test_parts_a_role_cannot_carry_are_refused_clearly(message: Message, problem: str) -> None:
    provider = OpenAIProvider(api_key=CANARY)
    with pytest.raises(InvalidRequestError, match=rf"messages\[0\]: {problem}"):
        provider.describe_request(_request(messages=(message,)))


@pytest.mark.parametrize(
    ("schema", "ready"),
    [
        pytest.param(STRICT_SCHEMA, True, id="closed-and-required"),
        pytest.param(WEATHER_SCHEMA, False, id="open-object"),
        pytest.param(
            {**STRICT_SCHEMA, "required": ["answer"]}, False, id="a-property-not-required"
        ),
        pytest.param(
            {
                **STRICT_SCHEMA,
                "properties": {
                    "answer": {"type": "string"},
                    "sources": {"type": "array", "items": {"type": "object", "properties": {}}},
                },
            },
            False,
            id="nested-open-object",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"x": {"$ref": "#/$defs/X"}},
                "required": ["x"],
                "additionalProperties": False,
                "$defs": {"X": {"type": "object", "properties": {"y": {"type": "integer"}}}},
            },
            False,
            id="open-object-in-defs",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {
                    "x": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/X"}]},
                },
                "required": ["x"],
                "additionalProperties": False,
                "$defs": {
                    "X": {
                        "type": "object",
                        "properties": {"y": {"type": "integer"}},
                        "required": ["y"],
                        "additionalProperties": False,
                    }
                },
            },
            True,
            id="closed-defs-and-anyof",
        ),
        pytest.param(
            {"anyOf": [{"type": "object", "properties": {}, "additionalProperties": False}]},
            False,
            id="root-not-an-object",
        ),
    ],
)
def test_strict_mode_only_for_schemas_that_qualify(schema: dict[str, Any], ready: bool) -> None:
    assert strict_ready(schema) is ready


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str
    confidence: float


class Loose(BaseModel):
    answer: str
    confidence: float = 0.5


@pytest.mark.parametrize(
    ("model", "strict"),
    [pytest.param(Closed, True, id="forbid-extra"), pytest.param(Loose, False, id="defaults")],
)
def test_a_pydantic_model_is_strict_when_it_forbids_extras_and_requires_all(
    model: type[BaseModel], strict: bool
) -> None:
    request = _request(response_format=normalize_response_format(model))
    sent = OpenAIProvider(api_key=CANARY).describe_request(request)["json"]["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {
            "name": model.__name__,
            "schema": model.model_json_schema(),
            "strict": strict,
        },
    }


# --------------------------------------------------------------------------- replies


async def test_a_reply_with_parallel_tool_calls(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    calls = [tool_call(*call) for call in PARALLEL]
    server.queue(Reply(body=completion(None, finish_reason="tool_calls", tool_calls=calls)))
    response = await provider.chat(_request(tools=(WEATHER, STOCK)))
    assert response.tool_calls == (
        ToolCall(PARALLEL[0][0], "get_weather", {"city": "Edinburgh", "units": "c"}),
        ToolCall(PARALLEL[1][0], "get_stock_price", {"ticker": "AAPL"}),
    )
    assert (response.text, response.finish_reason) == ("", "tool_calls")
    assert response.message.tool_calls == response.tool_calls


async def test_text_and_a_tool_call_stay_in_order(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    calls = [tool_call("call_1", "get_weather", '{"city":"Paris"}')]
    # Some compatible servers say "stop" when the model called a tool.
    server.queue(Reply(body=completion("Checking.", finish_reason="stop", tool_calls=calls)))
    response = await provider.chat(_request(tools=(WEATHER,)))
    assert response.parts == (
        TextPart("Checking."),
        ToolCall("call_1", "get_weather", {"city": "Paris"}),
    )
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        pytest.param('{"city": "Par', "JSONDecodeError", id="cut-short"),
        pytest.param('["Paris"]', "a JSON list", id="not-an-object"),
        pytest.param("Paris", "JSONDecodeError", id="not-json"),
    ],
)
async def test_arguments_that_are_not_a_json_object_raise_with_the_raw_text(
    provider: ChatProvider, server: LoopbackServer, arguments: str, why: str
) -> None:
    calls = [tool_call("call_1", "get_weather", arguments)]
    server.queue(Reply(body=completion(None, finish_reason="tool_calls", tool_calls=calls)))
    with pytest.raises(ToolArgumentsError, match=why) as info:
        await provider.chat(_request(tools=(WEATHER,)))
    assert (info.value.raw_arguments, info.value.tool_name) == (arguments, "get_weather")
    assert (info.value.provider, info.value.model) == ("openai", MODEL)
    assert isinstance(info.value, MalformedResponseError)

    fragments = split(arguments, 3)
    server.queue(tool_call_stream((("call_1", "get_weather", fragments),)))
    seen: list[StreamEvent] = []
    with pytest.raises(ToolArgumentsError, match=why) as streamed:
        await events_of(provider, _request(tools=(WEATHER,)), seen)
    assert streamed.value.raw_arguments == arguments
    # Every fragment reached the caller before the call was found broken.
    assert "".join(e.arguments for e in seen if isinstance(e, ToolCallDelta)) == arguments


async def test_a_tool_call_of_an_unknown_type_is_malformed(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    custom = {"id": "call_1", "type": "custom", "custom": {"name": "x", "input": "y"}}
    server.queue(Reply(body=completion(None, finish_reason="tool_calls", tool_calls=[custom])))
    with pytest.raises(MalformedResponseError, match="a tool call of type 'custom'"):
        await provider.chat(_request(tools=(WEATHER,)))


async def test_reasoning_text_of_compatible_servers_is_read(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion("42", extra={"reasoning_content": "Think: 6*7."})))
    response = await provider.chat(_request())
    assert (response.reasoning, response.text) == ("Think: 6*7.", "42")
    assert response.parts[0] == ReasoningPart("Think: 6*7.", origin="openai")
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk(extra={"reasoning_content": "Think: "})),
                    (None, chunk(extra={"reasoning": "6*7."})),
                    (None, chunk("42", finish_reason="stop")),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    events = await events_of(provider, _request())
    assert events[:3] == [ReasoningDelta("Think: "), ReasoningDelta("6*7."), TextDelta("42")]


# --------------------------------------------------------------------------- streams

ARGS_0 = '{"city": "Z\\u00fcrich \\"old town\\"", "units": "c", "tags": ["a", {"b": []}]}'
ARGS_1 = '{"ticker": "€AAPL"}'


@pytest.mark.parametrize("every", [1, 2, 5, 7, 1000], ids=lambda n: f"every-{n}")
async def test_a_stream_of_parallel_calls_split_anywhere(
    provider: ChatProvider, server: LoopbackServer, every: int
) -> None:
    calls = (
        ("call_a", "get_weather", split(ARGS_0, every)),
        ("call_b", "get_stock_price", split(ARGS_1, every)),
    )
    server.queue(tool_call_stream(calls))
    events = await events_of(provider, _request(tools=(WEATHER, STOCK)))
    done_0 = ToolCallDone(0, ToolCall("call_a", "get_weather", json.loads(ARGS_0)))
    done_1 = ToolCallDone(1, ToolCall("call_b", "get_stock_price", json.loads(ARGS_1)))
    expected: list[StreamEvent] = [ToolCallDelta(0, "call_a", "get_weather", "")]
    expected += [ToolCallDelta(0, None, None, piece) for piece in split(ARGS_0, every)]
    # Call 0 is complete as soon as call 1 starts; call 1 at the finish reason.
    expected += [done_0, ToolCallDelta(1, "call_b", "get_stock_price", "")]
    expected += [ToolCallDelta(1, None, None, piece) for piece in split(ARGS_1, every)]
    expected += [done_1]
    assert events[:-1] == expected
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "tool_calls"


def test_each_chunk_yields_its_events_as_it_arrives() -> None:
    """The decoder, chunk by chunk: fragments are never held back until the end."""
    decoder = OpenAIStream(OpenAIProvider(api_key=CANARY), _request(tools=(WEATHER, STOCK)))
    chunks = tool_call_chunks(
        (("call_a", "get_weather", ['{"city"', ': "Oslo"}']), ("call_b", "get_stock_price", []))
    )
    per_chunk = [decoder.feed_chunk(c) for c in chunks]
    assert per_chunk == [
        [],
        [ToolCallDelta(0, "call_a", "get_weather", "")],
        [ToolCallDelta(0, None, None, '{"city"')],
        [ToolCallDelta(0, None, None, ': "Oslo"}')],
        [
            ToolCallDone(0, ToolCall("call_a", "get_weather", {"city": "Oslo"})),
            ToolCallDelta(1, "call_b", "get_stock_price", ""),
        ],
        [ToolCallDone(1, ToolCall("call_b", "get_stock_price", {}))],
    ]


async def test_servers_that_omit_index_or_id(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    """Some compatible servers send no ``index`` (a new id starts the next call), or no id."""
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk(tool_calls=[tool_call("x1", "get_weather", '{"city":')])),
                    (None, chunk(tool_calls=[{"function": {"arguments": '"Rome"}'}}])),
                    (None, chunk(tool_calls=[tool_call("x2", "get_weather", "{}")])),
                    (
                        None,
                        chunk(
                            tool_calls=[
                                {"index": 2, "function": {"name": "get_stock_price"}},
                            ],
                            finish_reason="tool_calls",
                        ),
                    ),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    events = await events_of(provider, _request(tools=(WEATHER, STOCK)))
    assert [e for e in events if isinstance(e, ToolCallDone)] == [
        ToolCallDone(0, ToolCall("x1", "get_weather", {"city": "Rome"})),
        ToolCallDone(1, ToolCall("x2", "get_weather", {})),
        ToolCallDone(2, ToolCall("call_2", "get_stock_price", {})),
    ]


async def test_a_call_that_continues_after_it_was_complete_is_malformed(
    provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk(tool_calls=[{**tool_call("a", "get_weather", "{}"), "index": 0}])),
                    (None, chunk(tool_calls=[{**tool_call("b", "get_weather", "{}"), "index": 1}])),
                    (None, chunk(tool_calls=[{"index": 0, "function": {"arguments": " "}}])),
                    (None, chunk(finish_reason="tool_calls")),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    with pytest.raises(MalformedResponseError, match="tool call 0 got more arguments after"):
        await events_of(provider, _request(tools=(WEATHER,)))


# --------------------------------------------------------------------------- through the runtime


def _runtime(server: LoopbackServer, class_path: str) -> Any:
    return runtime_for(
        catalog(
            {"m": {"provider": "o", "provider_model": MODEL, "retry": {"max_attempts": 1}}},
            {"o": {"class": class_path, "base_url": f"{server.url}/v1"}},
        )
    )


@pytest.mark.parametrize("class_path", CLASS_PATHS)
async def test_structured_output_through_generate(server: LoopbackServer, class_path: str) -> None:
    rt = _runtime(server, class_path)
    try:
        server.queue(Reply(body=completion('{"answer": "Paris", "confidence": 0.9}')))
        result = await rt.generate(model="m", prompt="Capital?", response_format=Closed)
        assert result.parsed == Closed(answer="Paris", confidence=0.9)
        sent = server.requests[-1].json["response_format"]
        assert sent["json_schema"]["strict"] is True

        server.queue(Reply(body=completion('{"answer": "Paris"}')))
        with pytest.raises(StructuredOutputError, match="confidence") as info:
            await rt.generate(model="m", prompt="Capital?", response_format=Closed)
        assert info.value.raw_text == '{"answer": "Paris"}'

        server.queue(stream_reply(texts=('{"answer": "Ro', 'me", "confidence": 1}')))
        stream = rt.stream(model="m", prompt="Capital?", response_format=STRICT_SCHEMA)
        with pytest.raises(StructuredOutputError, match="sources"):
            async for _ in stream:
                pass
    finally:
        await rt.aclose()


@pytest.mark.parametrize("class_path", CLASS_PATHS)
async def test_a_tool_turn_continues_through_the_runtime(
    server: LoopbackServer, class_path: str
) -> None:
    rt = _runtime(server, class_path)
    try:
        calls = (("call_a", "get_weather", split('{"city": "Paris"}', 4)),)
        server.queue(tool_call_stream(calls))
        kinds = []
        stream = rt.stream_events(
            model="m",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_WIRE],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        async for event in stream:
            kinds.append(type(event).__name__)
        assert kinds == ["ToolCallDelta"] * 6 + ["ToolCallDone", "StreamEnd"]
        result = stream.completion
        assert result is not None
        assert result.finish_reason == "tool_calls"
        assert result.tool_calls == (ToolCall("call_a", "get_weather", {"city": "Paris"}),)
        assert server.requests[-1].json["tool_choice"] == {
            "type": "function",
            "function": {"name": "get_weather"},
        }

        server.queue(Reply(body=completion("18 C and sunny.")))
        answer = await rt.generate(
            model="m",
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                result.message,
                {"role": "tool", "tool_call_id": "call_a", "content": "18 C, sunny"},
            ],
            tools=[WEATHER],
        )
        assert answer.text == "18 C and sunny."
        assert server.requests[-1].json["messages"][1:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("call_a", "get_weather", '{"city":"Paris"}')],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18 C, sunny"},
        ]
    finally:
        await rt.aclose()
