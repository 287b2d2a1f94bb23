"""Wire providers over an injected in-memory transport: protocol code tested with no sockets.

``WireProvider.use_transport`` puts an ``httpx2.MockTransport`` under the seam. Every test
runs inside ``no_network()`` with the vendors' real base URLs, so a request that tried the
network would fail loudly; the seam's bounds still apply above the injected transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from runtime.config import HTTPConfig
from runtime.errors import ConfigError, RateLimitError, ResponseTooLargeError
from runtime.providers.anthropic_provider import AnthropicProvider
from runtime.providers.gemini_provider import GeminiProvider
from runtime.providers.openai_provider import OpenAIProvider
from runtime.providers.wire import WireProvider
from runtime.testing import no_network
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta
from tests.loopback import sse
from tests.wire import anthropic_fakes, gemini_fakes, openai_fakes

KEY = "sk-transport-canary-5521"


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with no_network():
        yield


class Recorder:
    """A MockTransport handler that answers from a list and records each request."""

    def __init__(self, *replies: httpx2.Response) -> None:
        self.replies = list(replies)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.replies.pop(0)

    def body(self, index: int = 0) -> Any:
        return json.loads(self.requests[index].content)


def json_reply(body: Any, status: int = 200, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, json=body, headers=headers)


def sse_reply(chunks: list[bytes]) -> httpx2.Response:
    return httpx2.Response(
        200, content=b"".join(chunks), headers={"content-type": "text/event-stream"}
    )


def offline(cls: type[WireProvider], recorder: Recorder, **kwargs: Any) -> WireProvider:
    provider = cls(api_key=KEY, **kwargs)
    provider.use_transport(httpx2.MockTransport(recorder))
    return provider


def request(model: str) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "hi"),), max_tokens=16)


async def streamed(provider: WireProvider, req: ChatRequest) -> tuple[list[str], StreamEnd]:
    texts: list[str] = []
    end = None
    async for event in provider.stream_chat(req):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        elif isinstance(event, StreamEnd):
            end = event
    assert end is not None
    return texts, end


async def test_openai_chat_with_no_socket_sends_what_describe_request_shows() -> None:
    recorder = Recorder(json_reply(openai_fakes.completion("Hello there")))
    provider = offline(OpenAIProvider, recorder)  # the default, real base URL
    req = request(openai_fakes.MODEL)
    response = await provider.chat(req)
    await provider.aclose()
    assert (response.text, response.finish_reason) == ("Hello there", "stop")
    [sent] = recorder.requests
    described = provider.describe_request(req)
    assert str(sent.url) == described["url"] == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert recorder.body() == described["json"]


async def test_anthropic_stream_with_no_socket() -> None:
    recorder = Recorder(sse_reply(sse(anthropic_fakes.stream_events())))
    provider = offline(AnthropicProvider, recorder)
    texts, end = await streamed(provider, request(anthropic_fakes.MODEL))
    await provider.aclose()
    assert texts == ["Hel", "lo", "!"]
    assert end.finish_reason == "stop"
    assert str(recorder.requests[0].url) == "https://api.anthropic.com/v1/messages"
    assert recorder.body()["stream"] is True


async def test_gemini_error_with_no_socket_is_the_vendors_error() -> None:
    body = gemini_fakes.error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded.")
    recorder = Recorder(json_reply(body, 429, **{"retry-after": "7"}))
    provider = offline(GeminiProvider, recorder)
    with pytest.raises(RateLimitError) as info:
        await provider.chat(request("gemini-2.5-flash"))
    await provider.aclose()
    assert (info.value.message, info.value.retry_after) == ("Quota exceeded.", 7.0)


async def test_the_seams_bounds_apply_above_an_injected_transport() -> None:
    recorder = Recorder(json_reply({"pad": "x" * 5000}))
    provider = offline(OpenAIProvider, recorder)
    provider.configure_http(HTTPConfig(max_body_bytes=1000))
    with pytest.raises(ResponseTooLargeError, match=r"http\.max_body_bytes = 1000 bytes"):
        await provider.chat(request(openai_fakes.MODEL))
    await provider.aclose()


async def test_a_transport_comes_before_the_first_request() -> None:
    recorder = Recorder(json_reply(openai_fakes.completion("one")))
    provider = offline(OpenAIProvider, recorder)
    await provider.chat(request(openai_fakes.MODEL))
    late: Callable[[httpx2.Request], httpx2.Response] = Recorder()
    with pytest.raises(ConfigError, match="must come before the first request"):
        provider.use_transport(httpx2.MockTransport(late))
    await provider.aclose()
