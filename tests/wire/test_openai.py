"""OpenAIProvider (wire) and OpenAISDKProvider against loopback servers speaking Chat Completions.

What is sent is asserted exactly for the wire provider; how replies, streams and every
failure are read is asserted for both providers (the same table runs against each).
"""

from __future__ import annotations

import email.utils
import importlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx2
import openai
import pytest

from runtime.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilteredError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    RuntimeClosedError,
    ServerError,
)
from runtime.providers.base import ChatProvider
from runtime.providers.openai_provider import OpenAIProvider
from runtime.providers.openai_sdk_provider import OpenAISDKProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta, Usage
from tests.loopback import LoopbackServer, Reply, sse
from tests.wire.openai_fakes import (
    CANARY,
    MODEL,
    chunk,
    completion,
    error_body,
    stream_events,
    stream_reply,
    usage_chunk,
)

PROVIDERS = [
    pytest.param(OpenAIProvider, id="wire"),
    pytest.param(OpenAISDKProvider, id="sdk"),
]

USER = (Message("user", "Say hello"),)
FULL_USAGE = Usage(
    prompt_tokens=12, completion_tokens=5, total_tokens=17, cached_tokens=4, reasoning_tokens=2
)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    # One server per module: stopping one costs its 0.5 s shutdown poll.
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> Iterator[LoopbackServer]:
    shared_server.requests.clear()
    yield shared_server
    assert not shared_server._queue, "a scripted reply was not used"
    shared_server._queue.clear()


def _make(cls: type[ChatProvider], server: LoopbackServer, **kwargs: Any) -> ChatProvider:
    kwargs.setdefault("api_key", CANARY)
    provider = cls(base_url=f"{server.url}/v1", **kwargs)
    provider.provider_name = "openai"
    return provider


@pytest.fixture
async def wire(server: LoopbackServer) -> AsyncIterator[ChatProvider]:
    provider = _make(OpenAIProvider, server)
    yield provider
    await provider.aclose()


@pytest.fixture(params=PROVIDERS)
async def any_provider(
    request: pytest.FixtureRequest, server: LoopbackServer
) -> AsyncIterator[ChatProvider]:
    provider = _make(request.param, server)
    yield provider
    await provider.aclose()


async def collect(
    provider: ChatProvider, request: ChatRequest, texts: list[str] | None = None
) -> tuple[list[str], StreamEnd]:
    """Run a stream; ``texts`` (if given) receives deltas as they arrive, even on failure."""
    texts = [] if texts is None else texts
    ends: list[StreamEnd] = []
    async for event in provider.stream_chat(request):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            assert isinstance(event, StreamEnd)
            ends.append(event)
    assert len(ends) == 1
    return texts, ends[0]


def assert_no_secret(err: BaseException, provider: ChatProvider) -> None:
    assert CANARY not in str(err)
    assert CANARY not in repr(err)
    assert CANARY not in repr(provider)
    if isinstance(err, ProviderError):
        assert CANARY not in err.message


# --------------------------------------------------------------------------- what is sent


