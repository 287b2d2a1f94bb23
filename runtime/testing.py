"""Shipped test doubles: a scripted provider usable from YAML, and a no-network guard.

``ScriptedProvider`` is named by ``class: runtime.testing.ScriptedProvider`` in
providers.yaml. Its replies come from the ``replies`` option (cycled), from ``queue()``
(consumed first, in order), or, when neither has any, it echoes the prompt. A reply can be
text, a list of stream chunks, a delay, or an error. Every request it receives is recorded in
``calls``.

``no_network()`` makes any connection to a non-loopback address fail loudly, so a test that
would reach the internet fails instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from . import errors
from .providers.base import ChatProvider
from .types import (
    ChatRequest,
    FinishReason,
    Part,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)

__all__ = ["NetworkBlockedError", "Script", "ScriptedProvider", "no_network"]

#: Error names usable in YAML replies (``error: rate_limit``).
ERROR_KINDS: dict[str, type[errors.ProviderError]] = {
    "authentication": errors.AuthenticationError,
    "permission": errors.PermissionDeniedError,
    "not_found": errors.NotFoundError,
    "bad_request": errors.BadRequestError,
    "context_length": errors.ContextLengthExceededError,
    "content_filter": errors.ContentFilteredError,
    "rate_limit": errors.RateLimitError,
    "server": errors.ServerError,
    "timeout": errors.ProviderTimeoutError,
    "connection": errors.ProviderConnectionError,
    "malformed": errors.MalformedResponseError,
}


@dataclass(frozen=True)
class Script:
    """One scripted reply.

    ``text`` (or ``chunks`` for a stream; ``text`` defaults to their join), ``delay`` seconds
    before answering, ``chunk_delay`` between chunks, ``error`` raised instead of answering
    (after ``fail_after`` chunks when streaming).
    """

    text: str | None = None
    chunks: Sequence[str] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    error: BaseException | None = None
    fail_after: int = 0
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    #: Tool calls the reply makes (after its text); streamed as argument fragments.
    tool_calls: Sequence[ToolCall] = ()

    @classmethod
    def from_option(cls, item: Any) -> Script:
        """Build a Script from a YAML ``replies`` item: a string or a mapping."""
        if isinstance(item, str):
            return cls(text=item)
        if not isinstance(item, Mapping):
            raise errors.InvalidRequestError(
                f"ScriptedProvider replies: expected a string or a mapping, got {item!r}"
            )
        data = dict(item)
        kind = data.pop("error", None)
        message = data.pop("message", f"scripted {kind} error")
        retry_after = data.pop("retry_after", None)
        error: BaseException | None = None
        if kind is not None:
            exc_cls = ERROR_KINDS.get(str(kind))
            if exc_cls is None:
                raise errors.InvalidRequestError(
                    f"ScriptedProvider replies: unknown error {kind!r}; "
                    f"one of {', '.join(sorted(ERROR_KINDS))}"
                )
            if exc_cls in (errors.RateLimitError, errors.ServerError):
                error = exc_cls(message, retry_after=retry_after)
            else:
                error = exc_cls(message)
        return cls(error=error, **data)

    def full_text(self) -> str:
        if self.text is not None:
            return self.text
        return "".join(self.chunks or ())


def _words(text: str) -> list[str]:
    """Split text into stream chunks that join back to it exactly."""
    parts: list[str] = []
    for index, word in enumerate(text.split(" ")):
        parts.append(word if index == 0 else " " + word)
    return [p for p in parts if p]


class ScriptedProvider(ChatProvider):
    """A provider that answers from a script; options: ``replies``, ``delay``."""

    streams_natively: ClassVar[bool] = True
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "image", "tool_call", "tool_result", "reasoning"}
    )
    features: ClassVar[frozenset[str]] = frozenset({"tools", "structured_output", "reasoning"})

    def _initialize_client(self, **kwargs: Any) -> None:
        replies = kwargs.pop("replies", None) or []
        self.default_delay = float(kwargs.pop("delay", 0.0))
        if kwargs:
            raise errors.InvalidRequestError(
                f"ScriptedProvider: unknown options {sorted(kwargs)}; known: replies, delay"
            )
        self._cycle = [Script.from_option(item) for item in replies]
        self._next = 0
        self._queue: deque[Script] = deque()
        self.calls: list[ChatRequest] = []

    def queue(self, *items: Script | str | BaseException) -> None:
        """Queue replies for the next calls (consumed before the ``replies`` option)."""
        for item in items:
            if isinstance(item, BaseException):
                self._queue.append(Script(error=item))
            elif isinstance(item, str):
                self._queue.append(Script(text=item))
            else:
                self._queue.append(item)

    def _take(self, request: ChatRequest) -> Script:
        self.calls.append(request)
        if self._queue:
            return self._queue.popleft()
        if self._cycle:
            script = self._cycle[self._next % len(self._cycle)]
            self._next += 1
            return script
        return Script(text=request.as_prompt())

    @staticmethod
    def _usage(script: Script, request: ChatRequest, text: str) -> Usage:
        if script.usage is not None:
            return script.usage
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return Usage(prompt_tokens=prompt_words, completion_tokens=len(text.split()))

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        script = self._take(request)
        delay = script.delay or self.default_delay
        if delay:
            await asyncio.sleep(delay)
        if script.error is not None:
            raise script.error
        text = script.full_text()
        if request.max_tokens is not None:
            words = text.split(" ")
            if len(words) > request.max_tokens:
                text = " ".join(words[: request.max_tokens])
                return ProviderResponse(text, "length", self._usage(script, request, text))
        usage = self._usage(script, request, text)
        if script.tool_calls:
            parts: list[Part] = [TextPart(text)] if text else []
            parts.extend(script.tool_calls)
            return ProviderResponse(None, script.finish_reason, usage, parts=parts)
        return ProviderResponse(text, script.finish_reason, usage)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        script = self._take(request)
        delay = script.delay or self.default_delay
        if delay:
            await asyncio.sleep(delay)
        chunks = list(script.chunks) if script.chunks is not None else _words(script.full_text())
        if script.error is not None and script.fail_after == 0:
            raise script.error
        for index, chunk in enumerate(chunks):
            if index and script.chunk_delay:
                await asyncio.sleep(script.chunk_delay)
            yield TextDelta(chunk)
            if script.error is not None and index + 1 >= script.fail_after:
                raise script.error
        for index, call in enumerate(script.tool_calls):
            for event in _call_events(index, call):
                yield event
        text = "".join(chunks)
        yield StreamEnd(script.finish_reason, self._usage(script, request, text))


def _call_events(index: int, call: ToolCall) -> list[StreamEvent]:
    """A tool call as a stream sends it: id and name, argument fragments, then done."""
    import json

    raw = json.dumps(dict(call.arguments))
    step = max(1, len(raw) // 3)
    events: list[StreamEvent] = [ToolCallDelta(index, call.id, call.name, raw[:step])]
    events += [
        ToolCallDelta(index, arguments=raw[i : i + step]) for i in range(step, len(raw), step)
    ]
    events.append(ToolCallDone(index, call))
    return events


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def no_network() -> Iterator[None]:
    """Refuse every connection and name lookup that is not loopback, for the block's duration."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _check(address: Any) -> None:
        if isinstance(address, tuple) and address and not _is_loopback(address[0]):
            raise NetworkBlockedError(f"network access to {address[0]!r} is blocked in tests")

    def connect(self: socket.socket, address: Any) -> None:
        _check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(
            host.decode() if isinstance(host, bytes) else host
        ):
            raise NetworkBlockedError(f"name lookup of {host!r} is blocked in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo
