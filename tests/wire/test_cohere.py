"""CohereProvider against a loopback server: the exact request, replies, streams and faults."""

from __future__ import annotations

import json
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Catalog, ModelConfig, ProviderConfig, RuntimeSettings
from runtime.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    LLMRuntimeError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    RuntimeClosedError,
    ServerError,
    ToolArgumentsError,
)
from runtime.loader import load_catalog
from runtime.providers.cohere_provider import CohereProvider
from runtime.service import LLMRuntime
from runtime.types import (
    ChatRequest,
    Message,
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
    Usage,
)
from tests.loopback import LoopbackServer, Recorded, Reply, sse
from tests.wire.anthropic_fakes import FastLoopbackServer
from tests.wire.cohere_fakes import (
    MODEL,
    REPLY_ID,
    chat_body,
    error_reply,
    stream_events,
    stream_reply,
    tool_call,
    usage,
)

CANARY = "co-canary-key-0042"
ROOT = Path(__file__).resolve().parents[2]
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with FastLoopbackServer() as srv:
        yield srv


@pytest.fixture
async def provider(server: LoopbackServer) -> AsyncIterator[CohereProvider]:
    p = CohereProvider(api_key=CANARY, base_url=server.url)
    yield p
    await p.aclose()


def req(*messages: tuple[str, str], **kw: Any) -> ChatRequest:
    msgs = tuple(Message(role, text) for role, text in messages)  # type: ignore[arg-type]
    return ChatRequest(model=MODEL, messages=msgs or (Message("user", "Hi"),), **kw)


async def events(provider: CohereProvider, request: ChatRequest) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    async for event in provider.stream_chat(request):
        assert not any(isinstance(e, StreamEnd) for e in out), "an event after StreamEnd"
        out.append(event)
    assert isinstance(out[-1], StreamEnd)
    return out


async def call(provider: CohereProvider, request: ChatRequest, *, stream: bool) -> None:
    if stream:
        await events(provider, request)
    else:
        await provider.chat(request)


async def drain(provider: CohereProvider, request: ChatRequest, received: list[str]) -> None:
    """Stream ``request``, appending each delta to ``received``; a StreamEnd is a failure."""
    async for event in provider.stream_chat(request):
        assert not isinstance(event, StreamEnd)
        if isinstance(event, TextDelta):
            received.append(event.text)


def only(server: LoopbackServer) -> Recorded:
    assert len(server.requests) == 1
    return server.requests[0]


def assert_no_canary(exc: BaseException) -> None:
    printed = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
    assert CANARY not in printed


# --------------------------------------------------------------------------- the request