@pytest.mark.parametrize(
    ("request_", "stream", "body"),
    [
        pytest.param(
            ChatRequest(model=MODEL, messages=USER),
            False,
            {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]},
            id="plain",
        ),
        pytest.param(
            ChatRequest(
                model=MODEL,
                messages=(
                    Message("system", "Be brief."),
                    Message("user", "Hi"),
                    Message("assistant", "Hello!"),
                    Message("user", "Again"),
                ),
                temperature=0.3,
                max_tokens=50,
            ),
            False,
            {
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Again"},
                ],
                "temperature": 0.3,
                "max_tokens": 50,
            },
            id="chat",
        ),
        pytest.param(
            ChatRequest(model=MODEL, messages=USER, temperature=0.0),
            True,
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Say hello"}],
                "temperature": 0.0,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="stream",
        ),
        pytest.param(
            ChatRequest(
                model="o4-mini",
                messages=USER,
                max_tokens=300,
                max_tokens_param="max_completion_tokens",
            ),
            False,
            {
                "model": "o4-mini",
                "messages": [{"role": "user", "content": "Say hello"}],
                "max_completion_tokens": 300,
            },
            id="max_completion_tokens",
        ),
        pytest.param(
            ChatRequest(
                model=MODEL,
                messages=USER,
                temperature=0.5,
                max_tokens=20,
                params={"top_p": 0.9, "seed": 7, "stop": ["\n"], "reasoning_effort": "low"},
            ),
            False,
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Say hello"}],
                "temperature": 0.5,
                "max_tokens": 20,
                "top_p": 0.9,
                "seed": 7,
                "stop": ["\n"],
                "reasoning_effort": "low",
            },
            id="params-merged",
        ),
    ],
)
async def test_wire_request_is_exact(
    wire: ChatProvider,
    server: LoopbackServer,
    request_: ChatRequest,
    stream: bool,
    body: dict[str, Any],
) -> None:
    if stream:
        server.queue(stream_reply())
        await collect(wire, request_)
    else:
        server.queue(Reply(body=completion()))
        await wire.chat(request_)
    [got] = server.requests
    assert (got.method, got.path, got.query) == ("POST", "/v1/chat/completions", {})
    assert got.json == body
    assert got.headers["authorization"] == f"Bearer {CANARY}"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["accept"] == ("text/event-stream" if stream else "application/json")
    assert "openai-organization" not in got.headers
    # describe_request is the same preparation, without sending.
    described = wire.describe_request(request_, stream=stream)
    assert described["method"] == "POST"
    assert described["url"] == f"{server.url}/v1/chat/completions"
    assert described["json"] == body
    assert {k: got.headers[k] for k in described["headers"]} == described["headers"]


async def test_completion_sends_one_user_message(
    wire: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion("Hi!")))
    text = await wire.completion("Hello", MODEL, 0.2, 10)
    assert text == "Hi!"
    assert server.requests[0].json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.2,
        "max_tokens": 10,
    }


@pytest.mark.parametrize("cls", PROVIDERS)
async def test_no_key_sends_no_authorization(
    cls: type[ChatProvider], server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would read these; our providers take everything from providers.yaml.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    provider = _make(cls, server, api_key=None)
    try:
        server.queue(Reply(body=completion()))
        await provider.chat(ChatRequest(model="llama3", messages=USER))
        sent = server.requests[0].headers
        for name in ("authorization", "openai-organization", "openai-project"):
            assert name not in sent, name
        described = provider.describe_request(ChatRequest(model="llama3", messages=USER))
        assert "authorization" not in described["headers"]
    finally:
        await provider.aclose()


async def test_options_send_organization_project_and_extra_headers(server: LoopbackServer) -> None:
    provider = _make(
        OpenAIProvider,
        server,
        organization="org-1",
        project="proj-2",
        headers={"X-Trace": "abc"},
        max_connections=4,
        stream_usage=False,
    )
    try:
        server.queue(stream_reply(usage=None))
        _, end = await collect(provider, ChatRequest(model=MODEL, messages=USER))
        got = server.requests[0]
        assert got.headers["openai-organization"] == "org-1"
        assert got.headers["openai-project"] == "proj-2"
        assert got.headers["x-trace"] == "abc"
        assert "stream_options" not in got.json  # stream_usage: false
        assert got.json["stream"] is True
        assert end.usage == Usage()
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        pytest.param(None, "https://api.openai.com/v1/chat/completions", id="default"),
        pytest.param("http://h:1/v1/", "http://h:1/v1/chat/completions", id="trailing-slash"),
        pytest.param("http://h:1/v1//", "http://h:1/v1/chat/completions", id="slashes"),
        pytest.param("http://h:1", "http://h:1/chat/completions", id="no-path"),
    ],
)
async def test_base_url_forms(base_url: str | None, url: str) -> None:
    provider = OpenAIProvider(api_key=CANARY, base_url=base_url)
    try:
        assert provider.describe_request(ChatRequest(model=MODEL, messages=USER))["url"] == url
    finally:
        await provider.aclose()


