"""Cohere-shaped replies for loopback servers: v2 chat replies, SSE streams, error bodies.

The shapes follow the official ``cohere`` SDK's v2 types: ``V2ChatResponse`` (``id``,
``finish_reason``, ``message`` with ``content``/``tool_calls``/``tool_plan``, ``usage``
with ``billed_units`` and ``tokens``) and the ``V2ChatStreamResponse`` events
(``message-start`` ... ``message-end``, each with ``type`` and, where it has one, ``index``
and ``delta``). Errors are ``{"id", "message"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.loopback import Reply, sse

__all__ = [
    "MODEL",
    "REPLY_ID",
    "chat_body",
    "error_reply",
    "stream_events",
    "stream_reply",
    "tool_call",
    "usage",
]

MODEL = "command-a-03-2025"
REPLY_ID = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"


def usage(
    tokens: tuple[int, int] | None = (12, 6), billed: tuple[int, int] | None = (5, 6)
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if billed is not None:
        out["billed_units"] = {"input_tokens": billed[0], "output_tokens": billed[1]}
    if tokens is not None:
        out["tokens"] = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
    return out


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A ``ToolCallV2``: arguments are JSON text."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_body(
    text: str | None = "Hello!",
    *,
    finish_reason: str = "COMPLETE",
    calls: Sequence[dict[str, Any]] = (),
    thinking: str | None = None,
    usage_: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A non-streamed ``/v2/chat`` reply."""
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking})
    if text is not None:
        content.append({"type": "text", "text": text})
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_plan"] = "I will call the tool."
        message["tool_calls"] = list(calls)
    return {
        "id": REPLY_ID,
        "message": message,
        "finish_reason": finish_reason,
        "usage": usage_ if usage_ is not None else usage(),
    }


def _event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def stream_events(
    deltas: Sequence[str] = ("Hel", "lo", "!"),
    *,
    finish_reason: str = "COMPLETE",
    calls: Sequence[tuple[str, str, Sequence[str]]] = (),
    usage_: dict[str, Any] | None = None,
    end: dict[str, Any] | None = None,
) -> list[tuple[str | None, Any]]:
    """A whole stream: text deltas, then tool calls ``(id, name, argument fragments)``."""
    events: list[tuple[str | None, Any]] = [
        _event("message-start", id=REPLY_ID, delta={"message": {"role": "assistant"}})
    ]
    if deltas:
        events.append(
            _event(
                "content-start",
                index=0,
                delta={"message": {"content": {"type": "text", "text": ""}}},
            )
        )
        for text in deltas:
            events.append(
                _event("content-delta", index=0, delta={"message": {"content": {"text": text}}})
            )
        events.append(_event("content-end", index=0))
    if calls:
        events.append(
            _event("tool-plan-delta", delta={"message": {"tool_plan": "I will call it."}})
        )
    for index, (call_id, name, fragments) in enumerate(calls):
        start = {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        events.append(
            _event("tool-call-start", index=index, delta={"message": {"tool_calls": start}})
        )
        for fragment in fragments:
            piece = {"function": {"arguments": fragment}}
            events.append(
                _event("tool-call-delta", index=index, delta={"message": {"tool_calls": piece}})
            )
        events.append(_event("tool-call-end", index=index))
    final = end if end is not None else {"finish_reason": finish_reason}
    final.setdefault("usage", usage_ if usage_ is not None else usage())
    events.append(_event("message-end", delta=final))
    return events


def stream_reply(events: Sequence[tuple[str | None, Any]] | None = None, **kw: Any) -> Reply:
    """A 200 SSE reply carrying ``events`` (default: ``stream_events()``)."""
    return Reply(
        chunks=sse(events if events is not None else stream_events()),
        content_type="text/event-stream",
        **kw,
    )


def error_reply(status: int, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    """An HTTP error with Cohere's body."""
    return Reply(
        status, {"id": "7d1f6e5a-0000-4000-8000-000000000000", "message": message}, headers or {}
    )
