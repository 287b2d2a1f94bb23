"""AnthropicProvider's tools, images, thinking and structured output against a loopback server.

Request shapes follow the Messages API reference and the anthropic SDK's param types; reply
and stream shapes its ``ToolUseBlock`` / ``ThinkingBlock`` / ``RedactedThinkingBlock`` types
and the streaming reference (see tests/wire/anthropic_fakes.py).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from runtime import errors
from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.providers.anthropic_request import strict_schema
from runtime.types import (
    Accumulator,
    ChatRequest,
    ImagePart,
    Message,
    OutputSchema,
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
)
from tests.loopback import LoopbackServer, Reply
from tests.unit.helpers import catalog, runtime_for
from tests.wire.anthropic_fakes import (
    MODEL,
    FastLoopbackServer,
    block_stream,
    message_body,
    redacted_block,
    stream_reply,
    thinking_block,
    tool_use_block,
)

CANARY = "sk-ant-canary-456"
WEATHER = Tool(
    "get_weather",
    "Current weather",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "", {"type": "object", "properties": {"tz": {"type": "string"}}})
PNG = b"\x89PNG\r\n\x1a\nfake"
PNG_B64 = base64.b64encode(PNG).decode()
USER_HI = {"role": "user", "content": "Hi"}


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


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=messages or (Message("user", "Hi"),), **kw)


async def sent_body(
    provider: AnthropicProvider, server: LoopbackServer, request: ChatRequest
) -> Any:
    server.queue(Reply(body=message_body()))
    await provider.chat(request)
    assert len(server.requests) == 1
    return server.requests[-1].json


async def events_of(provider: AnthropicProvider, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream_chat(request)]


def accumulate(events: list[StreamEvent]) -> Any:
    accumulator = Accumulator("anthropic")
    for event in events:
        accumulator.add(event)
    return accumulator.response()


# --------------------------------------------------------------------------- tools out

TOOLS_OUT = [
    {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER.schema},
    {"name": "get_time", "input_schema": TIME.schema},
]


@pytest.mark.parametrize(
    ("kw", "choice"),
    [
        pytest.param({}, None, id="no-choice"),
        pytest.param({"tool_choice": "auto"}, {"type": "auto"}, id="auto"),
        pytest.param({"tool_choice": "required"}, {"type": "any"}, id="required-is-any"),
        pytest.param({"tool_choice": "none"}, {"type": "none"}, id="none"),
        pytest.param(
            {"tool_choice": "get_time"}, {"type": "tool", "name": "get_time"}, id="by-name"
        ),
        pytest.param(
            {"parallel_tool_calls": False},
            {"type": "auto", "disable_parallel_tool_use": True},
            id="no-parallel-alone",
        ),
        pytest.param(
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
            id="required-no-parallel",
        ),
        pytest.param(
            {"tool_choice": "get_weather", "parallel_tool_calls": False},
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            id="name-no-parallel",
        ),
        pytest.param(
            {"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}, id="none-np"
        ),
        pytest.param({"parallel_tool_calls": True}, None, id="parallel-is-the-default"),
    ],
)
async def test_tools_and_every_tool_choice(
    provider: AnthropicProvider, server: LoopbackServer, kw: dict[str, Any], choice: Any
) -> None:
    body = await sent_body(provider, server, req(tools=(WEATHER, TIME), **kw))
    expected: dict[str, Any] = {
        "model": MODEL,
        "messages": [USER_HI],
        "max_tokens": 4096,
        "tools": TOOLS_OUT,
    }
    if choice is not None:
        expected["tool_choice"] = choice
    assert body == expected


async def test_a_tool_conversation_is_sent_as_tool_use_and_tool_result_blocks(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    history = (
        Message("user", "Weather in Paris and Rome, and the time?"),
        Message(
            "assistant",
            [
                TextPart("Checking."),
                ToolCall("toolu_01", "get_weather", {"city": "Paris"}),
                ToolCall("toolu_02", "get_weather", {"city": "Rome"}),
                ToolCall("call:3|x", "get_time", {}),
            ],
        ),
        # Several results in one tool message, then another tool message: one user turn.
        Message("tool", [ToolResult("toolu_01", "18 C"), ToolResult("toolu_02", "21 C")]),
        Message("tool", [ToolResult("call:3|x", "no clock", is_error=True)]),
        Message("user", "Thanks"),
    )
    body = await sent_body(provider, server, req(*history, tools=(WEATHER, TIME)))
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome, and the time?"},
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
                # Ids keep only what the API accepts, alike on both sides.
                {"type": "tool_use", "id": "call_3_x", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "21 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_3_x",
                    "content": "no clock",
                    "is_error": True,
                },
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]


async def test_openai_shaped_history_is_accepted_through_the_runtime(
    server: LoopbackServer,
) -> None:
    """A conversation in the openai SDK's shapes, continued on Claude through rt.generate."""
    server.queue(Reply(body=message_body("Sunny.")))
    rt = runtime_for(_catalog(server))
    try:
        result = await rt.generate(
            model="claude",
            messages=[
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_abc", "content": "-3 C"},
            ],
            tools=[
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": WEATHER.schema},
                }
            ],
        )
    finally:
        await rt.aclose()
    assert result.text == "Sunny."
    assert server.requests[0].json["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_abc",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "-3 C"}],
        },
    ]