async def test_trailing_slash_base_url_reaches_the_right_path(server: LoopbackServer) -> None:
    provider = OpenAIProvider(api_key=CANARY, base_url=f"{server.url}/v1/")
    try:
        server.queue(Reply(body=completion()))
        await provider.chat(ChatRequest(model=MODEL, messages=USER))
        assert server.requests[0].path == "/v1/chat/completions"
    finally:
        await provider.aclose()


@pytest.mark.parametrize("cls", PROVIDERS)
@pytest.mark.parametrize("key", ["model", "messages", "stream"])
async def test_params_may_not_override_runtime_keys(
    cls: type[ChatProvider], key: str, server: LoopbackServer
) -> None:
    provider = _make(cls, server)
    try:
        request = ChatRequest(model=MODEL, messages=USER, params={key: "x"})
        with pytest.raises(InvalidRequestError, match=f"parameter '{key}' cannot be passed"):
            await provider.chat(request)
        with pytest.raises(InvalidRequestError, match=f"parameter '{key}' cannot be passed"):
            await collect(provider, request)
        assert server.requests == []
    finally:
        await provider.aclose()


@pytest.mark.parametrize("cls", PROVIDERS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"organisation": "x"},
            "unknown option 'organisation' (did you mean 'organization'?)",
            id="unknown",
        ),
        pytest.param({"max_connections": 0}, "options.max_connections: must be >= 1", id="pool"),
        pytest.param({"headers": {"a": 1}}, "options.headers.a: must be a string", id="headers"),
        pytest.param(
            {"stream_usage": "no"}, "options.stream_usage: must be true or false", id="usage"
        ),
    ],
)
def test_bad_options_are_config_errors(
    cls: type[ChatProvider], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        cls(api_key=CANARY, **options)


@pytest.mark.parametrize("cls", PROVIDERS)
async def test_use_after_aclose_raises(cls: type[ChatProvider], server: LoopbackServer) -> None:
    provider = _make(cls, server)
    await provider.aclose()
    with pytest.raises(RuntimeClosedError):
        await provider.chat(ChatRequest(model=MODEL, messages=USER))


# --------------------------------------------------------------------------- how replies read


async def test_chat_reads_text_usage_and_model(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion("Hello there.", model="gpt-4o-mini-2024-07-18")))
    response = await any_provider.chat(ChatRequest(model=MODEL, messages=USER))
    assert response.text == "Hello there."
    assert response.finish_reason == "stop"
    assert response.usage == FULL_USAGE
    assert response.model == "gpt-4o-mini-2024-07-18"


async def test_chat_null_content_is_empty_text(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion(None, finish_reason="length", usage=None)))
    response = await any_provider.chat(ChatRequest(model=MODEL, messages=USER))
    assert (response.text, response.finish_reason, response.usage) == ("", "length", Usage())


