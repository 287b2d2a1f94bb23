"""The OpenAI stream decoder's fast path (plain dicts) decodes exactly as its general path.

Each chunk is fed to two decoders: as the dict ``json.loads`` makes (the fast path) and as
a read-only mapping (a ``Mapping`` that is no dict: the general path). Events, errors and
the final events must be the same.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from runtime.providers.openai_provider import OpenAIProvider, OpenAIStream
from runtime.sse import SSEEvent
from runtime.types import ChatRequest, Message


def _proxy(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _proxy(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_proxy(v) for v in value]
    return value


def _chunk(delta: Any = None, **fields: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
    choice.update(fields.pop("choice", {}))
    base: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    return {**base, "choices": [choice], **fields}


CASES = {
    "text": [_chunk({"content": "Hel"}), _chunk({"content": "lo"})],
    "role and empty text": [_chunk({"role": "assistant", "content": ""})],
    "content null": [_chunk({"role": "assistant", "content": None})],
    "content parts": [_chunk({"content": [{"type": "text", "text": "a"}]})],
    "content a number": [_chunk({"content": 3})],
    "explicit null refusal": [_chunk({"content": "x", "refusal": None, "tool_calls": None})],
    "refusal": [_chunk({"refusal": "no"}), _chunk({}, choice={"finish_reason": "stop"})],
    "reasoning": [_chunk({"content": "", "reasoning_content": "think"})],
    "finish": [_chunk({"content": "x"}, choice={"finish_reason": "length"})],
    "usage": [_chunk({"content": "x"}, usage={"prompt_tokens": 3, "completion_tokens": 1})],
    "other index": [_chunk({"content": "x"}, choice={"index": 1})],
    "two choices": [
        {
            "id": "c",
            "choices": [{"index": 1, "delta": {"content": "b"}}, {"delta": {"content": "a"}}],
        }
    ],
    "delta not an object": [_chunk("text")],
    "error": [{"error": {"message": "overloaded", "type": "server_error"}}],
    "model and id not strings": [
        {"id": 7, "model": None, "choices": [{"delta": {"content": "x"}}]}
    ],
    "no choices": [{"id": "c", "model": "m", "choices": []}, {"id": "c", "choices": None}],
    "tool call": [
        _chunk(
            {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]}
        ),
        _chunk({}, choice={"finish_reason": "tool_calls"}),
    ],
}


def _run(chunks: list[Any]) -> list[Any]:
    request = ChatRequest(model="m", messages=(Message(role="user", content="hi"),))
    decoder = OpenAIStream(OpenAIProvider(api_key="sk-test-not-a-secret"), request)
    seen: list[Any] = []
    try:
        for chunk in chunks:
            seen.append(list(decoder.feed_chunk(chunk)))
        seen.append(list(decoder.finish()))
    except Exception as exc:  # the same error, the same text, from either path
        seen.append((type(exc), str(exc)))
    return seen


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_matches_general_path(name: str) -> None:
    chunks = CASES[name]
    fast, general = _run(chunks), _run([_proxy(c) for c in chunks])
    assert fast == general
    assert fast  # something was decoded or raised


def test_feed_parses_the_event_and_takes_the_fast_path() -> None:
    request = ChatRequest(model="m", messages=(Message(role="user", content="hi"),))
    decoder = OpenAIStream(OpenAIProvider(api_key="sk-test-not-a-secret"), request)
    data = '{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}'
    (event,) = decoder.feed(SSEEvent("message", data))
    assert getattr(event, "text", None) == "hi"
    assert list(decoder.feed(SSEEvent("message", " [DONE] "))) == []
    assert decoder.done