# --------------------------------------------------------------------------- images out


@pytest.mark.parametrize(
    ("image", "source"),
    [
        pytest.param(
            ImagePart(url="https://example.com/cat.png"),
            {"type": "url", "url": "https://example.com/cat.png"},
            id="https-url",
        ),
        pytest.param(
            ImagePart(data=PNG, media_type="image/png"),
            {"type": "base64", "media_type": "image/png", "data": PNG_B64},
            id="bytes",
        ),
        pytest.param(
            ImagePart(url=f"data:image/webp;base64,{PNG_B64}"),
            {"type": "base64", "media_type": "image/webp", "data": PNG_B64},
            id="data-url",
        ),
    ],
)
async def test_images_are_image_blocks(
    provider: AnthropicProvider, server: LoopbackServer, image: ImagePart, source: Any
) -> None:
    body = await sent_body(provider, server, req(Message("user", [TextPart("What is it?"), image])))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image", "source": source},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("image", "text"),
    [
        pytest.param(
            ImagePart(url="http://example.com/cat.png"),
            "messages[0].content[0]: Anthropic takes an image by https: URL or as data",
            id="http-url",
        ),
        pytest.param(
            ImagePart(data=b"BM..", media_type="image/bmp"),
            "messages[0].content[0]: Anthropic takes jpeg, png, gif or webp images, "
            "not 'image/bmp'",
            id="bmp",
        ),
    ],
)
async def test_images_it_cannot_take_are_refused_before_sending(
    provider: AnthropicProvider, server: LoopbackServer, image: ImagePart, text: str
) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        await provider.chat(req(Message("user", [image])))
    assert text in str(info.value)
    assert server.requests == []