USER_HI = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(req(), {"messages": [USER_HI]}, id="plain"),
        pytest.param(
            req(("system", "Be terse."), ("user", "Hi"), max_tokens=50, temperature=0.0),
            {
                "messages": [{"role": "system", "content": "Be terse."}, USER_HI],
                "max_tokens": 50,
                "temperature": 0.0,
            },
            id="system-max-tokens-zero-temperature",
        ),
        pytest.param(
            req(("user", "Hi"), ("assistant", "Hello."), ("user", "Again")),
            {
                "messages": [
                    USER_HI,
                    {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "Again"},
                ],
            },
            id="multi-turn",
        ),
        pytest.param(
            req(max_tokens=9, max_tokens_param="max_completion_tokens"),
            {"messages": [USER_HI], "max_tokens": 9},
            id="wire-name-is-always-max_tokens",
        ),
        pytest.param(
            req(params={"p": 0.9, "k": 40, "stop_sequences": ["END"], "seed": 7}),
            {"messages": [USER_HI], "p": 0.9, "k": 40, "stop_sequences": ["END"], "seed": 7},
            id="params-merged",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_request_sent(
    provider: CohereProvider,
    server: LoopbackServer,
    request_: ChatRequest,
    expected: dict[str, Any],
    stream: bool,
) -> None:
    server.queue(stream_reply() if stream else Reply(body=chat_body()))
    await call(provider, request_, stream=stream)
    sent = only(server)
    assert (sent.method, sent.path, sent.query) == ("POST", "/v2/chat", {})
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == ("text/event-stream" if stream else "application/json")
    assert sent.json == {"model": MODEL, **expected, "stream": stream}


def test_describe_request_matches_and_the_default_base_url() -> None:
    p = CohereProvider(api_key=CANARY)
    described = p.describe_request(req(), stream=True)
    assert described["url"] == "https://api.cohere.com/v2/chat"
    assert described["json"] == {"model": MODEL, "messages": [USER_HI], "stream": True}
    assert described["headers"]["accept"] == "text/event-stream"


async def test_no_key_sends_no_authorization(server: LoopbackServer) -> None:
    p = CohereProvider(base_url=server.url, headers={"x-gateway": "g"})
    server.queue(Reply(body=chat_body()))
    try:
        await p.chat(req())
    finally:
        await p.aclose()
    assert "authorization" not in only(server).headers
    assert only(server).headers["x-gateway"] == "g"


@pytest.mark.parametrize("key", ["model", "messages", "stream"])
def test_params_may_not_replace_what_the_runtime_sets(key: str) -> None:
    p = CohereProvider(api_key=CANARY)
    with pytest.raises(InvalidRequestError, match=f"parameter {key!r}"):
        p.describe_request(req(params={key: "x"}))


def test_unknown_option_is_refused_at_load(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n  co:\n    class: runtime.providers.cohere_provider.CohereProvider\n"
        "    options:\n      max_conections: 3\n",
        encoding="utf-8",
    )
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  c: {provider: co}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalog(providers, models)
    assert f"{providers}:5:7: providers.co.options.max_conections: unknown option" in str(
        info.value
    )


def test_the_bundled_rows_load() -> None:
    catalog = load_catalog(ROOT / "providers.yaml", ROOT / "models.yaml")
    row = catalog.providers["cohere"]
    assert row.api_key_env == "CO_API_KEY"
    assert row.base_url == "https://api.cohere.com"
    model = catalog.models["command-a"]
    assert (model.provider, model.provider_model) == ("cohere", "command-a-03-2025")


# --------------------------------------------------------------------------- replies


async def test_reply_parsed(provider: CohereProvider, server: LoopbackServer) -> None:
    server.queue(Reply(body=chat_body("Hello there.", thinking="The user greets me.")))
    response = await provider.chat(req())
    assert response.text == "Hello there."
    assert response.finish_reason == "stop"
    assert response.usage == Usage(prompt_tokens=12, completion_tokens=6, total_tokens=18)
    assert response.id == REPLY_ID
    assert response.parts[0] == ReasoningPart("The user greets me.", origin="cohere")
    assert response.parts[1] == TextPart("Hello there.")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("SOMETHING_NEW", "unknown"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_finish_reasons(
    provider: CohereProvider, server: LoopbackServer, raw: str, expected: str, stream: bool
) -> None:
    if stream:
        server.queue(stream_reply(stream_events(finish_reason=raw)))
        end = (await events(provider, req()))[-1]
        assert isinstance(end, StreamEnd)
        assert end.finish_reason == expected
    else:
        server.queue(Reply(body=chat_body(finish_reason=raw)))
        assert (await provider.chat(req())).finish_reason == expected


@pytest.mark.parametrize(
    ("usage_", "expected"),
    [
        (usage((30, 4), (10, 4)), Usage(30, 4)),
        (usage(None, (10, 4)), Usage(10, 4)),
        ({}, Usage()),
    ],
    ids=["tokens-win", "billed-units-when-no-tokens", "none"],
)
async def test_usage(
    provider: CohereProvider, server: LoopbackServer, usage_: dict[str, Any], expected: Usage
) -> None:
    server.queue(Reply(body=chat_body(usage_=usage_)), stream_reply(stream_events(usage_=usage_)))
    assert (await provider.chat(req())).usage == expected
    end = (await events(provider, req()))[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage == expected


async def test_stream_deltas(provider: CohereProvider, server: LoopbackServer) -> None:
    server.queue(stream_reply())
    got = await events(provider, req())
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["Hel", "lo", "!"]
    assert got[-1] == StreamEnd("stop", Usage(12, 6), None, REPLY_ID)


async def test_stream_without_event_names(provider: CohereProvider, server: LoopbackServer) -> None:
    """The ``type`` inside the data names the event; an ``event:`` line is not needed."""
    server.queue(Reply(chunks=sse((None, data) for _, data in stream_events())))
    got = await events(provider, req())
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "Hello!"


# --------------------------------------------------------------------------- tools


async def test_tools_sent_and_results_encoded(
    provider: CohereProvider, server: LoopbackServer
) -> None:
    history = (
        Message("user", "Weather in Paris?"),
        Message("assistant", [ToolCall("call_1", "get_weather", {"city": "Paris"})]),
        Message("tool", [ToolResult("call_1", '{"temp": 21}', name="get_weather")]),
    )
    server.queue(Reply(body=chat_body()))
    await provider.chat(
        ChatRequest(model=MODEL, messages=history, tools=(WEATHER,), tool_choice="required")
    )
    assert only(server).json == {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [tool_call("call_1", "get_weather", '{"city":"Paris"}')],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER.schema,
                    "description": "The weather in a city.",
                },
            }
        ],
        "tool_choice": "REQUIRED",
        "stream": False,
    }