async def test_stream_reads_deltas_usage_and_model(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(stream_reply(texts=("Hel", "lo", "!")))
    texts, end = await collect(any_provider, ChatRequest(model=MODEL, messages=USER))
    assert texts == ["Hel", "lo", "!"]
    assert end == StreamEnd("stop", FULL_USAGE, MODEL, "chatcmpl-123")


async def test_stream_follows_only_the_first_choice(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    second = chunk("other")
    second["choices"][0]["index"] = 1
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk("one")),
                    (None, second),
                    (None, chunk(finish_reason="stop")),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    texts, end = await collect(
        any_provider, ChatRequest(model=MODEL, messages=USER, params={"n": 2})
    )
    assert texts == ["one"]
    assert end.finish_reason == "stop"


@pytest.mark.parametrize(
    ("vendor", "ours"),
    [
        pytest.param("stop", "stop", id="stop"),
        pytest.param("length", "length", id="length"),
        pytest.param("content_filter", "content_filter", id="content_filter"),
        pytest.param("tool_calls", "tool_calls", id="tool_calls"),
        pytest.param("function_call", "tool_calls", id="function_call"),
        pytest.param("eos_token", "unknown", id="other"),
        pytest.param(None, "unknown", id="none"),
    ],
)
async def test_finish_reasons(
    any_provider: ChatProvider, server: LoopbackServer, vendor: str | None, ours: str
) -> None:
    server.queue(Reply(body=completion("x", finish_reason=vendor)))
    assert (await any_provider.chat(ChatRequest(model=MODEL, messages=USER))).finish_reason == ours
    if vendor is None:
        return  # a stream without a finish reason is a failure, tested below
    server.queue(stream_reply(finish_reason=vendor))
    _, end = await collect(any_provider, ChatRequest(model=MODEL, messages=USER))
    assert end.finish_reason == ours


async def test_refusal_raises_content_filtered(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion(None, refusal="I can't help with that.")))
    with pytest.raises(ContentFilteredError, match="the model refused to answer: I can't help"):
        await any_provider.chat(ChatRequest(model=MODEL, messages=USER))
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk(refusal="I can't ")),
                    (None, chunk(refusal="help.")),
                    (None, chunk(finish_reason="stop")),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    with pytest.raises(
        ContentFilteredError, match=re.escape("refused to answer: I can't help.")
    ) as info:
        await collect(any_provider, ChatRequest(model=MODEL, messages=USER))
    assert info.value.vendor_code == "refusal"


# --------------------------------------------------------------------------- failures


def http_date_in_an_hour() -> str:
    """Made when the test runs (not at import: a long suite would age it)."""
    return email.utils.formatdate(time.time() + 3600, usegmt=True)


