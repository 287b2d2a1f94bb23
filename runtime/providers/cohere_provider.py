"""Cohere's v2 Chat API (``POST /v2/chat``) on the ``WireProvider`` base.

Shapes from Cohere's API reference and the official ``cohere`` Python SDK's types; tested
in ``tests/wire/test_cohere.py``. Choices:

- ``base_url`` has no ``/v2`` (the SDK's default is ``https://api.cohere.com`` and its
  calls go to ``v2/chat`` under it); the key goes as ``Authorization: Bearer``.
- Messages and tools are Chat Completions' shapes in Cohere's v2 API (roles ``system``,
  ``user``, ``assistant``, ``tool``; ``tool_calls`` with JSON-text arguments; one ``tool``
  message per result; ``{"type": "function", "function": {...}}`` tools), so
  ``openai_body`` encodes them; an assistant turn that only calls tools has no ``content``.
  Reasoning parts are dropped from the input.
- Replies: ``message.content`` items of type ``text`` are the answer, ``thinking`` items
  (reasoning models) ``ReasoningPart``s; ``tool_plan`` (the model's note on why it calls
  tools) is not part of the answer and is dropped.
- Usage: ``usage.tokens`` (what the model read and wrote) gives the prompt and completion
  counts; ``usage.billed_units`` is used only when ``tokens`` is missing.
- ``finish_reason`` ``COMPLETE``/``STOP_SEQUENCE`` -> stop, ``MAX_TOKENS`` -> length,
  ``TOOL_CALL`` -> tool_calls. ``ERROR`` and ``TIMEOUT`` (and a ``message-end`` carrying
  ``delta.error``) are an error inside a 200: raised as a ``ServerError``.
- Errors are ``{"id", "message"}``; a message saying the token is invalid (Cohere answers
  498 for it) reads as ``AuthenticationError``.
- ``tool_choice`` ``required``/``none`` as ``REQUIRED``/``NONE``; a named choice sends only
  that tool, with ``REQUIRED``. Cohere has no switch for parallel calls:
  ``parallel_tool_calls=False`` is refused (``InvalidRequestError``), ``True`` not sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InvalidRequestError
from ..status import ErrorInfo, default_error_parser
from ..types import (
    ChatRequest,
    FinishReason,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)
from .openai_body import encode_messages, encode_tools
from .wire import Route, StreamDecoder, WireProvider

if TYPE_CHECKING:
    from ..sse import SSEEvent

__all__ = ["CohereProvider", "CohereStream", "cohere_error_parser"]

DEFAULT_BASE_URL = "https://api.cohere.com"
CHAT_PATH = "/v2/chat"
PROTOCOL = "cohere"

FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
#: Finish reasons that mean the generation failed, and the HTTP status each stands for.
_FAILED = {"ERROR": 500, "TIMEOUT": 504}
_PROTECTED = ("model", "messages", "stream")
_INVALID_TOKEN = re.compile(r"\binvalid (api )?token\b", re.IGNORECASE)


def cohere_error_parser(body: Any) -> ErrorInfo | None:
    """``{"id", "message"}``; "invalid api token" is marked so it maps to an auth error."""
    info = default_error_parser(body)
    if info is not None and _INVALID_TOKEN.search(info.message):
        return ErrorInfo(info.message, info.code or "api_key_invalid", info.type)
    return info


def _count(usage: Any, group: str, name: str) -> int | None:
    counts = usage.get(group) if isinstance(usage, Mapping) else None
    value = counts.get(name) if isinstance(counts, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value) if float(value).is_integer() else None


def parse_usage(usage: Any) -> Usage:
    """``tokens`` counts, else ``billed_units`` (see the module docstring)."""
    group = "tokens" if _count(usage, "tokens", "input_tokens") is not None else "billed_units"
    return Usage(_count(usage, group, "input_tokens"), _count(usage, group, "output_tokens"))


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Reader:
    """What a reply and a stream share: the provider, the request, errors and tool calls."""

    def __init__(self, provider: CohereProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request

    def failed(self, finish: Any, error: Any, where: str) -> None:
        """Raise the error a failed generation stands for (a ``finish_reason`` of ERROR...)."""
        if finish in _FAILED or error:
            text = error if isinstance(error, str) and error else f"finish_reason {finish}"
            status = _FAILED.get(finish, 500)
            raise self.provider.error_in_body(status, {"message": text}, self.request, where)

    def content(self, item: Any, index: int) -> list[StreamEvent]:
        """One ``content`` item (or a streamed delta of one) as events."""
        if not isinstance(item, Mapping):
            return []
        if text := _text(item.get("text")):
            return [TextDelta(text)]
        if thinking := _text(item.get("thinking")):
            return [ReasoningDelta(thinking, index=index)]
        return []

    def call(self, index: int, call_id: Any, name: Any, raw: str) -> ToolCallDone:
        name = name if isinstance(name, str) else ""
        call_id = call_id if isinstance(call_id, str) else None
        return self.provider.tool_call_done(self.request, index, call_id, name, raw)


def reply_events(
    provider: CohereProvider, body: Mapping[str, Any], request: ChatRequest
) -> Iterator[StreamEvent]:
    """A ``/v2/chat`` JSON reply as the events its stream would have yielded."""
    reader = _Reader(provider, request)
    reader.failed(body.get("finish_reason"), None, "the reply")
    message = body.get("message")
    if not isinstance(message, Mapping):
        raise provider.malformed("the reply has no 'message' object", request)
    content = message.get("content") or []
    calls = message.get("tool_calls") or []
    if not isinstance(content, list) or not isinstance(calls, list):
        raise provider.malformed("message.content or message.tool_calls is not a list", request)
    for index, item in enumerate(content):
        yield from reader.content(item, index)
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise provider.malformed(f"message.tool_calls[{index}] has no function", request)
        arguments = function.get("arguments")
        raw = arguments if isinstance(arguments, str) else ""
        yield reader.call(index, call.get("id"), function.get("name"), raw)
    reply_id = body.get("id")
    yield StreamEnd(
        provider.map_finish(body.get("finish_reason")),
        parse_usage(body.get("usage")),
        None,
        reply_id if isinstance(reply_id, str) else None,
    )


class CohereStream(StreamDecoder):
    """``message-start`` ... ``message-end``: text, thinking and tool-call events."""

    terminal = "its message-end event"

    def __init__(self, provider: CohereProvider, request: ChatRequest) -> None:
        super().__init__()
        self._reader = _Reader(provider, request)
        self._id: str | None = None
        self._end = StreamEnd()
        self._calls: dict[int, tuple[Any, Any, list[str]]] = {}  # index -> id, name, JSON

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        provider, request = self._reader.provider, self._reader.request
        data = provider.event_object(event, request)
        kind = data.get("type") or event.event
        index = data.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        delta = _obj(data.get("delta"))
        message = _obj(delta.get("message"))
        if kind == "content-delta":
            return self._reader.content(message.get("content"), index)
        if kind in ("tool-call-start", "tool-call-delta"):
            return self._tool_delta(index, message.get("tool_calls"))
        if kind == "tool-call-end":
            call = self._calls.pop(index, None)
            return [] if call is None else [self._reader.call(index, *call[:2], "".join(call[2]))]
        if kind == "message-start" and isinstance(data.get("id"), str):
            self._id = data["id"]
        elif kind == "message-end":
            finish = delta.get("finish_reason")
            self._reader.failed(finish, delta.get("error"), "the stream")
            usage = parse_usage(delta.get("usage"))
            self._end = StreamEnd(provider.map_finish(finish), usage, None, self._id)
            self.done = True
        return ()  # content-start/end, tool-plan-delta, citations, debug

    def _tool_delta(self, index: int, call: Any) -> list[StreamEvent]:
        if not isinstance(call, Mapping):
            return []
        function = _obj(call.get("function"))
        fragment = function.get("arguments")
        fragment = fragment if isinstance(fragment, str) else ""
        call_id, name = _text(call.get("id")), _text(function.get("name"))
        known = self._calls.setdefault(index, (call_id, name, []))
        known[2].append(fragment)
        self._calls[index] = (known[0] or call_id, known[1] or name, known[2])
        return [ToolCallDelta(index, call_id, name, fragment)]

    def finish(self) -> Iterable[StreamEvent]:
        return (self._end,)


# --------------------------------------------------------------------------- requests


def build_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/v2/chat`` body: ``params`` merged, except what the runtime sets itself."""
    portable = _tools(request)
    clash = [key for key in (*_PROTECTED, *portable) if key in request.params]
    if clash:
        raise InvalidRequestError(
            f"parameter {clash[0]!r} cannot be passed as an extra parameter: the runtime sets it"
        )
    messages = [
        {k: v for k, v in m.items() if v is not None} for m in encode_messages(request.messages)
    ]
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return {**body, **request.params, **portable, "stream": stream}


