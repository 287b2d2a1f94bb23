"""Parity with the official openai SDK: the same call through it and through our providers.

Each case is sent by ``openai.AsyncOpenAI`` (the reference), by ``OpenAIProvider`` and by
``OpenAISDKProvider`` to the same loopback server; what arrived (method, path, auth and
content type, JSON body) must be equal, and each must read the server's reply the same way
(text, finish reason, usage). Azure is compared with ``openai.AsyncAzureOpenAI``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from runtime.providers.azure_provider import AzureOpenAIProvider
from runtime.providers.base import ChatProvider
from runtime.providers.openai_provider import OpenAIProvider
from runtime.providers.openai_sdk_provider import OpenAISDKProvider
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta, Usage
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.wire.openai_fakes import CANARY, MODEL, completion, stream_reply


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


@pytest.mark.parametrize("case", [CASES[1], CASES[2]])
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
