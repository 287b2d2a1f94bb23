"""The Anthropic Messages API (``POST /v1/messages``) on the ``WireProvider`` base.

Choices this module makes, each tested in ``tests/wire/test_anthropic.py``:

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
  (model, messages, system, stream, max_tokens, temperature): ``InvalidRequestError``.
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

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..errors import InvalidRequestError
from ..redact import snippet
from ..status import ErrorInfo, default_error_parser
from ..types import (
    ChatRequest,
    FinishReason,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
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

#: Body keys the provider sets itself; ``params`` may not replace them.
_RESERVED = frozenset({"model", "messages", "system", "stream", "max_tokens"})


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


# --------------------------------------------------------------------------- request


def build_body(request: ChatRequest, *, stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """The Messages JSON body for ``request``: one code path for sending and describing."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if message.role == "system":
            if turns:
                raise InvalidRequestError(
                    f"messages[{index}]: a system message after the conversation started; "
                    "the Anthropic Messages API takes system text only at the start (it "
                    "becomes the top-level 'system')"
                )
            system.append(message.content)
        else:
            turns.append({"role": message.role, "content": message.content})
    if not turns:
        raise InvalidRequestError(
            "messages: the Anthropic Messages API needs at least one user or assistant "
            "message besides the system prompt"
        )
    max_tokens = request.max_tokens
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": default_max_tokens if max_tokens is None else max_tokens,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    clash = sorted(k for k in request.params if k in _RESERVED or k in body)
    if clash:
        raise InvalidRequestError(
            f"parameter {clash[0]!r} may not be passed in params: the Anthropic provider "
            "sets it from the request (messages, max_tokens, temperature, stream)"
        )
    body.update(request.params)
    if stream:
        body["stream"] = True
    return body


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


def _text_of(
    provider: WireProvider, block: Mapping[str, Any], key: str, what: str, request: ChatRequest
) -> str:
    text = block.get(key)
    if not isinstance(text, str):
        raise provider.malformed(f"{what} has no {key!r} string", request)
    return text


def reply_events(
    provider: WireProvider, body: Mapping[str, Any], request: ChatRequest
) -> Iterator[StreamEvent]:
    """A ``type: message`` reply as the events a stream of it would have yielded."""
    content = body.get("content")
    if not isinstance(content, list):
        raise provider.malformed("the reply has no 'content' list", request)
    for block in content:
        # Only "text" blocks are the answer; thinking, tool_use and others are skipped.
        if isinstance(block, Mapping) and block.get("type") == "text":
            text = _text_of(provider, block, "text", "a text block", request)
            if text:
                yield TextDelta(text)
    model, reply_id = body.get("model"), body.get("id")
    yield StreamEnd(
        provider.map_finish(body.get("stop_reason")),
        parse_usage(body.get("usage")),
        model if isinstance(model, str) else None,
        reply_id if isinstance(reply_id, str) else None,
    )


class AnthropicStream(StreamDecoder):
    """The ``message_start`` ... ``message_stop`` event sequence of one streamed message."""

    terminal = "its message_stop event"

    def __init__(self, provider: AnthropicProvider, request: ChatRequest) -> None:
        super().__init__()
        self._provider = provider
        self._request = request
        self._usage: dict[str, int] = {}
        self._stop: Any = None
        self._model: str | None = None
        self._id: str | None = None

    def _data(self, event: SSEEvent) -> Mapping[str, Any]:
        provider, request = self._provider, self._request
        data = provider.parse_event(
            event, request, what=f"POST {MESSAGES_PATH}: the {event.event!r} event's data"
        )
        if not isinstance(data, Mapping):
            raise provider.malformed(
                f"the {event.event!r} event's data is not a JSON object: "
                f"{snippet(event.data, provider.secrets)!r}",
                request,
            )
        return data

    def _merge_usage(self, usage: Any) -> None:
        # The counts are cumulative: the latest value of each one wins.
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    self._usage[key] = value

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        data = self._data(event)
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                text = _text_of(self._provider, delta, "text", "a text_delta", self._request)
                if text:
                    return (TextDelta(text),)
        elif kind == "content_block_start":
            block = data.get("content_block")
            # A text block normally starts empty; keep any text it opens with.
            if isinstance(block, Mapping) and block.get("type") == "text":
                opening = block.get("text")
                if isinstance(opening, str) and opening:
                    return (TextDelta(opening),)
        elif kind == "message_start":
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
            status, envelope = self._provider.error_status(data)
            raise self._provider.error_in_body(status, envelope, self._request, "the stream")
        # ping, content_block_stop and event types added later carry nothing we need.
        return ()

    def finish(self) -> Iterable[StreamEvent]:
        return (
            StreamEnd(
                self._provider.map_finish(self._stop),
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
    protocol: ClassVar[str] = "anthropic"
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