@pytest.mark.parametrize(
    ("choice", "names", "wire"),
    [
        ("auto", ["get_weather", "other"], None),
        ("none", ["get_weather", "other"], "NONE"),
        ("other", ["other"], "REQUIRED"),
    ],
)
def test_tool_choice(choice: str, names: list[str], wire: str | None) -> None:
    p = CohereProvider(api_key=CANARY)
    request = req(tools=(WEATHER, Tool("other")), tool_choice=choice, parallel_tool_calls=True)
    body = p.describe_request(request)["json"]
    assert [t["function"]["name"] for t in body["tools"]] == names
    assert body.get("tool_choice") == wire
    assert "parallel_tool_calls" not in body


def test_parallel_tool_calls_false_is_refused() -> None:
    p = CohereProvider(api_key=CANARY)
    with pytest.raises(InvalidRequestError, match="cannot be limited to one tool call per turn"):
        p.describe_request(req(tools=(WEATHER,), parallel_tool_calls=False))


async def test_tool_calls_in_a_reply(provider: CohereProvider, server: LoopbackServer) -> None:
    calls = [tool_call("c1", "get_weather", '{"city": "Paris"}'), tool_call("c2", "other", "")]
    server.queue(Reply(body=chat_body(None, finish_reason="TOOL_CALL", calls=calls)))
    response = await provider.chat(req(tools=(WEATHER,)))
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert response.tool_calls == (
        ToolCall("c1", "get_weather", {"city": "Paris"}),
        ToolCall("c2", "other", {}),
    )


