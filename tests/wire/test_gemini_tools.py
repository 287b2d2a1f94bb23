"""Gemini tools, images, structured output and thinking against a loopback server.

Reply and stream shapes follow the Generative Language API v1beta reference and the
google-genai SDK's types (functionCall parts, thought parts, thoughtSignature on the part
that carried it, a stream's final ``{"text": "", "thoughtSignature"}`` part). Every request
body asserted here was checked once against the body google-genai 3.6 sends for the same
call (its converters spell some nested fields in snake_case, which proto JSON also takes).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from runtime.config import Catalog, ModelConfig, ProviderConfig, RuntimeSettings
from runtime.errors import InvalidRequestError, StructuredOutputError, ToolArgumentsError
from runtime.providers.gemini_provider import GeminiProvider
from runtime.providers.gemini_request import EFFORT_BUDGETS, SIGNATURE_SENTINEL
from runtime.service import LLMRuntime
from runtime.types import (
    ChatRequest,
    Completion,
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
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
    Usage,
    normalize_messages,
    normalize_tools,
)
from tests.loopback import LoopbackServer, Reply
from tests.wire.gemini_fakes import (
    MODEL_VERSION,
    candidate,
    function_call,
    parts_candidate,
    response,
    sse_reply,
    usage,
)

KEY = "AIza-tools-canary"
MODEL = "gemini-2.5-flash"
USER = Message("user", "Weather in Paris and Oslo?")
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TOOLS = normalize_tools(
    [{"name": "get_weather", "description": "Current weather", "parameters": WEATHER}]
)
DECLARATIONS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Current weather",
                "parametersJsonSchema": WEATHER,
            }
        ]
    }
]
#: Signatures are base64 bytes on the wire, opaque to us.
SIG_THOUGHT = base64.b64encode(b"signed thought").decode()
SIG_CALL = base64.b64encode(b"signed call").decode()
SIG_END = base64.b64encode(b"signed end").decode()
MODES = [pytest.param(False, id="chat"), pytest.param(True, id="stream")]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> LoopbackServer:
    shared_server.requests.clear()
    shared_server._queue.clear()  # a failed test must not leave replies for the next one
    return shared_server


@pytest.fixture
async def provider(server: LoopbackServer) -> AsyncIterator[GeminiProvider]:
    instance = GeminiProvider(api_key=KEY, base_url=f"{server.url}/v1beta")
    instance.provider_name = "gemini"
    yield instance
    await instance.aclose()


def result_part(name: str, output: str, id: str | None = None, key: str = "output") -> Any:
    """A ``functionResponse`` part as the request must carry it."""
    response: dict[str, Any] = {"name": name, "response": {key: output}}
    if id is not None:
        response["id"] = id
    return {"functionResponse": response}


def request(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(MODEL, messages or (USER,), **kwargs)


def body_of(provider: GeminiProvider, req: ChatRequest) -> dict[str, Any]:
    """The JSON ``chat`` would send (describe_request is what is sent; test_gemini proves it)."""
    return provider.describe_request(req)["json"]  # type: ignore[no-any-return]


async def events_of(provider: GeminiProvider, req: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream_chat(req)]


async def call(provider: GeminiProvider, req: ChatRequest, stream: bool) -> Any:
    """chat(), or stream_chat() collected into a list."""
    return await (events_of(provider, req) if stream else provider.chat(req))


def queue(server: LoopbackServer, stream: bool, *chunks: dict[str, Any]) -> None:
    """One reply: the chunks as a stream, or (chat) the one chunk as the reply body."""
    if stream:
        server.queue(sse_reply(list(chunks)))
    else:
        assert len(chunks) == 1
        server.queue(Reply(body=chunks[0]))


# ---------------------------------------------------------------------- tools in requests


@pytest.mark.parametrize(
    ("choice", "tool_config"),
    [
        pytest.param(None, None, id="unset"),
        pytest.param("auto", {"functionCallingConfig": {"mode": "AUTO"}}, id="auto"),
        pytest.param("required", {"functionCallingConfig": {"mode": "ANY"}}, id="required"),
        pytest.param("none", {"functionCallingConfig": {"mode": "NONE"}}, id="none"),
        pytest.param(
            "get_weather",
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            id="named",
        ),
    ],
)
async def test_tools_and_every_tool_choice(
    server: LoopbackServer,
    provider: GeminiProvider,
    choice: str | None,
    tool_config: dict[str, Any] | None,
) -> None:
    server.queue(Reply(body=response(candidate("ok"))))
    await provider.chat(request(tools=TOOLS, tool_choice=choice))
    expected: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]}],
        "tools": DECLARATIONS,
    }
    if tool_config is not None:
        expected["toolConfig"] = tool_config
    assert server.requests[0].json == expected


def test_declarations_keep_the_json_schema_as_given(provider: GeminiProvider) -> None:
    class Lookup(BaseModel):
        """Look a word up."""

        word: str
        limit: int = 3

    tools = normalize_tools(
        [
            {"name": "lookup", "parameters": Lookup},
            {"name": "now", "description": "The time", "parameters": {"properties": {}}},
        ]
    )
    declarations = body_of(provider, request(tools=tools))["tools"][0]["functionDeclarations"]
    assert declarations == [
        {"name": "lookup", "parametersJsonSchema": Lookup.model_json_schema()},
        {
            "name": "now",
            "description": "The time",
            "parametersJsonSchema": {"properties": {}, "type": "object"},
        },
    ]


def test_function_tools_follow_a_tools_parameter(provider: GeminiProvider) -> None:
    req = request(tools=TOOLS, params={"tools": [{"googleSearch": {}}]})
    assert body_of(provider, req)["tools"] == [{"googleSearch": {}}, *DECLARATIONS]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"tools": TOOLS, "tool_choice": "auto", "params": {"tool_config": {}}},
            "parameters 'tool_config' and 'tool_choice' both set toolConfig; give only one",
            id="tool_config-and-tool_choice",
        ),
        pytest.param(
            {"tools": TOOLS, "params": {"tools": {"googleSearch": {}}}},
            "parameters 'tools' and 'tools' both set tools; give only one",
            id="tools-not-a-list",
        ),
        pytest.param(
            {"tools": TOOLS, "parallel_tool_calls": False},
            "Gemini cannot be limited to one function call per turn",
            id="parallel-false",
        ),
        pytest.param(
            {"tools": normalize_tools([{"name": "1lookup"}])},
            "tool '1lookup': Gemini function names must start with a letter or an underscore",
            id="name-starts-with-a-digit",
        ),
        pytest.param(
            {
                "response_format": OutputSchema("w", WEATHER),
                "params": {"response_mime_type": "text/plain"},
            },
            "parameters 'response_mime_type' and 'response_format' both set "
            "generationConfig.responseMimeType",
            id="mime-and-response_format",
        ),
        pytest.param(
            {"reasoning": ReasoningConfig(budget_tokens=512), "params": {"thinkingConfig": {}}},
            "parameters 'thinkingConfig' and 'reasoning' both set generationConfig.thinkingConfig",
            id="thinkingConfig-and-reasoning",
        ),
    ],
)
async def test_requests_gemini_cannot_express_are_refused(
    server: LoopbackServer, provider: GeminiProvider, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        await provider.chat(request(**kwargs))
    assert server.requests == []


def test_parallel_tool_calls_true_needs_nothing_on_the_wire(provider: GeminiProvider) -> None:
    body = body_of(provider, request(tools=TOOLS, parallel_tool_calls=True))
    assert body == body_of(provider, request(tools=TOOLS))


# ---------------------------------------------------------------------- structured output


def test_structured_output_is_a_json_schema_reply(provider: GeminiProvider) -> None:
    req = request(response_format=OutputSchema("weather", WEATHER), max_tokens=64)
    assert body_of(provider, req)["generationConfig"] == {
        "maxOutputTokens": 64,
        "responseMimeType": "application/json",
        "responseJsonSchema": WEATHER,
    }


class City(BaseModel):
    city: str
    celsius: float


def _runtime(server: LoopbackServer, **capabilities: Any) -> LLMRuntime:
    catalog = Catalog(
        providers={
            "gemini": ProviderConfig.model_validate(
                {
                    "name": "gemini",
                    "class": "runtime.providers.gemini_provider.GeminiProvider",
                    "api_key_env": "GEMINI_API_KEY",
                    "base_url": f"{server.url}/v1beta",
                }
            )
        },
        models={
            MODEL: ModelConfig(
                id=MODEL,
                provider="gemini",
                retry={"max_attempts": 1},
                capabilities=capabilities,
            )
        },
        settings=RuntimeSettings(),
    )
    return LLMRuntime(catalog, environ={"GEMINI_API_KEY": KEY})


async def answer(rt: LLMRuntime, stream: bool, **kwargs: Any) -> Completion:
    """generate(), or stream() read to its end, for the same call."""
    if not stream:
        return await rt.generate(model=MODEL, prompt="Weather?", **kwargs)
    async with rt.stream(model=MODEL, prompt="Weather?", **kwargs) as deltas:
        text = "".join([d async for d in deltas])
    assert deltas.completion is not None
    assert deltas.completion.text == text
    return deltas.completion


@pytest.mark.parametrize("stream", MODES)
async def test_structured_output_through_the_runtime(server: LoopbackServer, stream: bool) -> None:
    good = response(candidate('{"city": "Paris", ', '"celsius": 18.5}'))
    bad = response(candidate('{"city": "Paris"}'))
    for body in (good, bad):
        server.queue(sse_reply([body]) if stream else Reply(body=body))
    rt = _runtime(server, structured_output="native")
    try:
        parsed = (await answer(rt, stream, response_format=City)).parsed
        assert parsed == City(city="Paris", celsius=18.5)
        with pytest.raises(StructuredOutputError) as info:
            await answer(rt, stream, response_format=City)
    finally:
        await rt.aclose()
    assert info.value.raw_text == '{"city": "Paris"}'
    assert "celsius" in info.value.problem
    sent = server.requests[0].json["generationConfig"]
    assert (sent["responseMimeType"], sent["responseJsonSchema"]) == (
        "application/json",
        City.model_json_schema(),
    )


# ---------------------------------------------------------------------- images


def test_images_by_bytes_data_url_and_https(provider: GeminiProvider) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    encoded = base64.b64encode(png).decode()
    message = Message(
        "user",
        [
            TextPart("What is in these?"),
            ImagePart(data=png, media_type="image/png"),
            ImagePart(url=f"data:image/webp;base64,{encoded}"),
            ImagePart(url="https://example.com/photos/cat.jpg", detail="high"),
            ImagePart(url="https://example.com/render?id=7", media_type="image/gif"),
            ImagePart(url="https://generativelanguage.googleapis.com/v1beta/files/abc-123"),
            ImagePart(url="gs://my-bucket/dog.png"),
        ],
    )
    assert body_of(provider, request(message))["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": encoded}},
                {"inlineData": {"mimeType": "image/webp", "data": encoded}},
                {
                    "fileData": {
                        "fileUri": "https://example.com/photos/cat.jpg",
                        "mimeType": "image/jpeg",
                    }
                },
                {
                    "fileData": {
                        "fileUri": "https://example.com/render?id=7",
                        "mimeType": "image/gif",
                    }
                },
                {
                    "fileData": {
                        "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"
                    }
                },
                {"fileData": {"fileUri": "gs://my-bucket/dog.png", "mimeType": "image/png"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "http://example.com/cat.png?X-Amz-Signature=secret-sig",
            "Gemini fetches images only from https:// URLs (public or signed), Files API URIs "
            "and registered gs:// objects, not from a http URL: download the image",
            id="plain-http",
        ),
        pytest.param("file:///tmp/cat.png", "not from a file URL", id="file"),
        pytest.param(
            "https://example.com/render?X-Amz-Signature=secret-sig",
            "the image URL's file name does not tell its type, which Gemini needs: give media_type",
            id="https-without-type",
        ),
    ],
)
async def test_image_urls_gemini_cannot_fetch_are_refused(
    server: LoopbackServer, provider: GeminiProvider, url: str, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(request(Message("user", [TextPart("?"), ImagePart(url=url)])))
    assert str(info.value).startswith("messages[0].content[1]: ")
    assert message in str(info.value)
    assert "secret-sig" not in str(info.value)  # a signed URL's credential is not printed
    assert server.requests == []


# ---------------------------------------------------------------------- reasoning in requests


@pytest.mark.parametrize(
    ("reasoning", "capabilities", "max_tokens", "config"),
    [
        pytest.param(
            ReasoningConfig(budget_tokens=2048),
            {},
            8192,
            {
                "maxOutputTokens": 8192,
                "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
            },
            id="budget",
        ),
        pytest.param(
            ReasoningConfig(budget_tokens=0),
            {},
            None,
            {"thinkingConfig": {"thinkingBudget": 0}},
            id="budget-0-turns-thinking-off",
        ),
        pytest.param(
            ReasoningConfig(effort="low"),
            {"reasoning": "budget"},
            None,
            {"thinkingConfig": {"thinkingBudget": EFFORT_BUDGETS["low"], "includeThoughts": True}},
            id="effort-on-a-budget-model",
        ),
        pytest.param(
            ReasoningConfig(effort="high"),
            {"reasoning": "effort"},
            1000,
            {
                "maxOutputTokens": 1000,
                "thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": True},
            },
            id="effort-on-a-level-model",
        ),
        pytest.param(
            ReasoningConfig(effort="high"),
            {},
            8192,
            {
                "maxOutputTokens": 8192 + 24576,
                "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True},
            },
            id="budget-above-max-tokens-keeps-room-for-the-answer",
        ),
        pytest.param(
            ReasoningConfig(budget_tokens=1024),
            {},
            1024,
            {
                "maxOutputTokens": 2048,
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
            },
            id="budget-equal-to-max-tokens",
        ),
    ],
)
def test_reasoning_is_a_thinking_config(
    provider: GeminiProvider,
    reasoning: ReasoningConfig,
    capabilities: dict[str, Any],
    max_tokens: int | None,
    config: dict[str, Any],
) -> None:
    req = request(reasoning=reasoning, capabilities=capabilities, max_tokens=max_tokens)
    assert body_of(provider, req)["generationConfig"] == config


# ---------------------------------------------------------------------- function calls in replies

PARALLEL = response(
    parts_candidate(
        function_call("get_weather", {"city": "Paris"}),
        function_call("get_weather", {"city": "Oslo"}),
    ),
    usage_metadata=usage(40, 12, 52),
)
PARIS = ToolCall("gcall_resp-1_0", "get_weather", {"city": "Paris"})
OSLO = ToolCall("gcall_resp-1_1", "get_weather", {"city": "Oslo"})


async def test_parallel_function_calls_in_a_reply(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=PARALLEL))
    result = await provider.chat(request(tools=TOOLS))
    assert result.parts == (PARIS, OSLO)
    assert (result.text, result.finish_reason, result.usage) == (
        "",
        "tool_calls",
        Usage(40, 12, 52),
    )


async def test_parallel_function_calls_in_a_stream(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    # Gemini streams each call whole: one delta with all its arguments, done at once.
    server.queue(
        sse_reply(
            [
                response(
                    parts_candidate(function_call("get_weather", {"city": "Paris"}), finish=None)
                ),
                response(parts_candidate(function_call("get_weather", {"city": "Oslo"}))),
            ]
        )
    )
    events = await events_of(provider, request(tools=TOOLS))
    assert events == [
        ToolCallDelta(0, PARIS.id, "get_weather", '{"city": "Paris"}'),
        ToolCallDone(0, PARIS),
        ToolCallDelta(1, OSLO.id, "get_weather", '{"city": "Oslo"}'),
        ToolCallDone(1, OSLO),
        StreamEnd("tool_calls", Usage(), MODEL_VERSION),
    ]


@pytest.mark.parametrize("stream", MODES)
async def test_gemini_call_ids_and_calls_without_args(
    server: LoopbackServer, provider: GeminiProvider, stream: bool
) -> None:
    body = response(
        parts_candidate(
            {"text": "Checking."},
            function_call("get_weather", {"city": "Rome"}, id="fc-7f3a"),
            {"functionCall": {"name": "now"}},
        )
    )
    queue(server, stream, body)
    if stream:
        events = await events_of(provider, request(tools=TOOLS))
        assert [e for e in events if isinstance(e, ToolCallDone)] == [
            ToolCallDone(0, ToolCall("fc-7f3a", "get_weather", {"city": "Rome"})),
            ToolCallDone(1, ToolCall("gcall_resp-1_1", "now", {})),
        ]
    else:
        result = await provider.chat(request(tools=TOOLS))
        assert result.parts == (
            TextPart("Checking."),
            ToolCall("fc-7f3a", "get_weather", {"city": "Rome"}),
            ToolCall("gcall_resp-1_1", "now", {}),
        )
        assert result.finish_reason == "tool_calls"


async def test_generated_ids_differ_between_turns(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    second = {**PARALLEL, "responseId": "b9W4aJ-other/turn"}
    server.queue(Reply(body=PARALLEL), Reply(body=second))
    first_ids = [c.id for c in (await provider.chat(request(tools=TOOLS))).tool_calls]
    second_ids = [c.id for c in (await provider.chat(request(tools=TOOLS))).tool_calls]
    assert second_ids == ["gcall_b9W4aJ-otherturn_0", "gcall_b9W4aJ-otherturn_1"]
    assert not set(first_ids) & set(second_ids)


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize(
    ("args", "raw"),
    [
        pytest.param(["Paris"], '["Paris"]', id="a-list"),
        pytest.param('{"city": "Paris"}', '"{\\"city\\": \\"Paris\\"}"', id="a-string"),
    ],
)
async def test_arguments_that_are_not_an_object(
    server: LoopbackServer, provider: GeminiProvider, stream: bool, args: Any, raw: str
) -> None:
    queue(server, stream, response(parts_candidate(function_call("get_weather", args))))
    with pytest.raises(ToolArgumentsError) as info:
        await call(provider, request(tools=TOOLS), stream)
    err = info.value
    assert (err.raw_arguments, err.tool_name, err.provider, err.model) == (
        raw,
        "get_weather",
        "gemini",
        MODEL,
    )
    assert "the arguments of tool call 'get_weather' are not a JSON object" in str(err)


@pytest.mark.parametrize(
    ("finish", "ours"),
    [
        pytest.param("STOP", "tool_calls", id="STOP-with-a-call"),
        pytest.param("MAX_TOKENS", "length", id="MAX_TOKENS-with-a-call"),
        pytest.param("MALFORMED_FUNCTION_CALL", "tool_calls", id="MALFORMED-with-a-call"),
    ],
)
@pytest.mark.parametrize("stream", MODES)
async def test_finish_reasons_with_a_function_call(
    server: LoopbackServer, provider: GeminiProvider, finish: str, ours: str, stream: bool
) -> None:
    body = response(parts_candidate(function_call("get_weather", {"city": "Oslo"}), finish=finish))
    queue(server, stream, body)
    if stream:
        end = (await events_of(provider, request(tools=TOOLS)))[-1]
        # The event says what Gemini said (unknown stays unknown until the accumulator).
        expected = "unknown" if finish == "MALFORMED_FUNCTION_CALL" else ours
        assert isinstance(end, StreamEnd)
        assert end.finish_reason == expected
    else:
        assert (await provider.chat(request(tools=TOOLS))).finish_reason == ours


# ---------------------------------------------------------------------- thoughts and signatures

THINKING_REPLY = response(
    parts_candidate(
        {"text": "**Planning** I should look up both cities.", "thought": True},
        function_call("get_weather", {"city": "Paris"}, signature=SIG_CALL),
        function_call("get_weather", {"city": "Oslo"}),
    ),
    usage_metadata=usage(40, 12, 152, thoughts=100),
)
THINKING_PARTS = (
    ReasoningPart("**Planning** I should look up both cities.", origin="gemini"),
    ReasoningPart("", SIG_CALL, origin="gemini"),
    PARIS,
    OSLO,
)
#: The model turn those parts become on the next request: the signature on its call.
THINKING_TURN = {
    "role": "model",
    "parts": [
        {"text": "**Planning** I should look up both cities.", "thought": True},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": SIG_CALL,
        },
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
    ],
}


async def test_thoughts_and_a_call_signature_come_back_in_order(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=THINKING_REPLY))
    result = await provider.chat(request(tools=TOOLS, reasoning=ReasoningConfig(effort="low")))
    assert result.parts == THINKING_PARTS
    assert result.reasoning == "**Planning** I should look up both cities."
    assert result.usage == Usage(40, 112, 152, reasoning_tokens=100)
    assert result.finish_reason == "tool_calls"


async def test_a_signed_call_round_trips_verbatim(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=THINKING_REPLY), Reply(body=response(candidate("Both mild."))))
    first = await provider.chat(request(tools=TOOLS))
    history = (
        USER,
        first.message,
        Message("tool", [ToolResult(PARIS.id, "18 C"), ToolResult(OSLO.id, "9 C")]),
    )
    assert (await provider.chat(request(*history, tools=TOOLS))).text == "Both mild."
    assert server.requests[1].json["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
        THINKING_TURN,
        {
            "role": "user",
            "parts": [
                result_part("get_weather", "18 C"),
                result_part("get_weather", "9 C"),
            ],
        },
    ]


async def test_a_streamed_thinking_reply_round_trips(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    # Summaries arrive over several chunks; the text's signature comes last on an empty part.
    chunks = [
        response(parts_candidate({"text": "Thinking about", "thought": True}, finish=None)),
        response(parts_candidate({"text": " Paris.", "thought": True}, finish=None)),
        response(parts_candidate({"text": "It is "}, finish=None)),
        response(parts_candidate({"text": "18 C."}, finish=None)),
        response(
            parts_candidate({"text": "", "thoughtSignature": SIG_END}),
            usage_metadata=usage(10, 5, 45, thoughts=30),
        ),
    ]
    server.queue(sse_reply(chunks))
    events = await events_of(provider, request(reasoning=ReasoningConfig(budget_tokens=512)))
    assert events == [
        ReasoningDelta("Thinking about", index=0),
        ReasoningDelta(" Paris.", index=0),
        TextDelta("It is "),
        TextDelta("18 C."),
        ReasoningDelta("", SIG_END, index=1),
        StreamEnd("stop", Usage(10, 35, 45, reasoning_tokens=30), MODEL_VERSION),
    ]
    rt = _runtime(server)
    server.queue(sse_reply(chunks), Reply(body=response(candidate("ok"))))
    try:
        async with rt.stream(model=MODEL, prompt="Paris?", reasoning={"budget_tokens": 512}) as s:
            assert "".join([d async for d in s]) == "It is 18 C."
        assert s.completion is not None
        assert s.completion.reasoning == "Thinking about Paris."
        await rt.generate(
            model=MODEL, messages=[{"role": "user", "content": "Paris?"}, s.completion.message]
        )
    finally:
        await rt.aclose()
    assert server.requests[-1].json["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Thinking about Paris.", "thought": True},
            {"text": "It is 18 C."},
            {"text": "", "thoughtSignature": SIG_END},
        ],
    }


async def test_signed_summaries_and_signed_text_keep_their_own_parts(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    body = response(
        parts_candidate(
            {"text": "First idea.", "thought": True},
            {"text": "Second idea.", "thought": True, "thoughtSignature": SIG_THOUGHT},
            {"text": "Answer: 4", "thoughtSignature": SIG_END},
        )
    )
    server.queue(Reply(body=body))
    result = await provider.chat(request())
    assert result.parts == (
        ReasoningPart("First idea.", origin="gemini"),
        ReasoningPart("Second idea.", SIG_THOUGHT, origin="gemini"),
        ReasoningPart("", SIG_END, origin="gemini"),
        TextPart("Answer: 4"),
    )
    turn = body_of(provider, request(USER, result.message))["contents"][1]
    assert turn["parts"] == body["candidates"][0]["content"]["parts"]


# ---------------------------------------------------------------------- portable history


def test_another_vendors_history_encodes_for_gemini(provider: GeminiProvider) -> None:
    # An OpenAI-shaped conversation (tool call ids Gemini never saw, no tool names on the
    # results) plus Anthropic reasoning: results matched by name through the calls' ids,
    # the foreign ids kept so parallel calls stay paired, foreign reasoning dropped.
    messages = normalize_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "reasoning",
                        "text": "hmm",
                        "signature": "EqQB",
                        "origin": "anthropic",
                    },
                    {"type": "reasoning", "redacted": "EmwK", "origin": "anthropic"},
                ],
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_01X",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc", "content": "18 C"},
            {"role": "tool", "tool_call_id": "toolu_01X", "content": "no data"},
            {
                "role": "assistant",
                "content": [{"type": "reasoning", "text": "x", "origin": "openai"}],
            },
            {"role": "user", "content": "Thanks"},
        ]
    )
    body = body_of(provider, request(*messages, tools=TOOLS))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
        {
            "role": "model",
            "parts": [
                function_call("get_weather", {"city": "Paris"}, id="call_abc"),
                function_call("get_weather", {"city": "Oslo"}, id="toolu_01X"),
            ],
        },
        {
            "role": "user",
            "parts": [
                result_part("get_weather", "18 C", "call_abc"),
                result_part("get_weather", "no data", "toolu_01X"),
            ],
        },
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    sent = json.dumps(body)
    assert "EqQB" not in sent
    assert "EmwK" not in sent


def test_error_results_and_named_results(provider: GeminiProvider) -> None:
    messages = (
        USER,
        Message("assistant", [ToolCall("c1", "get_weather", {"city": "Nowhere"})]),
        Message("tool", [ToolResult("c1", "unknown city", is_error=True)]),
        Message("tool", [ToolResult("other", "42", name="lookup")]),
    )
    assert body_of(provider, request(*messages))["contents"][2]["parts"] == [
        result_part("get_weather", "unknown city", "c1", key="error"),
        result_part("lookup", "42"),
    ]


async def test_a_result_gemini_cannot_match_is_refused(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    messages = (USER, Message("tool", [ToolResult("call_9", "18 C")]))
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(request(*messages))
    assert str(info.value) == (
        "messages[1]: the tool result for call 'call_9' names no tool and no earlier assistant "
        "message made that call; Gemini matches results by function name: keep the assistant "
        "turn with the call, or give the result's name"
    )
    assert server.requests == []


@pytest.mark.parametrize(
    ("capabilities", "signature"),
    [
        pytest.param({"reasoning": "effort"}, SIGNATURE_SENTINEL, id="level-model"),
        pytest.param({"reasoning": "budget"}, None, id="budget-model"),
        pytest.param({}, None, id="undeclared"),
    ],
)
def test_unsigned_foreign_calls_get_the_sentinel_on_models_that_validate(
    provider: GeminiProvider, capabilities: dict[str, Any], signature: str | None
) -> None:
    messages = (
        USER,
        Message(
            "assistant",
            [
                ToolCall("call_1", "get_weather", {"city": "Paris"}),
                ToolCall("call_2", "get_weather", {"city": "Oslo"}),
            ],
        ),
        Message("tool", [ToolResult("call_1", "18 C"), ToolResult("call_2", "9 C")]),
    )
    parts = body_of(provider, request(*messages, capabilities=capabilities))["contents"][1]["parts"]
    assert parts[0].get("thoughtSignature") == signature
    assert "thoughtSignature" not in parts[1]  # only the first call of a step carries one
    # A turn Gemini signed itself is sent as it came, on every model.
    signed = (USER, Message("assistant", THINKING_PARTS))
    turn = body_of(provider, request(*signed, capabilities=capabilities))["contents"][1]
    assert turn == THINKING_TURN


async def test_a_tool_loop_through_the_runtime(server: LoopbackServer) -> None:
    # The issue's own example: generate with tools, append result.message and the tool
    # message in OpenAI's shape, generate again; the runtime lets every part kind through.
    server.queue(Reply(body=THINKING_REPLY), Reply(body=response(candidate("Mild in both."))))
    rt = _runtime(server, tools=True, reasoning="budget")
    tools = [{"name": "get_weather", "description": "Current weather", "parameters": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
    try:
        result = await rt.generate(
            model=MODEL, messages=messages, tools=tools, tool_choice="auto", reasoning="low"
        )
        assert (result.finish_reason, result.tool_calls) == ("tool_calls", (PARIS, OSLO))
        messages += [result.message] + [
            {"role": "tool", "tool_call_id": call.id, "content": f"{call.arguments['city']}: 9 C"}
            for call in result.tool_calls
        ]
        final = await rt.generate(model=MODEL, messages=messages, tools=tools)
    finally:
        await rt.aclose()
    assert final.text == "Mild in both."
    first, second = (r.json for r in server.requests)
    assert first["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": EFFORT_BUDGETS["low"],
        "includeThoughts": True,
    }
    assert second["contents"][1:] == [
        THINKING_TURN,
        {
            "role": "user",
            "parts": [
                result_part("get_weather", "Paris: 9 C"),
                result_part("get_weather", "Oslo: 9 C"),
            ],
        },
    ]
