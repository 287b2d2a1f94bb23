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
    "error_body",
    "error_reply",
    "message_body",
    "stream_events",
    "stream_reply",
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
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    if stop:
        events.append(("message_stop", {"type": "message_stop"}))
    return events


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