async def test_tool_calls_in_a_stream(provider: CohereProvider, server: LoopbackServer) -> None:
    calls = [("c1", "get_weather", ['{"ci', 'ty": "Par', 'is"}']), ("c2", "other", ["{}"])]
    server.queue(stream_reply(stream_events((), calls=calls, finish_reason="TOOL_CALL")))
    got = await events(provider, req(tools=(WEATHER,)))
    deltas = [e for e in got if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(0, "c1", "get_weather", "")
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Paris"}'
    done = [e for e in got if isinstance(e, ToolCallDone)]
    assert done == [
        ToolCallDone(0, ToolCall("c1", "get_weather", {"city": "Paris"})),
        ToolCallDone(1, ToolCall("c2", "other", {})),
    ]
    assert isinstance(got[-1], StreamEnd)
    assert got[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_tool_arguments_that_are_not_an_object(
    provider: CohereProvider, server: LoopbackServer, stream: bool
) -> None:
    if stream:
        server.queue(stream_reply(stream_events((), calls=[("c1", "get_weather", ["[1, 2]"])])))
    else:
        calls = [tool_call("c1", "get_weather", "[1, 2]")]
        server.queue(Reply(body=chat_body(None, finish_reason="TOOL_CALL", calls=calls)))
    with pytest.raises(ToolArgumentsError) as info:
        await call(provider, req(tools=(WEATHER,)), stream=stream)
    assert info.value.raw_arguments == "[1, 2]"
    assert info.value.provider == "cohere"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (400, "invalid request: message must be at least 1 token long", BadRequestError),
        (
            400,
            "too many tokens: total number of tokens in the prompt cannot exceed 4081",
            ContextLengthExceededError,
        ),
        (401, "invalid api token", AuthenticationError),
        (498, "invalid api token", AuthenticationError),
        (402, "Please add a payment method to continue", BadRequestError),
        (403, "forbidden", PermissionDeniedError),
        (404, "model 'command-x' not found", NotFoundError),
        (
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute",
            RateLimitError,
        ),
        (500, "internal server error", ServerError),
        (503, "service unavailable", ServerError),
        (504, "gateway timeout", ServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_error_statuses(
    provider: CohereProvider,
    server: LoopbackServer,
    status: int,
    message: str,
    kind: type[ProviderError],
    stream: bool,
) -> None:
    server.queue(error_reply(status, message, headers={"retry-after": "2"}))
    with pytest.raises(kind) as info:
        await call(provider, req(), stream=stream)
    assert type(info.value) is kind
    assert message in str(info.value)
    assert info.value.status_code == status
    assert info.value.provider == "cohere"
    if kind is RateLimitError:
        assert info.value.retry_after == 2.0


@pytest.mark.parametrize("finish", ["ERROR", "TIMEOUT"])
async def test_error_finish_in_a_200_reply(
    provider: CohereProvider, server: LoopbackServer, finish: str
) -> None:
    server.queue(Reply(body=chat_body(finish_reason=finish)))
    with pytest.raises(ServerError) as info:
        await provider.chat(req())
    assert str(info.value).endswith(f"the reply reported an error: finish_reason {finish}")
    assert info.value.status_code is None


@pytest.mark.parametrize(
    ("end", "text"),
    [
        ({"finish_reason": "ERROR", "error": "generation failed"}, "generation failed"),
        ({"finish_reason": "TIMEOUT"}, "finish_reason TIMEOUT"),
    ],
)
async def test_error_inside_a_stream(
    provider: CohereProvider, server: LoopbackServer, end: dict[str, Any], text: str
) -> None:
    server.queue(stream_reply(stream_events(end=end)))
    received: list[str] = []
    with pytest.raises(ServerError) as info:
        await drain(provider, req(), received)
    assert received == ["Hel", "lo", "!"]
    assert f"the stream reported an error: {text}" in str(info.value)


async def test_stream_ended_before_message_end(
    provider: CohereProvider, server: LoopbackServer
) -> None:
    server.queue(stream_reply(stream_events()[:-1]))
    with pytest.raises(ProviderConnectionError, match="before its message-end event"):
        await events(provider, req())


async def test_stream_cut_mid_way(provider: CohereProvider, server: LoopbackServer) -> None:
    server.queue(stream_reply(cut_after=3))
    with pytest.raises(ProviderConnectionError):
        await events(provider, req())


@pytest.mark.parametrize(
    "body",
    [{"id": "x", "finish_reason": "COMPLETE"}, {"message": {"content": "text"}}, [1]],
    ids=["no-message", "content-not-a-list", "not-an-object"],
)
async def test_malformed_replies(
    provider: CohereProvider, server: LoopbackServer, body: Any
) -> None:
    server.queue(Reply(body=body))
    with pytest.raises(MalformedResponseError):
        await provider.chat(req())


async def test_a_stream_event_that_is_not_json(
    provider: CohereProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=sse([("content-delta", f"{{{CANARY}")])))
    with pytest.raises(MalformedResponseError) as info:
        await events(provider, req())
    assert_no_canary(info.value)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_the_key_never_leaks(
    provider: CohereProvider, server: LoopbackServer, stream: bool
) -> None:
    server.queue(error_reply(401, f"invalid api token {CANARY}"))
    with pytest.raises(AuthenticationError) as info:
        await call(provider, req(), stream=stream)
    assert_no_canary(info.value)
    assert CANARY not in repr(provider)
    assert CANARY not in json.dumps(provider.describe_request(req())["json"])


async def test_closed_provider_refuses(server: LoopbackServer) -> None:
    p = CohereProvider(api_key=CANARY, base_url=server.url)
    await p.aclose()
    with pytest.raises(RuntimeClosedError):
        await p.chat(req())


# --------------------------------------------------------------------------- the runtime


async def test_through_the_runtime(server: LoopbackServer) -> None:
    catalog = Catalog(
        providers={
            "cohere": ProviderConfig.model_validate(
                {
                    "name": "cohere",
                    "class": "runtime.providers.cohere_provider.CohereProvider",
                    "api_key_env": "CO_API_KEY",
                    "base_url": server.url,
                }
            )
        },
        models={
            "command-a": ModelConfig(
                id="command-a",
                provider="cohere",
                provider_model=MODEL,
                retry={"max_attempts": 1},
                capabilities={"tools": True},
            )
        },
        settings=RuntimeSettings(),
    )
    rt = LLMRuntime(catalog, environ={"CO_API_KEY": CANARY})
    server.queue(Reply(body=chat_body("Bonjour.")), stream_reply())
    try:
        completion = await rt.generate(model="command-a", prompt="Hi")
        streamed = [chunk async for chunk in rt.stream(model="command-a", prompt="Hi")]
        server.queue(error_reply(401, f"invalid api token {CANARY}"))
        with pytest.raises(LLMRuntimeError) as info:
            await rt.generate(model="command-a", prompt="Hi")
    finally:
        await rt.aclose()
    assert completion.text == "Bonjour."
    assert completion.usage.prompt_tokens == 12
    assert "".join(streamed) == "Hello!"
    assert_no_canary(info.value)
