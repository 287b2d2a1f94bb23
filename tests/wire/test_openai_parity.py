"""Parity with the official openai SDK: the same call through it and through our providers.

Each case is sent by ``openai.AsyncOpenAI`` (the reference), by ``OpenAIProvider`` and by
``OpenAISDKProvider`` to the same loopback server; what arrived (method, path, auth and
content type, JSON body) must be equal, and each must read the server's reply the same way
(text, finish reason, usage). Azure is compared with ``openai.AsyncAzureOpenAI``.

For tools, structured output and images the SDK is given the call in its own shapes (as a
user of the SDK writes it) and we are given the same call in ours; the bodies must be
equal. The SDK also reads our fake server's tool-call replies and streams (through its own
stream accumulator) into the same calls we return.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ConfigDict

from runtime.providers.azure_provider import AzureOpenAIProvider
from runtime.providers.base import ChatProvider
from runtime.providers.openai_provider import OpenAIProvider, OpenAIStream
from runtime.providers.openai_sdk_provider import OpenAISDKProvider
from runtime.types import (
    ChatRequest,
    ImagePart,
    Message,
    OutputSchema,
    ReasoningConfig,
    StreamEnd,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
    Usage,
    normalize_response_format,
)
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.wire.openai_fakes import (
    CANARY,
    MODEL,
    PARALLEL,
    completion,
    split,
    stream_reply,
    tool_call,
    tool_call_chunks,
    tool_call_stream,
)


@dataclass(frozen=True)
class Case:
    """One call, as the SDK is asked for it and as our runtime asks a provider for it."""

    sdk_kwargs: dict[str, Any]
    request: ChatRequest
    stream: bool = False


SYSTEM_CHAT = (
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "Again"),
)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"]}},
    "required": ["city"],
}
TOOLS = (
    Tool("get_weather", "Current weather in a city", WEATHER_SCHEMA),
    Tool("get_stock_price", "", {"type": "object", "properties": {"ticker": {"type": "string"}}}),
)
SDK_TOOLS = [  # the same tools as a user of the openai SDK writes them
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_stock_price",
            "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}},
        },
    },
]
TOOL_TURN = (
    Message("user", "Weather in Paris, and AAPL?"),
    Message(
        "assistant",
        [
            ToolCall("call_1", "get_weather", {"city": "Paris"}),
            ToolCall("call_2", "get_stock_price", {"ticker": "AAPL"}),
        ],
    ),
    Message("tool", [ToolResult("call_1", "18 C"), ToolResult("call_2", "231.5")]),
)
SDK_TOOL_TURN = [
    {"role": "user", "content": "Weather in Paris, and AAPL?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            tool_call("call_1", "get_weather", '{"city":"Paris"}'),
            tool_call("call_2", "get_stock_price", '{"ticker":"AAPL"}'),
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "231.5"},
]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
PNG = b"\x89PNG\r\n\x1a\n-pixels"
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()

CASES = [
    pytest.param(
        Case(
            {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]},
            ChatRequest(model=MODEL, messages=(Message("user", "Say hello"),)),
        ),
        id="plain",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [m.to_dict() for m in SYSTEM_CHAT],
                "temperature": 0.2,
                "max_tokens": 50,
            },
            ChatRequest(model=MODEL, messages=SYSTEM_CHAT, temperature=0.2, max_tokens=50),
        ),
        id="chat",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Stream"}],
                "temperature": 0.0,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            ChatRequest(model=MODEL, messages=(Message("user", "Stream"),), temperature=0.0),
            stream=True,
        ),
        id="stream-include-usage",
    ),
    pytest.param(
        Case(
            {
                "model": "o4-mini",
                "messages": [{"role": "user", "content": "Think"}],
                "max_completion_tokens": 300,
                "reasoning_effort": "low",
            },
            ChatRequest(
                model="o4-mini",
                messages=(Message("user", "Think"),),
                max_tokens=300,
                max_tokens_param="max_completion_tokens",
                params={"reasoning_effort": "low"},
            ),
        ),
        id="max-completion-tokens",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "top_p": 0.9,
                "seed": 7,
                "stop": ["\n"],
                "extra_body": {"top_k": 40},  # a vendor extension the SDK does not know
            },
            ChatRequest(
                model=MODEL,
                messages=(Message("user", "x"),),
                params={"top_p": 0.9, "seed": 7, "stop": ["\n"], "top_k": 40},
            ),
        ),
        id="params-and-extension",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": SDK_TOOL_TURN,
                "tools": SDK_TOOLS,
                "tool_choice": "required",
                "parallel_tool_calls": True,
            },
            ChatRequest(
                model=MODEL,
                messages=TOOL_TURN,
                tools=TOOLS,
                tool_choice="required",
                parallel_tool_calls=True,
            ),
        ),
        id="tools",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Weather?"}],
                "tools": SDK_TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            ChatRequest(
                model=MODEL,
                messages=(Message("user", "Weather?"),),
                tools=TOOLS,
                tool_choice="get_weather",
                parallel_tool_calls=False,
            ),
            stream=True,
        ),
        id="tools-named-choice-stream",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Answer as JSON"}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True},
                },
            },
            ChatRequest(
                model=MODEL,
                messages=(Message("user", "Answer as JSON"),),
                response_format=OutputSchema("answer", ANSWER_SCHEMA),
            ),
        ),
        id="structured-output",
    ),
    pytest.param(
        Case(
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Compare these"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                            },
                            {"type": "image_url", "image_url": {"url": PNG_URL}},
                        ],
                    }
                ],
            },
            ChatRequest(
                model=MODEL,
                messages=(
                    Message(
                        "user",
                        [
                            TextPart("Compare these"),
                            ImagePart(url="https://example.com/a.jpg", detail="low"),
                            ImagePart(data=PNG, media_type="image/png"),
                        ],
                    ),
                ),
            ),
        ),
        id="images",
    ),
    pytest.param(
        Case(
            {
                "model": "o4-mini",
                "messages": [{"role": "user", "content": "Think"}],
                "reasoning_effort": "high",
            },
            ChatRequest(
                model="o4-mini",
                messages=(Message("user", "Think"),),
                reasoning=ReasoningConfig("high"),
            ),
        ),
        id="reasoning-effort",
    ),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@dataclass
class Outcome:
    """What one client sent and what it read back."""

    sent: Recorded
    text: str
    finish_reason: str
    usage: Usage


def _usage_from_sdk(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
        prompt_details.cached_tokens if prompt_details else None,
        completion_details.reasoning_tokens if completion_details else None,
    )


def _reply(case: Case) -> Reply:
    if case.stream:
        return stream_reply(texts=("Hel", "lo"), finish_reason="length")
    return Reply(body=completion("Hello there.", finish_reason="length"))


async def _via_official_sdk(
    server: LoopbackServer, case: Case, client: openai.AsyncOpenAI
) -> Outcome:
    server.requests.clear()
    server.queue(_reply(case))
    try:
        if case.stream:
            stream = await client.chat.completions.create(**case.sdk_kwargs)
            texts, finish, usage = [], "unknown", None
            async for chunk in stream:
                for choice in chunk.choices:
                    texts.append(choice.delta.content or "")
                    finish = choice.finish_reason or finish
                usage = chunk.usage or usage
            text = "".join(texts)
        else:
            response = await client.chat.completions.create(**case.sdk_kwargs)
            text = response.choices[0].message.content or ""
            finish = response.choices[0].finish_reason
            usage = response.usage
    finally:
        await client.close()
    [sent] = server.requests
    return Outcome(sent, text, finish, _usage_from_sdk(usage))


async def _via_provider(server: LoopbackServer, case: Case, provider: ChatProvider) -> Outcome:
    server.requests.clear()
    server.queue(_reply(case))
    try:
        if case.stream:
            events = [e async for e in provider.stream_chat(case.request)]
            end = events[-1]
            assert isinstance(end, StreamEnd)
            text = "".join(e.text for e in events if isinstance(e, TextDelta))
            finish, usage = end.finish_reason, end.usage
        else:
            response = await provider.chat(case.request)
            text, finish, usage = response.text, response.finish_reason, response.usage
    finally:
        await provider.aclose()
    [sent] = server.requests
    return Outcome(sent, text, finish, usage)


def _assert_same_wire(ours: Recorded, reference: Recorded) -> None:
    assert ours.method == reference.method == "POST"
    assert ours.path == reference.path
    assert ours.query == reference.query
    for name in ("authorization", "api-key", "content-type"):
        assert ours.headers.get(name) == reference.headers.get(name), name
    assert ours.json == reference.json


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "ours_cls",
    [pytest.param(OpenAIProvider, id="wire"), pytest.param(OpenAISDKProvider, id="sdk-provider")],
)
async def test_openai_parity(
    server: LoopbackServer, case: Case, ours_cls: type[ChatProvider]
) -> None:
    base_url = f"{server.url}/v1"
    reference = await _via_official_sdk(
        server, case, openai.AsyncOpenAI(base_url=base_url, api_key=CANARY, max_retries=0)
    )
    ours = await _via_provider(server, case, ours_cls(api_key=CANARY, base_url=base_url))
    assert reference.sent.path == "/v1/chat/completions"
    assert reference.sent.headers["authorization"] == f"Bearer {CANARY}"
    _assert_same_wire(ours.sent, reference.sent)
    assert (ours.text, ours.finish_reason, ours.usage) == (
        reference.text,
        reference.finish_reason,
        reference.usage,
    )
    assert ours.text == ("Hello" if case.stream else "Hello there.")
    assert ours.finish_reason == "length"
    assert ours.usage.cached_tokens == 4
    assert ours.usage.reasoning_tokens == 2


async def test_sdk_provider_and_wire_provider_send_the_same_request(
    server: LoopbackServer,
) -> None:
    request = ChatRequest(
        model=MODEL,
        messages=SYSTEM_CHAT,
        temperature=0.4,
        max_tokens=10,
        max_tokens_param="max_completion_tokens",
        params={"top_p": 0.5, "user": "u-1", "vendor_flag": True},
    )
    sent = []
    for cls in (OpenAIProvider, OpenAISDKProvider):
        case = Case({}, request)
        provider = cls(
            api_key=CANARY,
            base_url=f"{server.url}/v1",
            organization="org-1",
            project="proj-1",
            headers={"X-Trace": "t"},
        )
        sent.append((await _via_provider(server, case, provider)).sent)
        # describe_request tells the truth about what was sent.
        described = provider.describe_request(request)
        assert described["json"] == sent[-1].json
        assert described["url"] == f"{server.url}/v1/chat/completions"
    wire, sdk = sent
    _assert_same_wire(sdk, wire)
    for name in ("openai-organization", "openai-project", "x-trace"):
        assert sdk.headers[name] == wire.headers[name], name


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[5]])
async def test_azure_parity(server: LoopbackServer, case: Case) -> None:
    version = "2024-10-21"
    reference = await _via_official_sdk(
        server,
        case,
        openai.AsyncAzureOpenAI(
            azure_endpoint=server.url, api_version=version, api_key=CANARY, max_retries=0
        ),
    )
    provider = AzureOpenAIProvider(api_key=CANARY, base_url=server.url, api_version=version)
    ours = await _via_provider(server, case, provider)
    assert reference.sent.path == f"/openai/deployments/{case.request.model}/chat/completions"
    assert reference.sent.query == {"api-version": version}
    assert reference.sent.headers["api-key"] == CANARY
    _assert_same_wire(ours.sent, reference.sent)
    assert (ours.text, ours.finish_reason, ours.usage) == (
        reference.text,
        reference.finish_reason,
        reference.usage,
    )


# --------------------------------------------------------------------------- tool-call replies


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class Cited(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str
    sources: list[Source]


async def test_structured_output_body_equals_the_sdk_parse_body(server: LoopbackServer) -> None:
    """``response_format=Model`` sends what the SDK's ``parse()`` sends, for a model that
    qualifies for strict mode (extra fields forbidden, every field required)."""
    base_url = f"{server.url}/v1"
    text = '{"answer": "Paris", "sources": [{"url": "https://example.com"}]}'
    client = openai.AsyncOpenAI(base_url=base_url, api_key=CANARY, max_retries=0)
    server.requests.clear()
    server.queue(Reply(body=completion(text)))
    try:
        parsed = await client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "Cite"}], response_format=Cited
        )
    finally:
        await client.close()
    [reference] = server.requests
    request = ChatRequest(
        model=MODEL,
        messages=(Message("user", "Cite"),),
        response_format=normalize_response_format(Cited),
    )
    expected = reference.json
    assert expected.pop("stream") is False  # parse() spells out the default; we leave it out
    for cls in (OpenAIProvider, OpenAISDKProvider):
        ours = await _via_provider(
            server, Case({}, request), cls(api_key=CANARY, base_url=base_url)
        )
        assert ours.sent.path == reference.path
        assert ours.sent.json == expected
    assert expected["response_format"]["json_schema"]["strict"] is True
    assert parsed.choices[0].message.parsed == Cited.model_validate_json(text)


def _sdk_calls(message: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]


def _our_calls(calls: tuple[ToolCall, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id, c.name, dict(c.arguments)) for c in calls]


@pytest.mark.parametrize(
    "ours_cls",
    [pytest.param(OpenAIProvider, id="wire"), pytest.param(OpenAISDKProvider, id="sdk-provider")],
)
async def test_the_sdk_reads_our_tool_call_reply_as_we_do(
    server: LoopbackServer, ours_cls: type[ChatProvider]
) -> None:
    base_url = f"{server.url}/v1"
    body = completion(
        None, finish_reason="tool_calls", tool_calls=[tool_call(*call) for call in PARALLEL]
    )
    client = openai.AsyncOpenAI(base_url=base_url, api_key=CANARY, max_retries=0)
    server.queue(Reply(body=body))
    try:
        reference = await client.chat.completions.create(
            model=MODEL, messages=SDK_TOOL_TURN[:1], tools=SDK_TOOLS
        )
    finally:
        await client.close()
    provider = ours_cls(api_key=CANARY, base_url=base_url)
    server.queue(Reply(body=body))
    try:
        ours = await provider.chat(ChatRequest(model=MODEL, messages=TOOL_TURN[:1], tools=TOOLS))
    finally:
        await provider.aclose()
    choice = reference.choices[0]
    assert _our_calls(ours.tool_calls) == _sdk_calls(choice.message)
    assert len(ours.tool_calls) == 2
    assert ours.finish_reason == choice.finish_reason == "tool_calls"


STREAMED_CALLS = (
    ("call_a", "get_weather", split('{"city": "Z\\u00fcrich", "units": "c"}', 3)),
    ("call_b", "get_stock_price", split('{"ticker": "AAPL"}', 1)),
)


@pytest.mark.parametrize(
    "ours_cls",
    [pytest.param(OpenAIProvider, id="wire"), pytest.param(OpenAISDKProvider, id="sdk-provider")],
)
async def test_the_sdk_stream_accumulator_reads_our_tool_call_stream_as_we_do(
    server: LoopbackServer, ours_cls: type[ChatProvider]
) -> None:
    base_url = f"{server.url}/v1"
    client = openai.AsyncOpenAI(base_url=base_url, api_key=CANARY, max_retries=0)
    server.queue(tool_call_stream(STREAMED_CALLS))
    sdk_fragments, sdk_done = [], []
    try:
        async with client.chat.completions.stream(
            model=MODEL, messages=SDK_TOOL_TURN[:1], tools=SDK_TOOLS
        ) as stream:
            async for event in stream:
                if event.type == "tool_calls.function.arguments.delta":
                    sdk_fragments.append((event.index, event.arguments_delta))
                elif event.type == "tool_calls.function.arguments.done":
                    sdk_done.append((event.index, event.name, json.loads(event.arguments)))
            final = await stream.get_final_completion()
    finally:
        await client.close()
    provider = ours_cls(api_key=CANARY, base_url=base_url)
    server.queue(tool_call_stream(STREAMED_CALLS))
    request = ChatRequest(model=MODEL, messages=TOOL_TURN[:1], tools=TOOLS)
    try:
        events = [e async for e in provider.stream_chat(request)]
    finally:
        await provider.aclose()
    fragments = [(e.index, e.arguments) for e in events if isinstance(e, ToolCallDelta)]
    done = [
        (e.index, e.call.name, dict(e.call.arguments))
        for e in events
        if isinstance(e, ToolCallDone)
    ]
    assert fragments == sdk_fragments
    assert done == sdk_done
    calls = tuple(e.call for e in events if isinstance(e, ToolCallDone))
    assert _our_calls(calls) == _sdk_calls(final.choices[0].message)
    assert [c[1] for c in _our_calls(calls)] == ["get_weather", "get_stock_price"]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == final.choices[0].finish_reason == "tool_calls"


def test_each_chunk_completes_the_same_calls_as_the_sdk_accumulator() -> None:
    """Chunk by chunk, our decoder and the SDK's ``ChatCompletionStreamState`` agree on
    which fragments arrived and which calls became complete (as sets per chunk: the SDK
    lists a call's completion after the next call's first fragment, we before it)."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(input_tools=SDK_TOOLS)
    ours = OpenAIStream(OpenAIProvider(api_key=CANARY), ChatRequest(model=MODEL, messages=()))
    chunks = tool_call_chunks(STREAMED_CALLS)
    for raw in chunks:
        theirs = set()
        for event in state.handle_chunk(ChatCompletionChunk.model_validate(raw)):
            if event.type == "tool_calls.function.arguments.delta":
                theirs.add(("delta", event.index, event.arguments_delta))
            elif event.type == "tool_calls.function.arguments.done":
                theirs.add(("done", event.index, event.arguments))
        mine = set()
        for item in ours.feed_chunk(raw):
            if isinstance(item, ToolCallDelta):
                mine.add(("delta", item.index, item.arguments))
            elif isinstance(item, ToolCallDone):
                arguments = "".join(f for i, f in _fragments(STREAMED_CALLS) if i == item.index)
                assert dict(item.call.arguments) == json.loads(arguments)
                mine.add(("done", item.index, arguments))
        assert mine == theirs, raw
    assert any(kind == "done" for kind, *_ in mine)


def _fragments(calls: tuple[tuple[str, str, list[str]], ...]) -> list[tuple[int, str]]:
    return [(i, piece) for i, (_, _, pieces) in enumerate(calls) for piece in pieces]


def test_our_fake_replies_are_valid_sdk_objects() -> None:
    """The fakes are the API's shapes: the SDK's own models validate them."""
    body = completion(
        None, finish_reason="tool_calls", tool_calls=[tool_call(*c) for c in PARALLEL]
    )
    message = ChatCompletion.model_validate(body).choices[0].message
    assert message.tool_calls is not None
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_stock_price"]
    for raw in tool_call_chunks(STREAMED_CALLS):
        ChatCompletionChunk.model_validate(raw)
