"""GeminiProvider against a loopback server: exact requests, replies, blocks and every fault."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from runtime.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilteredError,
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
from runtime.providers.gemini_provider import GeminiProvider
from runtime.types import (
    ChatRequest,
    FinishReason,
    Message,
    ProviderResponse,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.wire.gemini_fakes import (
    MODEL_VERSION,
    blocked_prompt,
    candidate,
    error_body,
    error_info,
    error_reply,
    response,
    retry_info,
    sse_reply,
    usage,
)

CANARY = "AIza-canary-123"
MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    # One server for the module: stopping one costs its 0.5 s shutdown poll.
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> Iterator[LoopbackServer]:
    shared_server.requests.clear()
    shared_server._queue.clear()  # a failed test must not leave replies for the next one
    yield shared_server
    # The key travels only in its header, never in a URL, whatever the test did.
    for recorded in shared_server.requests:
        assert CANARY not in recorded.path
        assert CANARY not in repr(recorded.query)


@pytest.fixture
async def provider(server: LoopbackServer) -> AsyncIterator[GeminiProvider]:
    instance = GeminiProvider(api_key=CANARY, base_url=f"{server.url}/v1beta")
    instance.provider_name = "gemini"
    yield instance
    await instance.aclose()


def request(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(MODEL, messages or (Message("user", "Hi"),), **kwargs)


async def call(provider: GeminiProvider, req: ChatRequest, stream: bool) -> Any:
    """chat(), or stream_chat() collected into a list."""
    if not stream:
        return await provider.chat(req)
    return [event async for event in provider.stream_chat(req)]


async def stream_until_error(
    provider: GeminiProvider, req: ChatRequest
) -> tuple[list[StreamEvent], ProviderError]:
    """The events a stream yielded before it raised, and the error."""
    events: list[StreamEvent] = []
    try:
        async for event in provider.stream_chat(req):
            events.append(event)
    except ProviderError as exc:
        return events, exc
    raise AssertionError(f"the stream ended without an error after {events}")


def only(server: LoopbackServer) -> Recorded:
    assert len(server.requests) == 1
    return server.requests[0]


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args), *map(str, exc.__dict__.values())):
        assert CANARY not in text


MODES = [pytest.param(False, id="chat"), pytest.param(True, id="stream")]


# ---------------------------------------------------------------------- requests


async def test_generate_content_request_and_reply(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=response(candidate("Hello", "!"), usage_metadata=usage(3, 2, 5))))
    req = request(temperature=0.5, max_tokens=64, max_tokens_param="max_completion_tokens")
    result = await provider.chat(req)
    assert result == ProviderResponse("Hello!", "stop", Usage(3, 2, 5), MODEL_VERSION)
    sent = only(server)
    assert (sent.method, sent.path, sent.query) == ("POST", GENERATE, {})
    assert sent.headers["x-goog-api-key"] == CANARY
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.json == {**HELLO, "generationConfig": {"maxOutputTokens": 64, "temperature": 0.5}}


async def test_chat_with_system_and_turns(server: LoopbackServer, provider: GeminiProvider) -> None:
    server.queue(Reply(body=response(candidate("Paris."))))
    req = request(
        Message("system", "Be brief."),
        Message("user", "Capital of France?"),
        Message("assistant", "Which France?"),
        Message("system", "Answer in English."),
        Message("user", "The country."),
    )
    assert (await provider.chat(req)).text == "Paris."
    assert only(server).json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Capital of France?"}]},
            {"role": "model", "parts": [{"text": "Which France?"}]},
            {"role": "user", "parts": [{"text": "The country."}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]},
    }


async def test_stream_request_and_events(server: LoopbackServer, provider: GeminiProvider) -> None:
    server.queue(
        sse_reply(
            [
                response(candidate("Hel", finish=None), usage_metadata=usage(4, 1, 5)),
                response(candidate("lo", finish=None), usage_metadata=usage(4, 2, 6)),
                response(candidate(" there", finish="STOP"), usage_metadata=usage(4, 3, 7)),
            ]
        )
    )
    events = await call(provider, request(max_tokens=10), stream=True)
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta(" there"),
        StreamEnd("stop", Usage(4, 3, 7), MODEL_VERSION),
    ]
    sent = only(server)
    assert (sent.method, sent.path, sent.query) == ("POST", STREAM, {"alt": "sse"})
    assert sent.headers["x-goog-api-key"] == CANARY
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json == {**HELLO, "generationConfig": {"maxOutputTokens": 10}}


async def test_stream_usage_in_a_chunk_after_the_finish(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(
        sse_reply(
            [
                response(candidate("Hi", finish="MAX_TOKENS")),
                response(usage_metadata=usage(2, 1, 3)),
            ]
        )
    )
    events = await call(provider, request(), stream=True)
    assert events == [TextDelta("Hi"), StreamEnd("length", Usage(2, 1, 3), MODEL_VERSION)]


async def test_stream_ignores_other_candidates(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(
        sse_reply([response(candidate("A", finish="STOP"), candidate("B", finish="STOP", index=1))])
    )
    events = await call(provider, request(params={"candidate_count": 2}), stream=True)
    assert events == [TextDelta("A"), StreamEnd("stop", Usage(), MODEL_VERSION)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(
            {
                "top_p": 0.9,
                "top_k": 40,
                "stop": "END",
                "candidate_count": 1,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "seed": 7,
                "response_mime_type": "application/json",
                "thinking_config": {"thinkingBudget": 0},
            },
            {
                "generationConfig": {
                    "maxOutputTokens": 32,
                    "topP": 0.9,
                    "topK": 40,
                    "stopSequences": ["END"],
                    "candidateCount": 1,
                    "presencePenalty": 0.1,
                    "frequencyPenalty": 0.2,
                    "seed": 7,
                    "responseMimeType": "application/json",
                    "thinkingConfig": {"thinkingBudget": 0},
                }
            },
            id="snake-case-to-generationConfig",
        ),
        pytest.param(
            {"topP": 0.8, "stopSequences": ["x", "y"], "responseSchema": {"type": "STRING"}},
            {
                "generationConfig": {
                    "maxOutputTokens": 32,
                    "topP": 0.8,
                    "stopSequences": ["x", "y"],
                    "responseSchema": {"type": "STRING"},
                }
            },
            id="camel-case-generation-fields",
        ),
        pytest.param(
            {"stop_sequences": ["a"], "generationConfig": {"top_k": 3, "newField": True}},
            {
                "generationConfig": {
                    "maxOutputTokens": 32,
                    "stopSequences": ["a"],
                    "topK": 3,
                    "newField": True,
                }
            },
            id="generationConfig-mapping-merged",
        ),
        pytest.param(
            {
                "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
                "tools": [{"googleSearch": {}}],
                "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
                "cached_content": "cachedContents/abc",
                "labels": {"team": "x"},
            },
            {
                "generationConfig": {"maxOutputTokens": 32},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
                "tools": [{"googleSearch": {}}],
                "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
                "cachedContent": "cachedContents/abc",
                "labels": {"team": "x"},
            },
            id="top-level-params",
        ),
    ],
)
async def test_params_placement(
    server: LoopbackServer,
    provider: GeminiProvider,
    params: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    server.queue(Reply(body=response(candidate("ok"))))
    await provider.chat(request(max_tokens=32, max_tokens_param="maxOutputTokens", params=params))
    assert only(server).json == {**HELLO, **expected}


@pytest.mark.parametrize(
    ("params", "kwargs", "message"),
    [
        pytest.param({"contents": []}, {}, "parameter 'contents' cannot be set", id="contents"),
        pytest.param(
            {"systemInstruction": {}}, {}, "'systemInstruction' cannot be set", id="systemInstr"
        ),
        pytest.param(
            {"system_instruction": "x"}, {}, "'system_instruction' cannot be set", id="snake-sys"
        ),
        pytest.param(
            {"top_p": 0.1, "topP": 0.2},
            {},
            "parameters 'top_p' and 'topP' both set generationConfig.topP",
            id="top_p-twice",
        ),
        pytest.param(
            {"temperature": 0.3},
            {"temperature": 0.5},
            "'temperature' and 'temperature' both set generationConfig.temperature",
            id="temperature-twice",
        ),
        pytest.param(
            {"max_output_tokens": 5},
            {"max_tokens": 10},
            "'max_tokens' and 'max_output_tokens' both set generationConfig.maxOutputTokens",
            id="max-tokens-twice",
        ),
        pytest.param(
            {"safety_settings": [], "safetySettings": []},
            {},
            "parameters 'safety_settings' and 'safetySettings' both set safetySettings",
            id="safety-twice",
        ),
        pytest.param(
            {"generationConfig": 3}, {}, "'generationConfig' must be a mapping", id="bad-config"
        ),
    ],
)
async def test_param_conflicts_are_refused(
    server: LoopbackServer,
    provider: GeminiProvider,
    params: dict[str, Any],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    for stream in (False, True):
        with pytest.raises(InvalidRequestError, match=re.escape(message)):
            await call(provider, request(params=params, **kwargs), stream)
    assert server.requests == []


async def test_only_system_messages_are_refused(provider: GeminiProvider) -> None:
    with pytest.raises(InvalidRequestError, match="at least one user or assistant message"):
        await provider.chat(request(Message("system", "Be brief.")))


async def test_options_headers_and_safety_settings(server: LoopbackServer) -> None:
    settings = [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]
    provider = GeminiProvider(
        api_key=CANARY,
        base_url=f"{server.url}/v1beta/",
        headers={"X-Team": "search"},
        max_connections=4,
        safety_settings=settings,
    )
    try:
        server.queue(Reply(body=response(candidate("a"))), Reply(body=response(candidate("b"))))
        await provider.chat(request())
        override = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]
        await provider.chat(request(params={"safetySettings": override}))
    finally:
        await provider.aclose()
    first, second = server.requests
    assert first.path == GENERATE
    assert first.headers["x-team"] == "search"
    assert first.json == {**HELLO, "safetySettings": settings}
    assert second.json == {**HELLO, "safetySettings": override}


def test_unknown_option_is_a_config_error() -> None:
    expected = r"unknown option 'safety_setting' \(did you mean 'safety_settings'\?\); known"
    with pytest.raises(ConfigError, match=expected):
        GeminiProvider(api_key=CANARY, safety_setting=[])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"safety_settings": "BLOCK_NONE"}, "options.safety_settings: must be a list", id="list"
        ),
        pytest.param({"max_connections": 0}, "options.max_connections: must be >= 1", id="pool"),
        pytest.param({"headers": {"x-a": 1}}, "options.headers.x-a: must be a string", id="hdr"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        GeminiProvider(api_key=CANARY, **options)
    assert str(info.value) == f"GeminiProvider: {message}"


def test_default_base_url_and_resource_names() -> None:
    provider = GeminiProvider(api_key=CANARY)
    url = provider.describe_request(request())["url"]
    assert (
        url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    tuned = ChatRequest("tunedModels/my-model-7", (Message("user", "Hi"),))
    assert provider.describe_request(tuned, stream=True)["url"] == (
        "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-model-7"
        ":streamGenerateContent?alt=sse"
    )


async def test_no_key_sends_no_key_header(server: LoopbackServer) -> None:
    provider = GeminiProvider(base_url=f"{server.url}/v1beta")
    try:
        server.queue(Reply(body=response(candidate("a"))))
        await provider.chat(request())
    finally:
        await provider.aclose()
    assert "x-goog-api-key" not in only(server).headers


@pytest.mark.parametrize("stream", MODES)
async def test_describe_request_is_what_is_sent(
    server: LoopbackServer, provider: GeminiProvider, stream: bool
) -> None:
    req = request(
        Message("system", "S"), Message("user", "U"), temperature=0.1, params={"top_k": 2}
    )
    described = provider.describe_request(req, stream=stream)
    final = response(candidate("x"))
    server.queue(sse_reply([final]) if stream else Reply(body=final))
    await call(provider, req, stream)
    sent = only(server)
    query = "?alt=sse" if stream else ""
    assert described["method"] == sent.method
    assert described["url"] == f"{server.url}{sent.path}{query}"
    assert described["json"] == sent.json
    assert {k: sent.headers.get(k) for k in described["headers"]} == described["headers"]
    assert described["headers"]["x-goog-api-key"] == CANARY
    assert CANARY not in described["url"]
    assert CANARY not in repr(described["json"])


def test_secret_headers_and_repr() -> None:
    provider = GeminiProvider(api_key=CANARY)
    assert GeminiProvider.secret_headers == frozenset({"x-goog-api-key"})
    assert CANARY not in repr(provider)
    assert CANARY not in str(provider)


# ---------------------------------------------------------------------- replies


async def test_usage_with_cached_and_thoughts(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    body = response(
        candidate("The answer", " is 4.", thoughts=("Let me add 2 and 2.",)),
        usage_metadata=usage(100, 20, 150, cached=60, thoughts=30),
    )
    server.queue(Reply(body=body), sse_reply([body]))
    expected = Usage(
        prompt_tokens=100,
        completion_tokens=50,
        total_tokens=150,
        cached_tokens=60,
        reasoning_tokens=30,
    )
    result = await provider.chat(request())
    assert (result.text, result.usage) == ("The answer is 4.", expected)
    assert result.reasoning == "Let me add 2 and 2."
    events = await call(provider, request(), stream=True)
    assert events == [
        ReasoningDelta("Let me add 2 and 2.", index=0),
        TextDelta("The answer is 4."),
        StreamEnd("stop", expected, MODEL_VERSION),
    ]


async def test_all_output_spent_on_thinking(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    body = response(
        {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0},
        usage_metadata={"promptTokenCount": 5, "totalTokenCount": 69, "thoughtsTokenCount": 64},
    )
    server.queue(Reply(body=body))
    assert await provider.chat(request()) == ProviderResponse(
        "", "length", Usage(5, 64, 69, None, 64), MODEL_VERSION
    )


@pytest.mark.parametrize(
    ("gemini", "ours"),
    [
        pytest.param("STOP", "stop", id="STOP"),
        pytest.param("MAX_TOKENS", "length", id="MAX_TOKENS"),
        pytest.param("SAFETY", "content_filter", id="SAFETY-after-text"),
        pytest.param("RECITATION", "content_filter", id="RECITATION-after-text"),
        pytest.param("BLOCKLIST", "content_filter", id="BLOCKLIST-after-text"),
        pytest.param("PROHIBITED_CONTENT", "content_filter", id="PROHIBITED_CONTENT"),
        pytest.param("SPII", "content_filter", id="SPII"),
        pytest.param("IMAGE_SAFETY", "content_filter", id="IMAGE_SAFETY"),
        pytest.param("MALFORMED_FUNCTION_CALL", "unknown", id="MALFORMED_FUNCTION_CALL"),
        pytest.param("OTHER", "unknown", id="OTHER"),
        pytest.param("LANGUAGE", "unknown", id="LANGUAGE"),
        pytest.param("FINISH_REASON_UNSPECIFIED", "unknown", id="UNSPECIFIED"),
        pytest.param("SOMETHING_NEW", "unknown", id="future-reason"),
    ],
)
@pytest.mark.parametrize("stream", MODES)
async def test_finish_reasons(
    server: LoopbackServer,
    provider: GeminiProvider,
    gemini: str,
    ours: FinishReason,
    stream: bool,
) -> None:
    body = response(candidate("partial", finish=gemini), usage_metadata=usage(1, 1, 2))
    server.queue(sse_reply([body]) if stream else Reply(body=body))
    result = await call(provider, request(), stream)
    if stream:
        assert result == [TextDelta("partial"), StreamEnd(ours, Usage(1, 1, 2), MODEL_VERSION)]
    else:
        assert (result.text, result.finish_reason) == ("partial", ours)


async def test_no_finish_reason_in_a_reply_is_unknown(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=response(candidate("x", finish=None))))
    assert (await provider.chat(request())).finish_reason == "unknown"


async def test_function_call_is_tool_calls(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    call_part = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    body = response(
        {"content": {"role": "model", "parts": [call_part]}, "finishReason": "STOP", "index": 0}
    )
    server.queue(Reply(body=body))
    result = await provider.chat(request(params={"tools": [{"functionDeclarations": []}]}))
    assert (result.text, result.finish_reason) == ("", "tool_calls")


# ---------------------------------------------------------------------- safety blocks


@pytest.mark.parametrize("stream", MODES)
async def test_blocked_prompt(
    server: LoopbackServer, provider: GeminiProvider, stream: bool
) -> None:
    body = blocked_prompt("SAFETY", "HARM_CATEGORY_DANGEROUS_CONTENT")
    server.queue(sse_reply([body]) if stream else Reply(body=body))
    with pytest.raises(ContentFilteredError) as info:
        await call(provider, request(), stream)
    err = info.value
    assert type(err) is ContentFilteredError
    assert str(err) == (
        "[provider 'gemini', model 'gemini-2.5-flash'] Gemini blocked the prompt "
        "(blockReason SAFETY; blocked categories: HARM_CATEGORY_DANGEROUS_CONTENT); "
        "rephrase the prompt or adjust the safetySettings parameter"
    )
    assert (err.vendor_code, err.retryable) == ("SAFETY", False)


async def test_blocked_prompt_other_reason(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    body = response(prompt_feedback={"blockReason": "PROHIBITED_CONTENT"})
    server.queue(Reply(body=body))
    with pytest.raises(ContentFilteredError, match=r"blockReason PROHIBITED_CONTENT\); rephrase"):
        await provider.chat(request())


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT"])
async def test_candidate_blocked_without_text(
    server: LoopbackServer, provider: GeminiProvider, stream: bool, reason: str
) -> None:
    ratings: list[dict[str, Any]] = [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
    ]
    body = response(candidate(finish=reason, ratings=ratings), usage_metadata=usage(5, 0, 5))
    server.queue(sse_reply([body]) if stream else Reply(body=body))
    with pytest.raises(ContentFilteredError) as info:
        await call(provider, request(), stream)
    assert f"Gemini blocked the answer (finishReason {reason}; " in str(info.value)
    assert "blocked categories: HARM_CATEGORY_HARASSMENT)" in str(info.value)
    assert "HATE_SPEECH" not in str(info.value)
    assert info.value.vendor_code == reason


async def test_no_candidates_and_no_block_is_malformed(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(Reply(body=response(usage_metadata=usage(3, total=3))))
    with pytest.raises(MalformedResponseError, match="no candidates and no block reason"):
        await provider.chat(request())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([1, 2], id="a-list"),
        pytest.param({"candidates": {"0": {}}}, id="candidates-not-a-list"),
        pytest.param({"candidates": [{"content": {"parts": "hi"}}]}, id="parts-not-a-list"),
        pytest.param({"candidates": [{"content": {"parts": [{"text": 3}]}}]}, id="text-not-str"),
    ],
)
async def test_wrong_shapes_are_malformed(
    server: LoopbackServer, provider: GeminiProvider, body: Any
) -> None:
    server.queue(Reply(body=body))
    with pytest.raises(MalformedResponseError, match="generateContent protocol"):
        await provider.chat(request())


# ---------------------------------------------------------------------- failures

_TOO_LONG = (
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
)


@pytest.mark.parametrize(
    ("reply", "cls", "message", "vendor_code", "retry_after"),
    [
        pytest.param(
            error_reply(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.top_k'"),
            BadRequestError,
            "Invalid value at 'generation_config.top_k'",
            "INVALID_ARGUMENT",
            None,
            id="400-invalid-argument",
        ),
        pytest.param(
            error_reply(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                error_info("API_KEY_INVALID"),
            ),
            AuthenticationError,
            "API key not valid. Please pass a valid API key. (check the Gemini API key)",
            "API_KEY_INVALID",
            None,
            id="400-api-key-invalid",
        ),
        pytest.param(
            error_reply(400, "INVALID_ARGUMENT", _TOO_LONG),
            ContextLengthExceededError,
            _TOO_LONG,
            "INVALID_ARGUMENT",
            None,
            id="400-token-count-exceeded",
        ),
        pytest.param(
            Reply(400, [error_body(400, "FAILED_PRECONDITION", "User location is not supported")]),
            BadRequestError,
            "User location is not supported",
            "FAILED_PRECONDITION",
            None,
            id="400-envelope-in-a-list",
        ),
        pytest.param(
            error_reply(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
            PermissionDeniedError,
            "Method doesn't allow unregistered callers",
            "PERMISSION_DENIED",
            None,
            id="403-permission-denied",
        ),
        pytest.param(
            error_reply(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"),
            NotFoundError,
            "models/gemini-9 is not found for API version v1beta",
            "NOT_FOUND",
            None,
            id="404-not-found",
        ),
        pytest.param(
            error_reply(
                429, "RESOURCE_EXHAUSTED", "Resource exhausted.", headers={"retry-after": "7"}
            ),
            RateLimitError,
            "Resource exhausted.",
            "RESOURCE_EXHAUSTED",
            7.0,
            id="429-retry-after-header",
        ),
        pytest.param(
            error_reply(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota.",
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                retry_info("21s"),
            ),
            RateLimitError,
            "You exceeded your current quota.",
            "RESOURCE_EXHAUSTED",
            21.0,
            id="429-retry-info-in-body",
        ),
        pytest.param(
            error_reply(
                429,
                "RESOURCE_EXHAUSTED",
                "Slow down.",
                retry_info("21.5s"),
                headers={"retry-after": "3"},
            ),
            RateLimitError,
            "Slow down.",
            "RESOURCE_EXHAUSTED",
            3.0,
            id="429-header-wins-over-body",
        ),
        pytest.param(
            error_reply(429, "RESOURCE_EXHAUSTED", "Quota."),
            RateLimitError,
            "Quota.",
            "RESOURCE_EXHAUSTED",
            None,
            id="429-no-delay",
        ),
        pytest.param(
            error_reply(500, "INTERNAL", "An internal error has occurred."),
            ServerError,
            "An internal error has occurred.",
            "INTERNAL",
            None,
            id="500-internal",
        ),
        pytest.param(
            error_reply(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            ServerError,
            "The model is overloaded. Please try again later.",
            "UNAVAILABLE",
            None,
            id="503-unavailable",
        ),
    ],
)
@pytest.mark.parametrize("stream", MODES)
async def test_http_errors(
    server: LoopbackServer,
    provider: GeminiProvider,
    stream: bool,
    reply: Reply,
    cls: type[ProviderError],
    message: str,
    vendor_code: str,
    retry_after: float | None,
) -> None:
    server.queue(reply)
    with pytest.raises(ProviderError) as info:
        await call(provider, request(), stream)
    err = info.value
    assert type(err) is cls
    assert err.message == message
    assert (
        str(err) == f"[provider 'gemini', model 'gemini-2.5-flash', HTTP {reply.status}] {message}"
    )
    assert (err.status_code, err.vendor_code) == (reply.status, vendor_code)
    assert getattr(err, "retry_after", None) == retry_after
    assert_no_key(err)


@pytest.mark.parametrize("stream", MODES)
async def test_key_echoed_in_an_error_is_scrubbed(
    server: LoopbackServer, provider: GeminiProvider, stream: bool
) -> None:
    server.queue(
        error_reply(
            400, "INVALID_ARGUMENT", f"API key not valid: {CANARY}", error_info("API_KEY_INVALID")
        )
    )
    with pytest.raises(AuthenticationError) as info:
        await call(provider, request(), stream)
    assert "API key not valid: ***" in str(info.value)
    assert_no_key(info.value)


@pytest.mark.parametrize(
    ("reply", "cls", "message"),
    [
        pytest.param(Reply(reset=True), ProviderConnectionError, "failed", id="reset"),
        pytest.param(Reply(stall=1, body={}), ProviderTimeoutError, "failed", id="stall"),
    ],
)
@pytest.mark.parametrize("stream", MODES)
async def test_transport_faults(
    server: LoopbackServer,
    provider: GeminiProvider,
    stream: bool,
    reply: Reply,
    cls: type[ProviderError],
    message: str,
) -> None:
    server.queue(reply)
    with pytest.raises(ProviderError) as info:
        await call(provider, request(read_timeout=0.2), stream)
    assert type(info.value) is cls
    assert message in str(info.value)
    assert_no_key(info.value)


async def test_malformed_json_reply(server: LoopbackServer, provider: GeminiProvider) -> None:
    server.queue(Reply(body=b'{"candidates": [', content_type="application/json"))
    with pytest.raises(MalformedResponseError, match="the reply is not JSON") as info:
        await provider.chat(request())
    assert_no_key(info.value)


async def test_malformed_sse_data(server: LoopbackServer, provider: GeminiProvider) -> None:
    server.queue(sse_reply([response(candidate("ok", finish=None)), "{not json"]))
    events, err = await stream_until_error(provider, request())
    assert type(err) is MalformedResponseError
    assert events == [TextDelta("ok")]
    assert "a stream event's data is not JSON: '{not json'" in str(err)


async def test_sse_data_that_is_not_an_object(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(sse_reply(["[1, 2]"]))
    with pytest.raises(MalformedResponseError, match="is a JSON list, not an object"):
        await call(provider, request(), stream=True)


async def test_stream_cut_midway(server: LoopbackServer, provider: GeminiProvider) -> None:
    chunks = [response(candidate(t, finish=None)) for t in ("a", "b")]
    server.queue(sse_reply([*chunks, response(candidate("c"))], cut_after=2))
    events, err = await stream_until_error(provider, request())
    assert type(err) is ProviderConnectionError
    assert events == [TextDelta("a"), TextDelta("b")]
    assert_no_key(err)


async def test_stream_without_finish_reason(
    server: LoopbackServer, provider: GeminiProvider
) -> None:
    server.queue(sse_reply([response(candidate(t, finish=None)) for t in ("a", "b")]))
    events, err = await stream_until_error(provider, request())
    assert type(err) is ProviderConnectionError
    assert events == [TextDelta("a"), TextDelta("b")]
    assert "stream ended before the model finished" in str(err)


async def test_empty_stream(server: LoopbackServer, provider: GeminiProvider) -> None:
    server.queue(Reply(chunks=[]))
    with pytest.raises(ProviderConnectionError, match="stream ended before the model finished"):
        await call(provider, request(), stream=True)


@pytest.mark.parametrize(
    ("error", "cls", "retry_after"),
    [
        pytest.param(
            error_body(429, "RESOURCE_EXHAUSTED", f"Quota for {CANARY}.", retry_info("5s")),
            RateLimitError,
            5.0,
            id="429-with-retry-info",
        ),
        pytest.param(
            error_body(500, "INTERNAL", f"Internal error for {CANARY}."),
            ServerError,
            None,
            id="500",
        ),
        pytest.param(
            {"error": {"message": f"Overloaded {CANARY}.", "status": "UNAVAILABLE"}},
            ServerError,
            None,
            id="no-numeric-code",
        ),
        pytest.param(
            [error_body(400, "INVALID_ARGUMENT", f"Bad {CANARY}.")],
            BadRequestError,
            None,
            id="list-wrapped",
        ),
    ],
)
async def test_error_object_in_stream(
    server: LoopbackServer,
    provider: GeminiProvider,
    error: Any,
    cls: type[ProviderError],
    retry_after: float | None,
) -> None:
    server.queue(sse_reply([response(candidate("a", finish=None)), error]))
    events, err = await stream_until_error(provider, request())
    assert events == [TextDelta("a")]
    assert type(err) is cls
    assert getattr(err, "retry_after", None) == retry_after
    assert "***" in str(err)
    assert_no_key(err)


async def test_use_after_close(provider: GeminiProvider) -> None:
    await provider.aclose()
    with pytest.raises(RuntimeClosedError, match="GeminiProvider was used after aclose"):
        await provider.chat(request())