FAILURES = [
    pytest.param(
        Reply(
            400, error_body("Invalid value for 'temperature': 3 is above 2.", param="temperature")
        ),
        BadRequestError,
        "[provider 'openai', model 'gpt-4o-mini', HTTP 400] Invalid value for 'temperature': 3 "
        "is above 2.",
        {"status_code": 400, "vendor_code": "invalid_request_error"},
        id="400",
    ),
    pytest.param(
        Reply(400, error_body("Unrecognized request argument supplied: foo", param="foo")),
        BadRequestError,
        "Unrecognized request argument supplied: foo",
        {},
        id="400-param-named",
    ),
    pytest.param(
        Reply(400, error_body("Invalid type", param="messages")),
        BadRequestError,
        "Invalid type (param: messages)",
        {},
        id="400-param-appended",
    ),
    pytest.param(
        Reply(400, error_body("Too long.", code="context_length_exceeded", param="messages")),
        ContextLengthExceededError,
        "Too long.",
        {"vendor_code": "context_length_exceeded", "status_code": 400},
        id="400-context-code",
    ),
    pytest.param(
        Reply(
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 130000 tokens. Please reduce the length of the messages."
            ),
        ),
        ContextLengthExceededError,
        "maximum context length is 128000 tokens",
        {},
        id="400-context-message",
    ),
    pytest.param(
        Reply(400, error_body("Your request was rejected.", code="content_policy_violation")),
        ContentFilteredError,
        "Your request was rejected.",
        {"vendor_code": "content_policy_violation"},
        id="400-content-policy",
    ),
    pytest.param(
        Reply(400, error_body("The response was filtered.", type="", code="content_filter")),
        ContentFilteredError,
        "The response was filtered.",
        {"vendor_code": "content_filter"},
        id="400-content-filter",
    ),
    pytest.param(
        Reply(
            401,
            error_body(
                f"Incorrect API key provided: {CANARY}.", code="invalid_api_key", param=None
            ),
        ),
        AuthenticationError,
        "Incorrect API key provided: ***.",
        {"status_code": 401},
        id="401-key-echoed",
    ),
    pytest.param(
        Reply(403, error_body("Country not supported.", code="unsupported_country")),
        PermissionDeniedError,
        "Country not supported.",
        {"status_code": 403},
        id="403",
    ),
    pytest.param(
        Reply(404, error_body("The model `gpt-9` does not exist.", code="model_not_found")),
        NotFoundError,
        "The model `gpt-9` does not exist.",
        {"status_code": 404},
        id="404",
    ),
    pytest.param(
        Reply(
            429,
            error_body("Rate limit reached.", type="requests", code="rate_limit_exceeded"),
            headers={"retry-after": "7"},
        ),
        RateLimitError,
        "Rate limit reached.",
        {"retry_after": 7.0, "retryable": True, "status_code": 429},
        id="429-seconds",
    ),
    pytest.param(
        Reply(
            429,
            error_body("Rate limit reached.", type="tokens", code="rate_limit_exceeded"),
            headers={"retry-after-ms": "1500", "retry-after": "9"},
        ),
        RateLimitError,
        "Rate limit reached.",
        {"retry_after": 1.5},
        id="429-ms",
    ),
    pytest.param(
        Reply(
            429,
            error_body(
                "You exceeded your current quota.",
                type="insufficient_quota",
                code="insufficient_quota",
            ),
        ),
        RateLimitError,
        "You exceeded your current quota.",
        {"retryable": False, "vendor_code": "insufficient_quota", "retry_after": None},
        id="429-insufficient-quota",
    ),
    pytest.param(
        Reply(500, error_body("The server had an error.", type="server_error")),
        ServerError,
        "[provider 'openai', model 'gpt-4o-mini', HTTP 500] The server had an error.",
        {"status_code": 500, "retryable": True},
        id="500",
    ),
    pytest.param(
        Reply(503, "upstream overloaded", headers={"retry-after": "2"}),
        ServerError,
        "upstream overloaded",
        {"status_code": 503, "retry_after": 2.0},
        id="503-text",
    ),
    pytest.param(Reply(reset=True), ProviderConnectionError, "", {"retryable": True}, id="reset"),
    pytest.param(
        Reply(body="{not json", content_type="application/json"),
        MalformedResponseError,
        "",
        {},
        id="malformed-json",
    ),
    pytest.param(
        Reply(body={"id": "x", "object": "chat.completion"}),
        MalformedResponseError,
        "has no choices",
        {},
        id="no-choices",
    ),
    pytest.param(
        Reply(body={"error": {"message": "Internal failure.", "type": "server_error"}}),
        ServerError,
        "[provider 'openai', model 'gpt-4o-mini'] the reply reported an error: Internal failure.",
        {"status_code": None, "retryable": True},
        id="200-with-error",
    ),
]


@pytest.mark.parametrize(("reply", "kind", "message", "attrs"), FAILURES)
async def test_chat_failures(
    any_provider: ChatProvider,
    server: LoopbackServer,
    reply: Reply,
    kind: type[Exception],
    message: str,
    attrs: dict[str, Any],
) -> None:
    server.queue(reply)
    with pytest.raises(ProviderError) as info:
        await any_provider.chat(ChatRequest(model=MODEL, messages=USER))
    err = info.value
    assert type(err) is kind
    assert message in str(err)
    for name, value in attrs.items():
        assert getattr(err, name) == value, name
    assert_no_secret(err, any_provider)


async def test_retry_after_http_date(any_provider: ChatProvider, server: LoopbackServer) -> None:
    server.queue(
        Reply(429, error_body("slow down"), headers={"retry-after": http_date_in_an_hour()})
    )
    with pytest.raises(RateLimitError) as info:
        await any_provider.chat(ChatRequest(model=MODEL, messages=USER))
    assert info.value.retry_after is not None
    assert 3000 < info.value.retry_after <= 3600


async def test_read_stall_times_out(any_provider: ChatProvider, server: LoopbackServer) -> None:
    server.queue(Reply(body=completion(), stall=1))
    with pytest.raises(ProviderTimeoutError) as info:
        await any_provider.chat(ChatRequest(model=MODEL, messages=USER, read_timeout=0.2))
    assert info.value.retryable
    assert_no_secret(info.value, any_provider)


