"""AzureOpenAIProvider against a loopback server: deployment URLs, api-version, api-key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from runtime.errors import (
    AuthenticationError,
    ConfigError,
    ContentFilteredError,
    RateLimitError,
)
from runtime.providers.azure_provider import DEFAULT_AZURE_API_VERSION, AzureOpenAIProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta
from tests.loopback import LoopbackServer, Reply
from tests.wire.openai_fakes import CANARY, completion, error_body, stream_reply

DEPLOYMENT = "my-gpt4o-mini"
USER = (Message("user", "Say hello"),)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LoopbackServer) -> Iterator[LoopbackServer]:
    shared_server.requests.clear()
    yield shared_server
    assert not shared_server._queue, "a scripted reply was not used"


def _azure(server: LoopbackServer, **kwargs: Any) -> AzureOpenAIProvider:
    kwargs.setdefault("api_key", CANARY)
    kwargs.setdefault("base_url", server.url)
    provider = AzureOpenAIProvider(**kwargs)
    provider.provider_name = "azure-openai"
    return provider


@pytest.fixture
async def azure(server: LoopbackServer) -> AsyncIterator[AzureOpenAIProvider]:
    provider = _azure(server)
    yield provider
    await provider.aclose()


async def test_chat_goes_to_the_deployment_with_api_version_and_api_key(
    azure: AzureOpenAIProvider, server: LoopbackServer
) -> None:
    server.queue(Reply(body=completion("Hi from Azure")))
    request = ChatRequest(
        model=DEPLOYMENT,
        messages=USER,
        max_tokens=64,
        max_tokens_param="max_completion_tokens",
    )
    response = await azure.chat(request)
    assert response.text == "Hi from Azure"
    [got] = server.requests
    assert got.method == "POST"
    assert got.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert got.query == {"api-version": DEFAULT_AZURE_API_VERSION}
    assert got.headers["api-key"] == CANARY
    assert "authorization" not in got.headers
    assert got.json == {
        "model": DEPLOYMENT,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_completion_tokens": 64,
    }
    described = azure.describe_request(request)
    assert described["url"] == (
        f"{server.url}/openai/deployments/{DEPLOYMENT}/chat/completions"
        f"?api-version={DEFAULT_AZURE_API_VERSION}"
    )
    assert described["headers"]["api-key"] == CANARY
    assert described["json"] == got.json
    assert AzureOpenAIProvider.secret_headers == frozenset({"api-key"})
    assert CANARY not in repr(azure)


async def test_stream_uses_the_same_route(
    azure: AzureOpenAIProvider, server: LoopbackServer
) -> None:
    server.queue(stream_reply(texts=("a", "b")))
    events = [e async for e in azure.stream_chat(ChatRequest(model=DEPLOYMENT, messages=USER))]
    assert events[:2] == [TextDelta("a"), TextDelta("b")]
    assert isinstance(events[2], StreamEnd)
    assert events[2].finish_reason == "stop"
    [got] = server.requests
    assert got.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert got.query == {"api-version": DEFAULT_AZURE_API_VERSION}
    assert got.json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("options", "base_suffix", "model", "path", "query"),
    [
        pytest.param(
            {"api_version": "2025-04-01-preview"},
            "",
            DEPLOYMENT,
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            {"api-version": "2025-04-01-preview"},
            id="api-version-option",
        ),
        pytest.param(
            {"api_version": "v1"},
            "",
            DEPLOYMENT,
            "/openai/v1/chat/completions",
            {},
            id="v1-api",
        ),
        pytest.param(
            {},
            "/openai/",
            DEPLOYMENT,
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            {"api-version": DEFAULT_AZURE_API_VERSION},
            id="endpoint-with-openai-suffix",
        ),
        pytest.param(
            {},
            "/",
            "odd name/x",
            "/openai/deployments/odd%20name%2Fx/chat/completions",
            {"api-version": DEFAULT_AZURE_API_VERSION},
            id="deployment-quoted",
        ),
    ],
)
async def test_routes(
    server: LoopbackServer,
    options: dict[str, Any],
    base_suffix: str,
    model: str,
    path: str,
    query: dict[str, str],
) -> None:
    provider = _azure(server, base_url=server.url + base_suffix, **options)
    try:
        server.queue(Reply(body=completion()))
        await provider.chat(ChatRequest(model=model, messages=USER))
        [got] = server.requests
        assert (got.path, got.query) == (path, query)
        assert got.json["model"] == model
    finally:
        await provider.aclose()


async def test_no_key_sends_no_api_key(server: LoopbackServer) -> None:
    provider = _azure(server, api_key=None)
    try:
        server.queue(Reply(body=completion()))
        await provider.chat(ChatRequest(model=DEPLOYMENT, messages=USER))
        assert "api-key" not in server.requests[0].headers
        assert "authorization" not in server.requests[0].headers
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"base_url": None}, "needs the resource endpoint", id="no-endpoint"),
        pytest.param(
            {"api_version": ""}, "options.api_version: must be a non-empty string", id="empty"
        ),
        pytest.param(
            {"api_verison": "x"},
            "unknown option 'api_verison' (did you mean 'api_version'?)",
            id="typo",
        ),
    ],
)
def test_configuration_errors(
    server: LoopbackServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _azure(server, **options)


_FILTERED = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
        "content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation"},
    }
}


@pytest.mark.parametrize(
    ("reply", "kind", "message", "attrs"),
    [
        pytest.param(
            Reply(400, _FILTERED),
            ContentFilteredError,
            "the prompt triggering Azure OpenAI's content management policy.",
            {"vendor_code": "content_filter"},
            id="content-filter",
        ),
        pytest.param(
            Reply(
                401,
                {
                    "error": {
                        "code": "401",
                        "message": f"Access denied due to invalid subscription key {CANARY}.",
                    }
                },
            ),
            AuthenticationError,
            "invalid subscription key ***.",
            {},
            id="401",
        ),
        pytest.param(
            Reply(
                429,
                error_body(
                    "Requests to the ChatCompletions_Create Operation have exceeded the "
                    "call rate limit.",
                    type="",
                    code="429",
                ),
                headers={"retry-after-ms": "2500", "retry-after": "3"},
            ),
            RateLimitError,
            "exceeded the call rate limit",
            {"retry_after": 2.5},
            id="429-retry-after-ms",
        ),
    ],
)
async def test_errors(
    azure: AzureOpenAIProvider,
    server: LoopbackServer,
    reply: Reply,
    kind: type[Exception],
    message: str,
    attrs: dict[str, Any],
) -> None:
    server.queue(reply)
    with pytest.raises(kind) as info:
        await azure.chat(ChatRequest(model=DEPLOYMENT, messages=USER))
    assert message in str(info.value)
    for name, value in attrs.items():
        assert getattr(info.value, name) == value
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)