def _tools(request: ChatRequest) -> dict[str, Any]:
    if request.parallel_tool_calls is False:
        raise InvalidRequestError(
            "Cohere cannot be limited to one tool call per turn: leave parallel_tool_calls "
            "unset and answer every call it makes"
        )
    if not request.tools:
        return {}
    choice = request.tool_choice
    chosen = (
        [t for t in request.tools if t.name == choice]
        if choice not in (None, "auto", "required", "none")
        else list(request.tools)
    )
    out: dict[str, Any] = {"tools": encode_tools(chosen)}
    if choice == "none":
        out["tool_choice"] = "NONE"
    elif choice not in (None, "auto"):
        out["tool_choice"] = "REQUIRED"
    return out


# --------------------------------------------------------------------------- provider


class CohereProvider(WireProvider):
    """Cohere Command models through the v2 Chat API, with streaming and tools.

    Options: ``headers`` (extra static headers) and ``max_connections`` (pool size), the
    base's. Without an API key no ``Authorization`` header is sent.
    """

    protocol: ClassVar[str] = PROTOCOL
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "tool_call", "tool_result", "reasoning"}
    )
    features: ClassVar[frozenset[str]] = frozenset({"tools"})
    provider_name: str = "cohere"
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    own_headers: ClassVar[frozenset[str]] = frozenset({"content-type"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    malformed_prefix: ClassVar[str] = f"POST {CHAT_PATH}: "
    finish_reasons: ClassVar[Mapping[str, FinishReason]] = FINISH_REASONS
    error_parser = staticmethod(cohere_error_parser)

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def route(self, request: ChatRequest, stream: bool) -> Route:
        return Route(CHAT_PATH)

    def encode(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return build_body(request, stream=stream)

    def reply_events(self, body: Mapping[str, Any], request: ChatRequest) -> Iterable[StreamEvent]:
        return reply_events(self, body, request)

    def stream_decoder(self, request: ChatRequest) -> CohereStream:
        return CohereStream(self, request)
