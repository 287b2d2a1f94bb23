"""OpenAI-shaped replies for loopback servers: chat completions, stream chunks, error envelopes.

The shapes follow the Chat Completions API reference: a ``chat.completion`` object, a
stream of ``chat.completion.chunk`` objects ending in a usage-only chunk (``choices: []``)
when ``stream_options.include_usage`` is set, then ``data: [DONE]``. Tool calls follow the
SDK's types (``ChatCompletionMessageFunctionToolCall``, ``ChoiceDeltaToolCall``) and the
live recordings in the openai SDK's test snapshots: a stream opens each call with a chunk
carrying its ``index``, ``id``, ``type`` and ``function.name`` with empty ``arguments``, then
sends the arguments in fragments under the same ``index``; calls follow one another.
"""

from __future__ import annotations

from typing import Any

from tests.loopback import Reply, sse

MODEL = "gpt-4o-mini"
CANARY = "sk-canary-123"

USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
}


def completion(
    content: str | None = "Hello there.",
    *,
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = USAGE,
    model: str = MODEL,
    refusal: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice (``extra`` joins its message)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                    **({"tool_calls": tool_calls} if tool_calls is not None else {}),
                    **(extra or {}),
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(
    content: str | None = None,
    *,
    finish_reason: str | None = None,
    role: str | None = None,
    refusal: str | None = None,
    model: str = MODEL,
    tool_calls: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with one choice (``usage: null`` as OpenAI sends it)."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if refusal is not None:
        delta["refusal"] = refusal
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    delta.update(extra or {})
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


def usage_chunk(usage: dict[str, Any] = USAGE, model: str = MODEL) -> dict[str, Any]:
    """The last chunk when ``include_usage`` is set: no choices, only usage."""
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def stream_events(
    texts: tuple[str, ...] = ("Hel", "lo", "!"),
    *,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = USAGE,
    done: bool = True,
) -> list[bytes]:
    """SSE chunks of a whole stream: role chunk, text chunks, finish, usage, ``[DONE]``."""
    events: list[tuple[str | None, Any]] = [(None, chunk("", role="assistant"))]
    events += [(None, chunk(text)) for text in texts]
    events.append((None, chunk(finish_reason=finish_reason)))
    if usage is not None:
        events.append((None, usage_chunk(usage)))
    if done:
        events.append((None, "[DONE]"))
    return sse(events)


def stream_reply(**kwargs: Any) -> Reply:
    """A ``Reply`` sending ``stream_events(**kwargs)``."""
    return Reply(chunks=stream_events(**kwargs))


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """One entry of ``message.tool_calls``: the arguments are JSON *text*."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


#: Two calls in one turn, as gpt-4o makes them (ids in OpenAI's shape).
PARALLEL = (
    ("call_lQnnsesjFMWMQ5IeWPHzR4th", "get_weather", '{"city": "Edinburgh", "units": "c"}'),
    ("call_2xjOUgaCdiwAcl9ZBL9LyMUU", "get_stock_price", '{"ticker": "AAPL"}'),
)


def tool_call_chunks(
    calls: tuple[tuple[str, str, list[str]], ...],
    *,
    finish_reason: str = "tool_calls",
) -> list[dict[str, Any]]:
    """The chunks of a tool-calling turn: ``calls`` are (id, name, argument fragments)."""
    out = [chunk(role="assistant", extra={"content": None})]
    for index, (call_id, name, fragments) in enumerate(calls):
        opening = {"index": index, "id": call_id, "type": "function"}
        out.append(chunk(tool_calls=[{**opening, "function": {"name": name, "arguments": ""}}]))
        out += [
            chunk(tool_calls=[{"index": index, "function": {"arguments": piece}}])
            for piece in fragments
        ]
    out.append(chunk(finish_reason=finish_reason))
    return out


def tool_call_stream(
    calls: tuple[tuple[str, str, list[str]], ...], *, finish_reason: str = "tool_calls"
) -> Reply:
    """``tool_call_chunks`` as a whole SSE reply: usage chunk and ``[DONE]`` at the end."""
    events: list[tuple[str | None, Any]] = [
        (None, c) for c in tool_call_chunks(calls, finish_reason=finish_reason)
    ]
    events += [(None, usage_chunk()), (None, "[DONE]")]
    return Reply(chunks=sse(events))


def split(text: str, every: int) -> list[str]:
    """``text`` cut into pieces of ``every`` characters (anywhere: inside strings, escapes)."""
    return [text[i : i + every] for i in range(0, len(text), every)]