STREAM_FAILURES = [
    pytest.param(
        Reply(chunks=[*sse([(None, chunk("Hi"))]), b"data: {broken\n\n"]),
        MalformedResponseError,
        "not",
        ["Hi"],
        id="malformed-data-line",
    ),
    pytest.param(
        Reply(chunks=stream_events(texts=("a", "b", "c")), cut_after=3),
        ProviderConnectionError,
        "",
        ["a", "b"],
        id="cut-mid-way",
    ),
    pytest.param(
        Reply(chunks=sse([(None, chunk("Hel")), (None, chunk("lo"))])),
        ProviderConnectionError,
        "the answer may be incomplete",
        ["Hel", "lo"],
        id="ends-without-finish-or-done",
    ),
    pytest.param(
        Reply(
            chunks=sse(
                [
                    (None, chunk("Hel")),
                    (
                        None,
                        {
                            "error": {
                                "message": "The server had an error.",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        },
                    ),
                ]
            )
        ),
        ServerError,
        "the stream reported an error: The server had an error.",
        ["Hel"],
        id="error-object",
    ),
    pytest.param(
        Reply(
            chunks=sse(
                [
                    (
                        None,
                        {
                            "error": {
                                "message": "Too long.",
                                "type": "invalid_request_error",
                                "code": "context_length_exceeded",
                            }
                        },
                    )
                ]
            )
        ),
        ContextLengthExceededError,
        "the stream reported an error: Too long.",
        [],
        id="error-object-context",
    ),
    pytest.param(
        Reply(429, error_body("Rate limit reached."), headers={"retry-after": "3"}),
        RateLimitError,
        "Rate limit reached.",
        [],
        id="429-before-stream",
    ),
    pytest.param(
        Reply(400, error_body("Too long.", code="context_length_exceeded")),
        ContextLengthExceededError,
        "Too long.",
        [],
        id="400-before-stream",
    ),
    pytest.param(
        Reply(401, error_body(f"Incorrect API key provided: {CANARY}")),
        AuthenticationError,
        "Incorrect API key provided: ***",
        [],
        id="401-before-stream",
    ),
    pytest.param(Reply(reset=True), ProviderConnectionError, "", [], id="reset"),
]


@pytest.mark.parametrize(("reply", "kind", "message", "before"), STREAM_FAILURES)
async def test_stream_failures(
    any_provider: ChatProvider,
    server: LoopbackServer,
    reply: Reply,
    kind: type[Exception],
    message: str,
    before: list[str],
) -> None:
    server.queue(reply)
    texts: list[str] = []
    with pytest.raises(ProviderError) as info:
        await collect(any_provider, ChatRequest(model=MODEL, messages=USER), texts)
    assert type(info.value) is kind
    assert message in str(info.value)
    assert texts == before
    assert_no_secret(info.value, any_provider)


async def test_stream_read_stall_times_out(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=stream_events(), stall=1))
    with pytest.raises(ProviderTimeoutError):
        await collect(any_provider, ChatRequest(model=MODEL, messages=USER, read_timeout=0.2))