# --------------------------------------------------------------------------- thinking out


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "thinking", "sent_max"),
    [
        pytest.param(ReasoningConfig(budget_tokens=2048), 8000, 2048, 8000, id="budget-fits"),
        pytest.param(ReasoningConfig(budget_tokens=2048), 500, 2048, 2548, id="max-raised"),
        pytest.param(ReasoningConfig(budget_tokens=2048), 2048, 2048, 4096, id="max-equal"),
        pytest.param(ReasoningConfig(budget_tokens=100), 8000, 1024, 8000, id="below-minimum"),
        pytest.param(ReasoningConfig(effort="low"), 8000, 1024, 8000, id="effort-low"),
        pytest.param(ReasoningConfig(effort="medium"), 8000, 4096, 8000, id="effort-medium"),
        pytest.param(ReasoningConfig(effort="high"), None, 16384, 16384 + 4096, id="effort-high"),
        pytest.param(ReasoningConfig(budget_tokens=0), 100, None, 100, id="zero-is-off"),
    ],
)
async def test_reasoning_becomes_a_thinking_budget_below_max_tokens(
    provider: AnthropicProvider,
    server: LoopbackServer,
    reasoning: ReasoningConfig,
    max_tokens: int | None,
    thinking: int | None,
    sent_max: int,
) -> None:
    body = await sent_body(provider, server, req(reasoning=reasoning, max_tokens=max_tokens))
    assert body["max_tokens"] == sent_max
    if thinking is None:
        assert "thinking" not in body
    else:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": thinking}
        assert body["thinking"]["budget_tokens"] < body["max_tokens"]


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        pytest.param({"temperature": 0.2}, "temperature 0.2", id="temperature"),
        pytest.param({"params": {"temperature": 0.5}}, "temperature 0.5", id="temperature-param"),
        pytest.param({"params": {"top_k": 5}}, "top_k", id="top_k"),
        pytest.param({"params": {"top_p": 0.5}}, "top_p 0.5", id="top_p"),
        pytest.param({"tools": (WEATHER,), "tool_choice": "required"}, "a forced tool", id="any"),
        pytest.param(
            {"tools": (WEATHER,), "tool_choice": "get_weather"}, "a forced tool", id="name"
        ),
        pytest.param(
            {"response_format": OutputSchema("answer", {"type": "object"})},
            "response_format through a tool",
            id="structured-through-a-tool",
        ),
    ],
)
async def test_thinking_refuses_what_the_api_rejects_with_it(
    provider: AnthropicProvider, server: LoopbackServer, kw: dict[str, Any], text: str
) -> None:
    request = req(reasoning=ReasoningConfig(budget_tokens=2048), **kw)
    with pytest.raises(errors.InvalidRequestError) as info:
        await provider.chat(request)
    assert "reasoning: Anthropic's extended thinking cannot be combined with" in str(info.value)
    assert text in str(info.value)
    assert server.requests == []


