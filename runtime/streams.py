"""The stream objects ``rt.stream()`` and ``rt.stream_events()`` return, over one call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import Completion, StreamEvent, TextDelta

if TYPE_CHECKING:
    from .engine.call import Call

__all__ = ["CompletionStream", "EventStream"]


class _CallStream:
    """An async iterator over one streamed call; ``completion`` is set when it has ended."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._events = call.events()

    async def aclose(self) -> None:
        """Stop the stream and release its connection and limiter slot."""
        await self._events.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def completion(self) -> Completion | None:
        """The whole result (text, tool calls, usage...), once the stream has ended normally."""
        return self._call.completion


class CompletionStream(_CallStream):
    """An async iterator of text deltas; after it ends, ``completion`` holds the whole result.

    ``async for delta in rt.stream(...)`` yields ``str`` pieces as they arrive. To leave the
    loop early and free the connection and the limiter slot at once, use
    ``async with rt.stream(...) as stream:`` or call ``await stream.aclose()``; otherwise they
    are freed when the stream object is garbage-collected.
    """

    def __aiter__(self) -> CompletionStream:
        return self

    async def __anext__(self) -> str:
        while True:
            event = await self._events.__anext__()
            if isinstance(event, TextDelta) and event.text:
                return event.text

    async def __aenter__(self) -> CompletionStream:
        return self


class EventStream(_CallStream):
    """An async iterator of typed events (``runtime.types``): text, reasoning and tool-call
    deltas, complete tool calls, usage updates and the final ``StreamEnd``. Event kinds a
    consumer does not know should be ignored: more may be added."""

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def __aenter__(self) -> EventStream:
        return self
