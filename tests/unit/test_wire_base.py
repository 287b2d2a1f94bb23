"""The ``WireProvider`` helpers a protocol module calls: event objects and finished tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime.errors import MalformedResponseError, ToolArgumentsError
from runtime.providers.wire import WireProvider
from runtime.sse import SSEEvent
from runtime.types import ChatRequest, Message, ToolCall, ToolCallDone

KEY = "wire-base-canary-7781"
REQUEST = ChatRequest(model="m-1", messages=(Message("user", "Hi"),))


class _Wire(WireProvider):
    default_base_url = "http://127.0.0.1:9"
    malformed_prefix = "POST /chat: "


@pytest.fixture
async def wire() -> AsyncIterator[_Wire]:
    provider = _Wire(api_key=KEY)
    provider.provider_name = "p"
    yield provider
    await provider.aclose()


async def test_event_object_returns_the_data(wire: _Wire) -> None:
    event = SSEEvent("message", '{"type": "content-delta", "index": 2}')
    assert wire.event_object(event, REQUEST) == {"type": "content-delta", "index": 2}


@pytest.mark.parametrize("data", ["[1, 2]", '"text"', "null"])
async def test_event_object_refuses_other_json(wire: _Wire, data: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        wire.event_object(SSEEvent("message", data), REQUEST, "the 'x' event's data")
    assert str(info.value).endswith(
        f"POST /chat: the 'x' event's data is not a JSON object: {data!r}"
    )
    assert (info.value.provider, info.value.model) == ("p", "m-1")


async def test_event_object_refuses_text_without_showing_the_key(wire: _Wire) -> None:
    with pytest.raises(MalformedResponseError) as info:
        wire.event_object(SSEEvent("message", f"{{{KEY}"), REQUEST)
    assert "POST /chat: a stream event's data is not JSON" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("call_id", "raw", "expected"),
    [
        ("c1", '{"city": "Paris"}', ToolCall("c1", "f", {"city": "Paris"})),
        (None, "", ToolCall("call_3", "f", {})),
        ("c2", "  ", ToolCall("c2", "f", {})),
    ],
)
def test_tool_call_done(call_id: str | None, raw: str, expected: ToolCall) -> None:
    wire = _Wire(api_key=KEY)
    assert wire.tool_call_done(REQUEST, 3, call_id, "f", raw) == ToolCallDone(3, expected)


@pytest.mark.parametrize("raw", ["[1]", '{"a": ', f'"{KEY}"'])
def test_tool_call_done_refuses_arguments_that_are_not_an_object(raw: str) -> None:
    wire = _Wire(api_key=KEY)
    wire.provider_name = "p"
    with pytest.raises(ToolArgumentsError) as info:
        wire.tool_call_done(REQUEST, 0, "c1", "f", raw)
    assert info.value.raw_arguments == raw
    assert (info.value.tool_name, info.value.provider, info.value.model) == ("f", "p", "m-1")
    assert "the arguments of tool call 'f' are not a JSON object" in str(info.value)
    assert KEY not in str(info.value)