async def test_thinking_allows_temperature_one_and_high_top_p(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    request = req(
        reasoning=ReasoningConfig(budget_tokens=1024), temperature=1.0, params={"top_p": 0.95}
    )
    body = await sent_body(provider, server, request)
    assert (body["temperature"], body["top_p"]) == (1.0, 0.95)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


OURS = ReasoningPart("Let me think.", signature="sig-A", origin="anthropic")
OURS_REDACTED = ReasoningPart(redacted="opaque==", origin="anthropic")


async def test_our_reasoning_goes_back_verbatim_in_place_and_foreign_reasoning_is_dropped(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    assistant = Message(
        "assistant",
        [
            OURS,
            ReasoningPart("openai summary", origin="openai"),
            OURS_REDACTED,
            ReasoningPart("gemini thought", signature="g-sig", origin="gemini"),
            ReasoningPart("no origin"),
            ReasoningPart("ours, but its signature was lost", origin="anthropic"),
            TextPart("Calling."),
            ToolCall("toolu_9", "get_weather", {"city": "Oslo"}),
        ],
    )
    request = req(
        Message("user", "Weather?"),
        assistant,
        Message("tool", [ToolResult("toolu_9", "-3 C")]),
        tools=(WEATHER,),
        reasoning=ReasoningConfig(budget_tokens=2048),
        max_tokens=4096,
    )
    body = await sent_body(provider, server, request)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig-A"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_an_assistant_turn_of_foreign_reasoning_only_is_left_out(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    request = req(
        Message("user", "Hi"),
        Message("assistant", [ReasoningPart("openai summary", origin="openai")]),
        Message("user", "Again"),
    )
    body = await sent_body(provider, server, request)
    assert body["messages"] == [USER_HI, {"role": "user", "content": "Again"}]


async def test_thinking_is_left_out_when_the_last_tool_call_came_without_our_thinking(
    provider: AnthropicProvider, server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool loop started on another vendor: the API rejects thinking without the turn's
    thinking block, so the call goes without it and says so."""
    request = req(
        Message("user", "Weather?"),
        Message("assistant", [ToolCall("call_1", "get_weather", {"city": "Oslo"})]),
        Message("tool", [ToolResult("call_1", "-3 C")]),
        tools=(WEATHER,),
        reasoning=ReasoningConfig(effort="low"),
    )
    with caplog.at_level(logging.WARNING, logger="runtime"):
        body = await sent_body(provider, server, request)
    assert "thinking" not in body
    assert body["max_tokens"] == 4096
    assert "reasoning left out of this call" in caplog.text


# --------------------------------------------------------------------------- structured out


class Answer(BaseModel):
    city: str
    population: int = Field(ge=0, description="People living there")
    tags: list[str] = Field(min_length=2)


async def test_native_structured_output_is_output_config_with_a_strict_schema(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    schema = OutputSchema("Answer", Answer.model_json_schema(), True, Answer)
    body = await sent_body(
        provider,
        server,
        req(response_format=schema, capabilities={"structured_output": "native"}),
    )
    assert "tools" not in body
    assert body["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "title": "Answer",
                "properties": {
                    "city": {"type": "string", "title": "City"},
                    "population": {
                        "type": "integer",
                        "description": "People living there\n\n{minimum: 0}",
                        "title": "Population",
                    },
                    "tags": {
                        "type": "array",
                        "title": "Tags",
                        "items": {"type": "string"},
                        "description": "{minItems: 2}",
                    },
                },
                "additionalProperties": False,
                "required": ["city", "population", "tags"],
            },
        }
    }


@pytest.mark.parametrize(
    ("kw", "choice", "names"),
    [
        pytest.param({}, {"type": "tool", "name": "answer"}, ["answer"], id="alone"),
        pytest.param(
            {"tools": (WEATHER,)}, {"type": "any"}, ["get_weather", "answer"], id="with-tools"
        ),
        pytest.param(
            {"tools": (WEATHER,), "tool_choice": "none"},
            {"type": "tool", "name": "answer"},
            ["get_weather", "answer"],
            id="tools-but-none",
        ),
        pytest.param(
            {"tools": (WEATHER,), "tool_choice": "get_weather"},
            {"type": "tool", "name": "get_weather"},
            ["get_weather", "answer"],
            id="tools-by-name",
        ),
    ],
)
async def test_structured_output_without_native_support_is_a_forced_tool(
    provider: AnthropicProvider,
    server: LoopbackServer,
    kw: dict[str, Any],
    choice: Any,
    names: list[str],
) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    body = await sent_body(
        provider, server, req(response_format=OutputSchema("answer", schema), **kw)
    )
    assert "output_config" not in body
    assert [t["name"] for t in body["tools"]] == names
    assert body["tools"][-1] == {
        "name": "answer",
        "description": "Give the final answer as this tool's input.",
        "input_schema": schema,
    }
    assert body["tool_choice"] == choice


async def test_a_structured_output_tool_named_like_a_tool_is_refused(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    request = req(tools=(WEATHER,), response_format=OutputSchema("get_weather", {"type": "object"}))
    with pytest.raises(errors.InvalidRequestError, match="its name 'get_weather' is also a tool's"):
        await provider.chat(request)
    assert server.requests == []


@pytest.mark.parametrize("param", ["tools", "tool_choice", "thinking", "output_config"])
async def test_params_may_not_replace_what_the_portable_arguments_set(
    provider: AnthropicProvider, server: LoopbackServer, param: str
) -> None:
    request = req(
        tools=(WEATHER,),
        tool_choice="auto",
        reasoning=ReasoningConfig(budget_tokens=1024),
        response_format=OutputSchema("a", {"type": "object"}),
        capabilities={"structured_output": "native"},
        params={param: {}},
    )
    with pytest.raises(errors.InvalidRequestError, match=f"parameter '{param}' may not be passed"):
        await provider.chat(request)
    assert server.requests == []


def test_strict_schema_follows_the_sdk_rules_for_unions_refs_and_literals() -> None:
    schema = {
        "$defs": {"Kind": {"enum": ["a", "b"], "type": "string"}},
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/Kind"},
            "either": {"oneOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "pattern": "^[A-Z]+$", "format": "iban"},
            "one": {"const": 1},
        },
        "additionalProperties": True,
    }
    assert strict_schema(schema) == {
        "$defs": {"Kind": {"enum": ["a", "b"]}},
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/Kind"},
            "either": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "description": "{pattern: ^[A-Z]+$, format: iban}"},
            "one": {"const": 1},
        },
        "additionalProperties": False,
    }
    with pytest.raises(errors.InvalidRequestError, match="needs a 'type'"):
        strict_schema({"type": "object", "properties": {"x": {}}})


# --------------------------------------------------------------------------- replies in


async def test_a_reply_with_parallel_tool_calls(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    body = message_body(
        "Let me check both.",
        stop_reason="tool_use",
        blocks=[],
    )
    body["content"] += [
        tool_use_block("toolu_01A", "get_weather", {"city": "Paris"}),
        tool_use_block("toolu_01B", "get_weather", {"city": "Rome", "unit": "c"}),
    ]
    server.queue(Reply(body=body))
    response = await provider.chat(req(tools=(WEATHER,)))
    assert response.finish_reason == "tool_calls"
    assert response.text == "Let me check both."
    assert response.tool_calls == (
        ToolCall("toolu_01A", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_01B", "get_weather", {"city": "Rome", "unit": "c"}),
    )
    assert response.parts[0] == TextPart("Let me check both.")


async def test_thinking_in_a_reply_is_returned_and_goes_back_verbatim(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    blocks = [
        thinking_block("Step one.", "EqQBCgIYAh"),
        redacted_block("EmwKAhgBEgy3va3pzix"),
        {"type": "text", "text": "Calling."},
        tool_use_block("toolu_7", "get_weather", {"city": "Oslo"}),
    ]
    body = message_body([], stop_reason="tool_use", blocks=blocks)
    server.queue(Reply(body=body), Reply(body=message_body("Cold.")))
    request = req(
        Message("user", "Weather?"), tools=(WEATHER,), reasoning=ReasoningConfig(budget_tokens=2048)
    )
    response = await provider.chat(request)
    assert response.reasoning == "Step one."
    assert response.parts == (
        ReasoningPart("Step one.", "EqQBCgIYAh", None, "anthropic"),
        ReasoningPart("", None, "EmwKAhgBEgy3va3pzix", "anthropic"),
        TextPart("Calling."),
        ToolCall("toolu_7", "get_weather", {"city": "Oslo"}),
    )
    follow_up = req(
        *request.messages,
        response.message,
        Message("tool", [ToolResult("toolu_7", "-3 C")]),
        tools=(WEATHER,),
        reasoning=ReasoningConfig(budget_tokens=2048),
    )
    await provider.chat(follow_up)
    assert server.requests[1].json["messages"][1] == {"role": "assistant", "content": blocks}
    assert server.requests[1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_a_forced_output_tool_reply_is_the_answer_text(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    body = message_body([], stop_reason="tool_use")
    body["content"] = [tool_use_block("toolu_1", "answer", {"x": 1, "name": "Zoë"})]
    server.queue(Reply(body=body))
    response = await provider.chat(req(response_format=OutputSchema("answer", {"type": "object"})))
    assert json.loads(response.text) == {"x": 1, "name": "Zoë"}
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"


async def test_a_tool_use_block_without_an_input_object_is_malformed(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    body = message_body([], stop_reason="tool_use")
    body["content"] = [{"type": "tool_use", "id": "t", "name": "get_weather", "input": "{}"}]
    server.queue(Reply(body=body))
    with pytest.raises(
        errors.MalformedResponseError, match="a tool_use block has no 'input' object"
    ):
        await provider.chat(req(tools=(WEATHER,)))


# --------------------------------------------------------------------------- streams in

ARGS = '{"city": "Paris", "unit": "c"}'


@pytest.mark.parametrize("cut", [0, 1, 5, 9, 15, len(ARGS) - 1, len(ARGS)])
async def test_streamed_arguments_split_anywhere_come_as_they_arrive(
    provider: AnthropicProvider, server: LoopbackServer, cut: int
) -> None:
    fragments = ["", ARGS[:cut], ARGS[cut:]]  # the API often opens with an empty fragment
    events = block_stream(
        [("text", ["Checking."]), ("tool_use", "toolu_X", "get_weather", fragments)],
        stop_reason="tool_use",
    )
    server.queue(stream_reply(events))
    got = await events_of(provider, req(tools=(WEATHER,)))
    assert got[:2] == [TextDelta("Checking."), ToolCallDelta(1, "toolu_X", "get_weather", "")]
    deltas = [e.arguments for e in got if isinstance(e, ToolCallDelta)][1:]
    assert deltas == [f for f in fragments if f]  # each fragment as it came, none withheld
    done = [e for e in got if isinstance(e, ToolCallDone)]
    assert done == [
        ToolCallDone(1, ToolCall("toolu_X", "get_weather", {"city": "Paris", "unit": "c"}))
    ]
    assert isinstance(got[-1], StreamEnd)
    assert got[-1].finish_reason == "tool_calls"
    assert got.index(done[0]) == len(got) - 2  # at its content_block_stop, before the end


async def test_two_streamed_calls_each_complete_at_their_own_block_stop(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = block_stream(
        [
            ("tool_use", "toolu_A", "get_weather", ['{"ci', 'ty": "Paris"}']),
            ("tool_use", "toolu_B", "get_time", ["{}"]),
        ],
        stop_reason="tool_use",
    )
    server.queue(stream_reply(events))
    got = await events_of(provider, req(tools=(WEATHER, TIME)))
    first_done = got.index(ToolCallDone(0, ToolCall("toolu_A", "get_weather", {"city": "Paris"})))
    second_start = got.index(ToolCallDelta(1, "toolu_B", "get_time", ""))
    assert first_done < second_start  # complete before the next call starts
    response = accumulate(got)
    assert response.tool_calls == (
        ToolCall("toolu_A", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_B", "get_time", {}),
    )
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fragments", "why"),
    [
        pytest.param(['{"city": "Par'], "JSONDecodeError", id="cut-json"),
        pytest.param(["[1, 2]"], "a JSON list", id="not-an-object"),
    ],
)
async def test_streamed_arguments_that_are_no_json_object_raise_with_the_raw_text(
    provider: AnthropicProvider, server: LoopbackServer, fragments: list[str], why: str
) -> None:
    events = block_stream(
        [("tool_use", "toolu_X", "get_weather", fragments)], stop_reason="tool_use"
    )
    server.queue(stream_reply(events))
    with pytest.raises(errors.ToolArgumentsError) as info:
        await events_of(provider, req(tools=(WEATHER,)))
    assert info.value.raw_arguments == "".join(fragments)
    assert info.value.tool_name == "get_weather"
    assert (info.value.provider, info.value.model) == ("claude", MODEL)
    assert why in str(info.value)


async def test_streamed_thinking_comes_as_reasoning_deltas_with_its_signature(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = block_stream(
        [
            ("thinking", ["Let me ", "think."], "EqQBCgIYAh"),
            ("redacted_thinking", "EmwKAhgBEgy3"),
            ("text", ["Hi", "!"]),
        ]
    )
    server.queue(stream_reply(events))
    got = await events_of(provider, req(reasoning=ReasoningConfig(budget_tokens=2048)))
    assert got[:-1] == [
        ReasoningDelta("Let me ", index=0),
        ReasoningDelta("think.", index=0),
        ReasoningDelta(signature="EqQBCgIYAh", index=0),
        ReasoningDelta(redacted="EmwKAhgBEgy3", index=1),
        TextDelta("Hi"),
        TextDelta("!"),
    ]
    response = accumulate(got)
    assert response.parts == (
        ReasoningPart("Let me think.", "EqQBCgIYAh", None, "anthropic"),
        ReasoningPart("", None, "EmwKAhgBEgy3", "anthropic"),
        TextPart("Hi!"),
    )


async def test_a_streamed_forced_output_tool_streams_the_answer_as_text(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    events = block_stream(
        [("tool_use", "toolu_1", "answer", ["", '{"x"', ": 1}"])], stop_reason="tool_use"
    )
    server.queue(stream_reply(events))
    got = await events_of(provider, req(response_format=OutputSchema("answer", {"type": "object"})))
    assert got[:-1] == [TextDelta('{"x"'), TextDelta(": 1}")]
    assert isinstance(got[-1], StreamEnd)
    assert got[-1].finish_reason == "stop"


REPLY_BLOCKS = [
    thinking_block("Hmm.", "sig-1"),
    {"type": "text", "text": "Two calls."},
    tool_use_block("toolu_A", "get_weather", {"city": "Paris"}),
    tool_use_block("toolu_B", "get_time", {"tz": "CET"}),
]


async def test_the_json_reply_and_the_stream_read_the_same(
    provider: AnthropicProvider, server: LoopbackServer
) -> None:
    server.queue(
        Reply(body=message_body([], stop_reason="tool_use", blocks=REPLY_BLOCKS)),
        stream_reply(
            block_stream(
                [
                    ("thinking", ["Hm", "m."], "sig-1"),
                    ("text", ["Two ", "calls."]),
                    ("tool_use", "toolu_A", "get_weather", ['{"city"', ': "Paris"}']),
                    ("tool_use", "toolu_B", "get_time", ['{"tz": "CET"}']),
                ],
                stop_reason="tool_use",
            )
        ),
    )
    request = req(tools=(WEATHER, TIME))
    plain = await provider.chat(request)
    streamed = accumulate(await events_of(provider, request))
    assert streamed.parts == plain.parts
    assert streamed.finish_reason == plain.finish_reason == "tool_calls"


# --------------------------------------------------------------------------- through the runtime


def _catalog(server: LoopbackServer, **caps: Any) -> Any:
    return catalog(
        {
            "claude": {
                "provider": "a",
                "provider_model": MODEL,
                "capabilities": {"structured_output": "native", **caps},
            }
        },
        providers={
            "a": {
                "class": "runtime.providers.anthropic_provider.AnthropicProvider",
                "base_url": server.url,
            }
        },
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param(
            '{"city": "Oslo", "population": 700000, "tags": ["a", "b"]}', True, id="valid"
        ),
        pytest.param('{"city": "Oslo", "population": -1, "tags": ["a", "b"]}', False, id="minimum"),
        pytest.param('{"city": "Oslo"', False, id="not-json"),
    ],
)
async def test_structured_output_is_validated_through_generate(
    server: LoopbackServer, text: str, parsed: bool
) -> None:
    server.queue(Reply(body=message_body(text)))
    rt = runtime_for(_catalog(server))
    try:
        if parsed:
            result = await rt.generate(model="claude", prompt="Oslo?", response_format=Answer)
            assert result.parsed == Answer(city="Oslo", population=700000, tags=["a", "b"])
        else:
            with pytest.raises(errors.StructuredOutputError) as info:
                await rt.generate(model="claude", prompt="Oslo?", response_format=Answer)
            assert info.value.raw_text == text
    finally:
        await rt.aclose()
    assert "output_config" in server.requests[0].json


async def test_a_tool_call_through_generate_and_stream_events(server: LoopbackServer) -> None:
    body = message_body([], stop_reason="tool_use")
    body["content"] = [tool_use_block("toolu_1", "get_weather", {"city": "Oslo"})]
    server.queue(
        Reply(body=body),
        stream_reply(
            block_stream(
                [("tool_use", "toolu_1", "get_weather", ['{"city":', ' "Oslo"}'])],
                stop_reason="tool_use",
            )
        ),
    )
    rt = runtime_for(_catalog(server))
    tools = [
        {"name": "get_weather", "description": "Current weather", "parameters": WEATHER.schema}
    ]
    try:
        result = await rt.generate(
            model="claude", prompt="Weather?", tools=tools, tool_choice={"name": "get_weather"}
        )
        seen = [e async for e in rt.stream_events(model="claude", prompt="Weather?", tools=tools)]
    finally:
        await rt.aclose()
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == (ToolCall("toolu_1", "get_weather", {"city": "Oslo"}),)
    assert server.requests[0].json["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert [e.arguments for e in seen if isinstance(e, ToolCallDelta)] == [
        "",
        '{"city":',
        ' "Oslo"}',
    ]
    assert ToolCallDone(0, ToolCall("toolu_1", "get_weather", {"city": "Oslo"})) in seen