async def test_stream_ends_at_done_even_if_the_body_stays_open(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    # A proxy that holds the body open after [DONE] must not turn the answer into a timeout.
    server.queue(Reply(chunks=stream_events(texts=("Hel", "lo")), stall_after=1))
    request = ChatRequest(model=MODEL, messages=USER, read_timeout=0.2)
    texts, end = await collect(any_provider, request)
    assert texts == ["Hel", "lo"]
    assert end.finish_reason == "stop"


async def test_wire_stream_without_done_raises_even_after_finish(
    wire: ChatProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(chunks=stream_events(texts=("ok",), done=False)))
    texts: list[str] = []
    with pytest.raises(ProviderConnectionError, match=r"ended before 'data: \[DONE\]'"):
        await collect(wire, ChatRequest(model=MODEL, messages=USER), texts)
    assert texts == ["ok"]


async def test_stream_usage_chunk_without_choices(
    any_provider: ChatProvider, server: LoopbackServer
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    server.queue(
        Reply(
            chunks=sse(
                [
                    (None, chunk("x", finish_reason="stop")),
                    (None, usage_chunk(usage)),
                    (None, "[DONE]"),
                ]
            )
        )
    )
    _, end = await collect(any_provider, ChatRequest(model=MODEL, messages=USER))
    assert end.usage == Usage(3, 1, 4)


# --------------------------------------------------------------------------- the SDK provider


_LIST_SDK_EXCEPTIONS = """
import openai
seen, todo = set(), [openai.OpenAIError]
while todo:
    cls = todo.pop()
    if cls not in seen:
        seen.add(cls)
        todo.extend(cls.__subclasses__())
for cls in sorted(seen, key=lambda c: (c.__module__, c.__qualname__)):
    print(f"{cls.__module__}:{cls.__qualname__}")
"""


def _sdk_exception_classes() -> list[type[BaseException]]:
    """Every exception kind that ``import openai`` defines (OpenAIError and its subclasses).

    Listed in a fresh interpreter, so the set does not depend on which SDK features other
    tests happened to load.
    """
    out = subprocess.run(
        [sys.executable, "-c", _LIST_SDK_EXCEPTIONS],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    classes = []
    for line in out.stdout.split():
        module, _, qualname = line.partition(":")
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        classes.append(target)
    return classes


_REQ = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(cls: type[Any], status: int) -> BaseException:
    body = {"message": f"vendor says {status}", "type": "x", "code": None}
    response = httpx2.Response(
        status, json={"error": body}, headers={"retry-after": "4"}, request=_REQ
    )
    return cls(f"Error code: {status}", response=response, body=body)  # type: ignore[no-any-return]


_FOREIGN: dict[str, tuple[Any, type[ProviderError]]] = {
    # name: (factory, our class); status errors are mapped by status, as the seam does.
    "APIStatusError": (lambda c: _status(c, 418), BadRequestError),
    "BadRequestError": (lambda c: _status(c, 400), BadRequestError),
    "AuthenticationError": (lambda c: _status(c, 401), AuthenticationError),
    "OAuthError": (
        lambda c: c(
            response=httpx2.Response(401, json={"error": "invalid_token"}, request=_REQ),
            body={"error": "invalid_token"},
        ),
        AuthenticationError,
    ),
    "PermissionDeniedError": (lambda c: _status(c, 403), PermissionDeniedError),
    "NotFoundError": (lambda c: _status(c, 404), NotFoundError),
    "ConflictError": (lambda c: _status(c, 409), ServerError),
    "UnprocessableEntityError": (lambda c: _status(c, 422), BadRequestError),
    "RateLimitError": (lambda c: _status(c, 429), RateLimitError),
    "InternalServerError": (lambda c: _status(c, 500), ServerError),
    "APITimeoutError": (lambda c: c(request=_REQ), ProviderTimeoutError),
    "APIConnectionError": (lambda c: c(request=_REQ), ProviderConnectionError),
    "APIResponseValidationError": (
        lambda c: c(httpx2.Response(200, json={}, request=_REQ), {}),
        MalformedResponseError,
    ),
    "APIError": (
        lambda c: c("stream failed", _REQ, body={"message": "boom", "type": "server_error"}),
        ServerError,
    ),
    "ContentFilterFinishReasonError": (lambda c: c(), ContentFilteredError),
    "LengthFinishReasonError": (lambda c: c(completion=SimpleNamespace(usage=None)), ProviderError),
    "OpenAIError": (lambda c: c("generic"), ProviderError),
    "SubjectTokenProviderError": (lambda c: c("no token"), ProviderError),
    "WebSocketConnectionClosedError": (
        lambda c: c("closed", unsent_messages=[]),
        ProviderError,
    ),
    "WebSocketQueueFullError": (lambda c: c("full"), ProviderError),
    "_AmbiguousModuleClientUsageError": (lambda c: c(), ProviderError),
    "StreamAlreadyConsumed": (lambda c: c(), ProviderError),
    "APIRemovedInV1": (lambda c: c(symbol="x"), ProviderError),
    "MutuallyExclusiveAuthError": (lambda c: c(), ProviderError),
}


def test_every_sdk_exception_kind_is_mapped() -> None:
    provider = OpenAISDKProvider(api_key=CANARY, base_url="http://127.0.0.1:9/v1")
    provider.provider_name = "openai-sdk"
    classes = _sdk_exception_classes()
    names = {cls.__name__ for cls in classes}
    assert {"APIStatusError", "APITimeoutError", "APIConnectionError", "APIError"} <= names
    # A new SDK exception kind makes this fail until it is added to the table.
    assert names <= set(_FOREIGN), sorted(names - set(_FOREIGN))
    for cls in classes:
        factory, ours = _FOREIGN[cls.__name__]
        try:
            foreign = factory(cls)
        except TypeError as exc:  # pragma: no cover - a changed constructor
            pytest.fail(f"cannot build {cls.__name__}: {exc}")
        with pytest.raises(ProviderError) as info, provider._sdk_errors(MODEL):
            raise foreign
        assert type(info.value) is ours, cls.__name__
        assert info.value.__cause__ is foreign
        assert info.value.provider == "openai-sdk"
        assert info.value.model == MODEL
        if ours is RateLimitError:
            assert info.value.retry_after == 4.0  # type: ignore[attr-defined]
            assert "vendor says 429" in str(info.value)


def test_sdk_unknown_exception_kinds_fall_back_by_ancestry() -> None:
    class NovelError(openai.OpenAIError):
        pass

    class TeapotError(openai.APIStatusError):
        pass

    provider = OpenAISDKProvider(api_key=CANARY)
    with pytest.raises(ProviderError) as info, provider._sdk_errors(MODEL):
        raise NovelError("new in a later SDK")
    assert type(info.value) is ProviderError
    assert "NovelError: new in a later SDK" in str(info.value)
    with pytest.raises(ServerError), provider._sdk_errors(MODEL):
        raise _status(TeapotError, 503)


def test_sdk_json_errors_are_malformed_response() -> None:
    provider = OpenAISDKProvider(api_key=CANARY)
    with pytest.raises(MalformedResponseError) as info, provider._sdk_errors(MODEL):
        raise ValueError("Expecting value: line 1 column 1 (char 0)")
    assert isinstance(info.value.__cause__, ValueError)


def test_sdk_passes_our_errors_through() -> None:
    provider = OpenAISDKProvider(api_key=CANARY)
    original = InvalidRequestError("ours")
    with pytest.raises(InvalidRequestError) as info, provider._sdk_errors(MODEL):
        raise original
    assert info.value is original


async def test_sdk_shares_the_runtime_pool_and_does_not_retry(server: LoopbackServer) -> None:
    provider = _make(OpenAISDKProvider, server)
    try:
        sdk_client = provider._sdk_client()
        assert isinstance(sdk_client, openai.AsyncOpenAI)
        assert sdk_client.max_retries == 0
        http = provider.http()
        assert sdk_client._client is http.raw  # type: ignore[attr-defined]
        server.queue(Reply(500, error_body("boom", type="server_error")))
        with pytest.raises(ServerError):
            await provider.chat(ChatRequest(model=MODEL, messages=USER))
        assert len(server.requests) == 1  # no SDK retry
    finally:
        await provider.aclose()
    assert http.closed


def test_sdk_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    with pytest.raises(MissingDependencyError) as info:
        OpenAISDKProvider(api_key=CANARY)
    assert "pip install 'llm-runtime[openai]'" in str(info.value)
    assert info.value.extra == "openai"
    assert isinstance(info.value.__cause__, ImportError)


def test_sdk_module_does_not_import_openai() -> None:
    code = (
        "import sys; import runtime.providers.openai_sdk_provider, "
        "runtime.providers.openai_provider, runtime.providers.azure_provider; "
        "print('openai' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
