"""Anthropic-shaped replies for loopback servers: messages, SSE streams and error envelopes.

The shapes follow the Messages API reference (``type: message`` replies, the
``message_start`` ... ``message_stop`` event sequence, ``{"type": "error", ...}`` envelopes).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tests.loopback import LoopbackServer, Reply, sse

__all__ = [
    "MODEL",
    "FastLoopbackServer",
    "block_stream",
    "error_body",
    "error_reply",
    "message_body",
    "redacted_block",
    "stream_events",
    "stream_reply",
    "thinking_block",
    "tool_use_block",
]

#: Not one the SDK marks deprecated (it warns, and warnings are errors here).
MODEL = "claude-sonnet-4-6"


class FastLoopbackServer(LoopbackServer):
    """A ``LoopbackServer`` whose ``stop()`` returns in milliseconds, not half a second.

    Why: ``serve_forever`` polls for shutdown every 0.5 s by default, which costs every test
    half a second in teardown. Drop this once tests/loopback.py passes a short poll_interval.
    """

    def start(self) -> FastLoopbackServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> FastLoopbackServer:
        return self.start()


def message_body(
    text: str | Sequence[str] = "Hello!",
    *,
    stop_reason: str | None = "end_turn",
    usage: dict[str, Any] | None = None,
    model: str = MODEL,
    blocks: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A non-streamed reply; ``text`` may be several text blocks; ``blocks`` come first."""
    texts = [text] if isinstance(text, str) else list(text)
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [*blocks, *({"type": "text", "text": t} for t in texts)],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage if usage is not None else {"input_tokens": 12, "output_tokens": 6},
    }


def stream_events(
    deltas: Sequence[str] = ("Hel", "lo", "!"),
    *,
    stop_reason: str | None = "end_turn",
    input_usage: dict[str, Any] | None = None,
    output_tokens: int = 6,
    model: str = MODEL,
    ping: bool = True,
    thinking: Sequence[str] = (),
    stop: bool = True,
) -> list[tuple[str | None, Any]]:
    """The event sequence of one streamed message (pairs for ``tests.loopback.sse``).

    ``thinking`` deltas come first in their own block (index 0) when given; ``stop=False``
    leaves out the final ``message_stop``.
    """
    start_usage = {"input_tokens": 12, "output_tokens": 1, **(input_usage or {})}
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    ]
    index = 0
    if thinking:
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
        )
        for piece in thinking:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    events.append(
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    if ping:
        events.append(("ping", {"type": "ping"}))
    for piece in deltas:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.extend(_message_end(stop_reason, output_tokens, stop=stop))
    return events


def _message_end(
    stop_reason: str | None, output_tokens: int, *, stop: bool = True
) -> list[tuple[str | None, Any]]:
    """``message_delta`` with the stop reason and usage, then ``message_stop`` (if ``stop``)."""
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }
    return [
        ("message_delta", delta),
        *([("message_stop", {"type": "message_stop"})] if stop else []),
    ]


def stream_reply(events: Sequence[tuple[str | None, Any]] | None = None, **kw: Any) -> Reply:
    """A 200 SSE reply carrying ``events`` (default: ``stream_events()``)."""
    return Reply(chunks=sse(events if events is not None else stream_events()), **kw)


def error_body(kind: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error envelope."""
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_reply(
    status: int,
    kind: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> Reply:
    """An HTTP error reply with Anthropic's envelope."""
    return Reply(status, error_body(kind, message, request_id), headers=headers or {})


# --------------------------------------------------------------------------- content blocks


def tool_use_block(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` content block (the SDK's ``ToolUseBlock``)."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def thinking_block(text: str, signature: str) -> dict[str, Any]:
    """A ``thinking`` content block with its signature (the SDK's ``ThinkingBlock``)."""
    return {"type": "thinking", "thinking": text, "signature": signature}


def redacted_block(data: str) -> dict[str, Any]:
    """A ``redacted_thinking`` content block (the SDK's ``RedactedThinkingBlock``)."""
    return {"type": "redacted_thinking", "data": data}


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, Any]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def block_stream(
    blocks: Sequence[tuple[Any, ...]],
    *,
    stop_reason: str = "end_turn",
    output_tokens: int = 9,
    model: str = MODEL,
) -> list[tuple[str | None, Any]]:
    """The event sequence of a streamed message holding ``blocks``, in order.

    Each block is ``("text", [pieces])``, ``("tool_use", id, name, [json fragments])``,
    ``("thinking", [pieces], signature)`` or ``("redacted_thinking", data)``, streamed as the
    Messages API does: ``content_block_start`` (a tool_use with ``input: {}``, thinking with
    empty text and signature), its deltas (``text_delta``, ``input_json_delta``,
    ``thinking_delta`` then one ``signature_delta``) and ``content_block_stop``.
    """
    events = stream_events((), model=model)[:1]  # message_start
    for index, (kind, *rest) in enumerate(blocks):
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in rest[0]]
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": rest[0], "name": rest[1], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in rest[2]]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in rest[0]]
            deltas.append({"type": "signature_delta", "signature": rest[1]})
        else:
            start, deltas = {"type": "redacted_thinking", "data": rest[0]}, []
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        events.extend(_delta(index, d) for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.extend(_message_end(stop_reason, output_tokens))
    return events
