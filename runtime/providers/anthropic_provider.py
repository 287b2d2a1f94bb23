"""The Anthropic Messages API (``POST /v1/messages``) on the ``WireProvider`` base.

This module reads replies and streams; ``anthropic_request`` builds the request body (its
docstring has the rules for tools, images, thinking and structured output). Choices made
here, tested in ``tests/wire/test_anthropic.py`` and ``test_anthropic_tools.py``:

- ``base_url`` does **not** include ``/v1``, exactly as the official SDK's ``base_url``
  (default ``https://api.anthropic.com``); a trailing slash is optional and a path prefix
  (a proxy's ``https://proxy/anthropic``) is kept, so one value works for both.
- System messages at the start of the conversation become the top-level ``system`` string
  (several are joined with a blank line). A system message after a user or assistant turn
  raises ``InvalidRequestError``: the API has no place for it and moving it silently would
  change what the model reads.
- ``max_tokens`` is required by the API and is always sent under that name (the model's
  ``max_tokens_param`` is ignored: the API knows no other). When the call gives none the
  provider option ``default_max_tokens`` (4096) is sent.
- ``params`` are merged into the body but may not replace what the provider sets itself
  (model, messages, system, stream, max_tokens, temperature, and tools, tool_choice,
  thinking or output_config when the call's portable arguments set them).
- Replies: ``text`` blocks are the answer; ``thinking`` / ``redacted_thinking`` blocks
  become ``ReasoningPart``s (origin ``anthropic``, signature or data kept) in their place;
  ``tool_use`` blocks ``ToolCall``s. A stream yields a ``ToolCallDelta`` when a tool_use
  block starts (id and name) and for each ``input_json_delta`` fragment as it comes, and a
  ``ToolCallDone`` at that block's ``content_block_stop``; arguments that are not a JSON
  object raise ``ToolArgumentsError`` with the raw text. ``thinking_delta`` and
  ``signature_delta`` become ``ReasoningDelta``s. Blocks of kinds we do not use (server
  tools, citations) are skipped. When structured output went through the forced output
  tool, that tool's input is the answer's text (streamed fragment by fragment) and
  ``stop_reason: tool_use`` reads as ``stop``.
- ``stop_reason`` ``refusal`` is returned as finish reason ``content_filter``, not raised: in
  a stream it arrives after the text has been delivered, so raising there would disagree
  with the non-streamed call; the caller (or the runtime's policy) decides.
- Usage: Anthropic's ``input_tokens`` counts only the tokens after the last cache
  breakpoint, so ``prompt_tokens`` is ``input_tokens + cache_creation_input_tokens +
  cache_read_input_tokens`` (the whole prompt, as other vendors report it),
  ``cached_tokens`` is ``cache_read_input_tokens`` and ``cache_write_tokens`` is
  ``cache_creation_input_tokens``.
- A stream that ends without ``message_stop`` raises ``ProviderConnectionError``
  (retryable: the connection or a proxy cut it); an ``error`` event, or a 200 reply of
  ``type: error``, raises the error its ``error.type`` names (``overloaded_error`` ->
  ``ServerError``, and so on), mapped as the HTTP status Anthropic documents for that type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..status import ErrorInfo, default_error_parser
from ..types import (
    ChatRequest,
    FinishReason,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)
from .anthropic_request import PROTOCOL, build_body, output_tool
from .wire import Route, StreamDecoder, WireOptions, WireProvider

if TYPE_CHECKING:
    from ..sse import SSEEvent

__all__ = [
    "DEFAULT_BASE_URL",
    "AnthropicOptions",
    "AnthropicProvider",
    "AnthropicStream",
    "anthropic_error_parser",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
MESSAGES_PATH = "/v1/messages"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "unknown",
}

#: The HTTP status Anthropic documents for each ``error.type``; an error inside a 200 reply
#: or stream is mapped through the same table as an HTTP error of that status.
_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: Anthropic's wording when input plus max_tokens do not fit; the seam's generic patterns
#: miss it ("prompt is too long" they already catch).
_CONTEXT_LIMIT = re.compile(r"exceed context limit", re.IGNORECASE)


class AnthropicOptions(WireOptions):
    """Options of an Anthropic provider (providers.yaml ``options:``)."""

    anthropic_version: str = Field(
        DEFAULT_ANTHROPIC_VERSION, min_length=1, description="Sent as anthropic-version."
    )
    anthropic_beta: str | list[str] | None = Field(
        None, description="Beta features, sent as anthropic-beta (a list is joined by commas)."
    )
    default_max_tokens: int = Field(
        DEFAULT_MAX_TOKENS, ge=1, description="max_tokens sent when the call gives none."
    )

    @field_validator("anthropic_beta", mode="before")
    @classmethod
    def _beta(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ValueError("must be a string or a list of strings")


def anthropic_error_parser(body: Any) -> ErrorInfo | None:
    """Read ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

    The request id, when present, is appended to the message (support asks for it). Anything
    else falls back to the seam's generic parser.
    """
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping) or not isinstance(err.get("message"), str):
        return default_error_parser(body)
    message: str = err["message"]
    kind = err.get("type")
    request_id = body.get("request_id")
    if isinstance(request_id, str) and request_id:
        message = f"{message} (request_id {request_id})"
    # Why a code here: it is the seam's marker for ContextLengthExceededError.
    code = "context_length_exceeded" if _CONTEXT_LIMIT.search(message) else None
    return ErrorInfo(message, code, str(kind) if kind is not None else None)


def _error_kind(envelope: Any) -> str | None:
    err = envelope.get("error") if isinstance(envelope, Mapping) else None
    kind = err.get("type") if isinstance(err, Mapping) else None
    return kind if isinstance(kind, str) else None


# --------------------------------------------------------------------------- replies


def _count(usage: Mapping[str, Any], name: str) -> int | None:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(usage: Any) -> Usage:
    """Our ``Usage`` from Anthropic's counts (see the module docstring for the arithmetic)."""
    if not isinstance(usage, Mapping):
        return Usage()
    written = _count(usage, "cache_creation_input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    given = _count(usage, "input_tokens")
    return Usage(
        prompt_tokens=given + (written or 0) + (read or 0) if given is not None else None,
        completion_tokens=_count(usage, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=written,
    )


class _Reader:
    """What the reply and the stream decoders share: the provider, the request, the blocks."""

    def __init__(self, provider: WireProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.output = output_tool(request)  # a tool_use of this name is the answer's text
        self.answered = False  # whether the output tool was called

    def string(self, block: Mapping[str, Any], key: str, what: str) -> str:
        value = block.get(key)
        if not isinstance(value, str):
            raise self.provider.malformed(f"{what} has no {key!r} string", self.request)
        return value

    def finish(self, stop_reason: Any) -> FinishReason:
        if self.answered and stop_reason == "tool_use":
            return "stop"  # the forced output tool is the answer, not a call to make
        return self.provider.map_finish(stop_reason)

    def block(self, index: int, block: Mapping[str, Any], whole: bool) -> list[StreamEvent]:
        """A block as it starts (``whole``: as a reply gives it, complete)."""
        kind = block.get("type")
        if kind == "text":
            text = self.string(block, "text", "a text block") if whole else block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            if whole:
                text = self.string(block, "thinking", "a thinking block")
            text = text if isinstance(text, str) else ""
            signature = signature if isinstance(signature, str) and signature else None
            return [ReasoningDelta(text, signature, index=index)] if text or signature else []
        if kind == "redacted_thinking":
            data = self.string(block, "data", "a redacted_thinking block")
            return [ReasoningDelta(redacted=data, index=index)]
        if kind == "tool_use":
            call_id = self.string(block, "id", "a tool_use block")
            name = self.string(block, "name", "a tool_use block")
            arguments = block.get("input")
            if whole and not isinstance(arguments, Mapping):
                raise self.provider.malformed(
                    "a tool_use block has no 'input' object", self.request
                )
            if name == self.output:
                self.answered = True
                return [TextDelta(json.dumps(arguments, ensure_ascii=False))] if whole else []
            if whole and isinstance(arguments, Mapping):
                return [ToolCallDone(index, ToolCall(call_id, name, dict(arguments)))]
            return [ToolCallDelta(index, call_id, name)]  # its input streams as fragments
        return []  # server tool blocks, citations and kinds added later carry no answer


def reply_events(
    provider: WireProvider, body: Mapping[str, Any], request: ChatRequest
) -> Iterator[StreamEvent]:
    """A ``type: message`` reply as the events a stream of it would have yielded."""
    reader = _Reader(provider, request)
    content = body.get("content")
    if not isinstance(content, list):
        raise provider.malformed("the reply has no 'content' list", request)
    for index, block in enumerate(content):
        if isinstance(block, Mapping):
            yield from reader.block(index, block, whole=True)
    model, reply_id = body.get("model"), body.get("id")
    yield StreamEnd(
        reader.finish(body.get("stop_reason")),
        parse_usage(body.get("usage")),
        model if isinstance(model, str) else None,
        reply_id if isinstance(reply_id, str) else None,
    )


class AnthropicStream(StreamDecoder):
    """The ``message_start`` ... ``message_stop`` event sequence of one streamed message.

    A tool call streams as ``ToolCallDelta``s (its id and name when its block starts, then
    each ``input_json_delta`` fragment as it comes) and a ``ToolCallDone`` at its block's
    ``content_block_stop``; thinking as ``ReasoningDelta``s (text, then the signature).
    """

    terminal = "its message_stop event"

    def __init__(self, provider: AnthropicProvider, request: ChatRequest) -> None:
        super().__init__()
        self._reader = _Reader(provider, request)
        self._usage: dict[str, int] = {}
        self._stop: Any = None
        self._model: str | None = None
        self._id: str | None = None
        self._calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, JSON
        self._answer: set[int] = set()  # blocks of the output tool

    def _merge_usage(self, usage: Any) -> None:
        # The counts are cumulative: the latest value of each one wins.
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    self._usage[key] = value

    def _start(self, index: int, block: Mapping[str, Any]) -> list[StreamEvent]:
        events = self._reader.block(index, block, whole=False)
        if block.get("type") == "tool_use":
            if self._reader.output == block.get("name"):
                self._answer.add(index)
            else:
                self._calls[index] = (str(block.get("id")), str(block.get("name")), [])
        return events

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[StreamEvent]:
        reader, kind = self._reader, delta.get("type")
        if kind == "text_delta":
            text = reader.string(delta, "text", "a text_delta")
            return [TextDelta(text)] if text else []
        if kind == "input_json_delta":
            fragment = reader.string(delta, "partial_json", "an input_json_delta")
            if index in self._answer:
                return [TextDelta(fragment)] if fragment else []
            call = self._calls.get(index)
            if call is None:  # a server tool's input (web search...), not a call for us
                return []
            call[2].append(fragment)
            return [ToolCallDelta(index, arguments=fragment)] if fragment else []
        if kind == "thinking_delta":
            text = reader.string(delta, "thinking", "a thinking_delta")
            return [ReasoningDelta(text, index=index)] if text else []
        if kind == "signature_delta":
            signature = reader.string(delta, "signature", "a signature_delta")
            return [ReasoningDelta(signature=signature, index=index)]
        return []  # citations_delta and kinds added later

    def _stop_block(self, index: int) -> list[StreamEvent]:
        call = self._calls.pop(index, None)
        if call is None:
            return []
        call_id, name, pieces = call
        return [
            self._reader.provider.tool_call_done(
                self._reader.request, index, call_id, name, "".join(pieces)
            )
        ]

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        data = self._reader.provider.event_object(
            event, self._reader.request, f"the {event.event!r} event's data"
        )
        kind = data.get("type") or event.event
        index = data.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        if kind == "content_block_delta":
            delta = data.get("delta")
            return self._delta(index, delta) if isinstance(delta, Mapping) else ()
        if kind == "content_block_start":
            block = data.get("content_block")
            return self._start(index, block) if isinstance(block, Mapping) else ()
        if kind == "content_block_stop":
            return self._stop_block(index)
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, Mapping):
                if isinstance(message.get("model"), str):
                    self._model = message["model"]
                if isinstance(message.get("id"), str):
                    self._id = message["id"]
                self._merge_usage(message.get("usage"))
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                self._stop = delta["stop_reason"]
            self._merge_usage(data.get("usage"))
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            provider = self._reader.provider
            status, envelope = AnthropicProvider.error_status(data)
            raise provider.error_in_body(status, envelope, self._reader.request, "the stream")
        return ()  # ping and event types added later carry nothing we need

    def finish(self) -> Iterable[StreamEvent]:
        return (
            StreamEnd(
                self._reader.finish(self._stop),
                parse_usage(self._usage),
                self._model,
                self._id,
            ),
        )


# --------------------------------------------------------------------------- provider


class AnthropicProvider(WireProvider):
    """Claude through the Anthropic Messages API, with streaming.

    Options (providers.yaml ``options:``): ``anthropic_version`` (header
    ``anthropic-version``, default ``2023-06-01``), ``anthropic_beta`` (a string or a list,
    sent as ``anthropic-beta``), ``headers`` (extra static headers), ``max_connections``
    (pool size, default 100), ``default_max_tokens`` (sent when the call gives no
    ``max_tokens``, default 4096). Without an API key no ``x-api-key`` is sent (a gateway
    may take an ``authorization`` header given in ``headers``).
    """

    Options: ClassVar[type[WireOptions]] = AnthropicOptions
    protocol: ClassVar[str] = PROTOCOL
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "image", "tool_call", "tool_result", "reasoning"}
    )
    features: ClassVar[frozenset[str]] = frozenset({"tools", "structured_output", "reasoning"})
    #: Errors of an instance the runtime has not named still say whose they are.
    provider_name: str = "anthropic"
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-api-key"})
    own_headers: ClassVar[frozenset[str]] = frozenset(
        {"x-api-key", "anthropic-version", "anthropic-beta", "content-type"}
    )
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    malformed_prefix: ClassVar[str] = f"POST {MESSAGES_PATH}: "
    finish_reasons: ClassVar[Mapping[str, FinishReason]] = STOP_REASONS
    error_parser = staticmethod(anthropic_error_parser)

    options: AnthropicOptions

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.options.anthropic_version}
        beta = self.options.anthropic_beta
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def route(self, request: ChatRequest, stream: bool) -> Route:
        return Route(MESSAGES_PATH)

    def encode(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return build_body(
            request, stream=stream, default_max_tokens=self.options.default_max_tokens
        )

    @staticmethod
    def error_status(body: Mapping[str, Any]) -> tuple[int, Any]:
        """(HTTP status Anthropic documents for the error's type, the envelope)."""
        kind = _error_kind(body)
        return (_ERROR_STATUS.get(kind, 500) if kind else 500), body

    def body_error(self, body: Any) -> tuple[int, Any] | None:
        if isinstance(body, Mapping) and body.get("type") == "error":
            return self.error_status(body)
        return None

    def error_type(self, envelope: Any) -> str | None:
        return _error_kind(envelope)

    def reply_events(self, body: Mapping[str, Any], request: ChatRequest) -> Iterable[StreamEvent]:
        return reply_events(self, body, request)

    def stream_decoder(self, request: ChatRequest) -> AnthropicStream:
        return AnthropicStream(self, request)
