"""The Anthropic Messages API (``POST /v1/messages``) spoken over the runtime's HTTP seam.

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
  cache_read_input_tokens`` (the whole prompt, as other vendors report it) and
  ``cached_tokens`` is ``cache_read_input_tokens``.
- A stream that ends without ``message_stop`` raises ``ProviderConnectionError``
  (retryable: the connection or a proxy cut it); an ``error`` event raises the error its
  ``error.type`` names (``overloaded_error`` -> ``ServerError``, and so on).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ..config import HTTPConfig
from ..errors import (
    ConfigError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    RuntimeClosedError,
)
from ..http import ErrorInfo, HTTPClient, SSEEvent, default_error_parser, error_for_payload
from ..redact import scrub, snippet
from ..types import (
    ChatRequest,
    FinishReason,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from .base import ChatProvider, reject_unknown_options

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider", "anthropic_error_parser"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
MESSAGES_PATH = "/v1/messages"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "unknown",
}

#: The HTTP status Anthropic documents for each ``error.type``; used to map an ``error``
#: event that arrives inside a 200 stream through the same table as an HTTP error.
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

#: Headers the provider sets from its options; the ``headers`` option may not replace them.
_OWN_HEADERS = frozenset({"x-api-key", "anthropic-version", "anthropic-beta", "content-type"})

_OPTIONS = (
    "anthropic_version",
    "anthropic_beta",
    "headers",
    "max_connections",
    "default_max_tokens",
)


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


class AnthropicProvider(ChatProvider):
    """Claude through the Anthropic Messages API, with streaming.

    Options (providers.yaml ``options:``): ``anthropic_version`` (header
    ``anthropic-version``, default ``2023-06-01``), ``anthropic_beta`` (a string or a list,
    sent as ``anthropic-beta``), ``headers`` (extra static headers), ``max_connections``
    (pool size, default 100), ``default_max_tokens`` (sent when the call gives no
    ``max_tokens``, default 4096). An unknown option is a ``ConfigError``.
    """

    streams_natively: ClassVar[bool] = True
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-api-key"})

    _http: HTTPClient | None
    _base: str
    _headers: dict[str, str]
    default_max_tokens: int

    def _initialize_client(self, **options: Any) -> None:
        """Validate the options and open the pooled HTTP client (no network yet)."""
        reject_unknown_options("AnthropicProvider", options, _OPTIONS)
        version = options.get("anthropic_version", DEFAULT_ANTHROPIC_VERSION)
        beta = options.get("anthropic_beta")
        extra = options.get("headers") or {}
        max_connections = options.get("max_connections", 100)
        default_max_tokens = options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        if not isinstance(version, str) or not version:
            raise ConfigError("AnthropicProvider: option anthropic_version must be a string")
        if isinstance(beta, Sequence) and not isinstance(beta, str):
            if not all(isinstance(b, str) for b in beta):
                raise ConfigError("AnthropicProvider: option anthropic_beta must list strings")
            beta = ",".join(beta)
        elif beta is not None and not isinstance(beta, str):
            raise ConfigError("AnthropicProvider: option anthropic_beta must be a string or list")
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise ConfigError("AnthropicProvider: option headers must map strings to strings")
        clash = sorted(k for k in extra if k.lower() in _OWN_HEADERS)
        if clash:
            raise ConfigError(
                f"AnthropicProvider: option headers may not set {clash[0]!r}; the provider sets "
                "it (use api_key_env, anthropic_version or anthropic_beta)"
            )
        for name, value in (
            ("max_connections", max_connections),
            ("default_max_tokens", default_max_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"AnthropicProvider: option {name} must be a positive integer")

        self.default_max_tokens = default_max_tokens
        # Why rstrip: the SDK treats "https://host/" and "https://host" alike.
        self._base = (self.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {"anthropic-version": version}
        if beta:
            headers["anthropic-beta"] = beta
        headers.update(extra)
        if self.api_key:
            headers["x-api-key"] = self.api_key
        self._headers = headers
        self._http = HTTPClient(
            base_url=self._base,
            headers=headers,
            provider="anthropic",
            error_parser=anthropic_error_parser,
            max_connections=max_connections,
            secrets=(self.api_key,) if self.api_key else (),
        )
        self._client = self._http

    # ------------------------------------------------------------------ request

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``: one code path for sending and describing."""
        system: list[str] = []
        turns: list[dict[str, str]] = []
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
            "max_tokens": self.default_max_tokens if max_tokens is None else max_tokens,
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

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """Method, URL, headers and JSON body this provider sends for ``request``."""
        headers = {**self._headers, "content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        return {
            "method": "POST",
            "url": self._base + MESSAGES_PATH,
            "headers": headers,
            "json": self._body(request, stream=stream),
        }

    def configure_http(self, config: HTTPConfig) -> None:
        """Bounds on replies and cookie handling, for this provider's HTTP client."""
        if self._http is not None:
            self._http.configure(config)

    def _open(self) -> HTTPClient:
        if self._http is None or self._http.closed:
            raise RuntimeClosedError(f"{type(self).__name__} was used after aclose()")
        # Why here: the runtime sets provider_name after construction.
        self._http.provider = self.provider_name or "anthropic"
        return self._http

    async def aclose(self) -> None:
        self._http = None
        await super().aclose()

    # ------------------------------------------------------------------ calls

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """Send one Messages call and read text, stop reason and usage from the reply."""
        body = self._body(request, stream=False)
        http = self._open()
        reply = await http.post_json(
            MESSAGES_PATH,
            body,
            model=request.model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
        )
        if not isinstance(reply, Mapping):
            raise self._malformed(f"the reply is a JSON {type(reply).__name__}", request)
        if reply.get("type") == "error":
            raise self._error_event(reply, request, where="reply")
        content = reply.get("content")
        if not isinstance(content, list):
            raise self._malformed("the reply has no 'content' list", request)
        parts: list[str] = []
        for block in content:
            # Only "text" blocks are the answer; thinking, tool_use and others are skipped.
            if isinstance(block, Mapping) and block.get("type") == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise self._malformed("a text block has no 'text' string", request)
                parts.append(text)
        usage = reply.get("usage")
        model = reply.get("model")
        return ProviderResponse(
            text="".join(parts),
            finish_reason=_finish_reason(reply.get("stop_reason")),
            usage=_usage(usage if isinstance(usage, Mapping) else {}),
            model=model if isinstance(model, str) else None,
            raw=reply,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas as they arrive, then one ``StreamEnd`` at ``message_stop``.

        Raises ``ProviderConnectionError`` when the stream ends without ``message_stop``,
        ``MalformedResponseError`` for an event whose data is not a JSON object, and the
        mapped error for an ``error`` event.
        """
        body = self._body(request, stream=True)
        http = self._open()
        usage: dict[str, Any] = {}
        stop_reason: Any = None
        model: str | None = None
        async with http.stream_sse(
            MESSAGES_PATH,
            body,
            model=request.model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
        ) as events:
            async for event in events:
                data = self._event_data(http, event, request)
                kind = data.get("type") or event.event
                if kind == "content_block_delta":
                    delta = data.get("delta")
                    if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                        text = delta.get("text")
                        if not isinstance(text, str):
                            raise self._malformed("a text_delta has no 'text' string", request)
                        if text:
                            yield TextDelta(text)
                elif kind == "content_block_start":
                    block = data.get("content_block")
                    # A text block normally starts empty; keep any text it opens with.
                    if isinstance(block, Mapping) and block.get("type") == "text":
                        text = block.get("text")
                        if isinstance(text, str) and text:
                            yield TextDelta(text)
                elif kind == "message_start":
                    message = data.get("message")
                    if isinstance(message, Mapping):
                        if isinstance(message.get("model"), str):
                            model = message["model"]
                        _merge_usage(usage, message.get("usage"))
                elif kind == "message_delta":
                    delta = data.get("delta")
                    if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                        stop_reason = delta["stop_reason"]
                    # These counts are cumulative: the latest one wins.
                    _merge_usage(usage, data.get("usage"))
                elif kind == "message_stop":
                    yield StreamEnd(_finish_reason(stop_reason), _usage(usage), model)
                    return
                elif kind == "error":
                    raise self._error_event(data, request, where="stream")
                # ping, content_block_stop and event types added later carry nothing we need.
        raise ProviderConnectionError(
            "the stream ended before its message_stop event (connection or proxy cut it)",
            provider=self.provider_name or "anthropic",
            model=request.model,
        )

    # ------------------------------------------------------------------ helpers

    def _event_data(
        self, http: HTTPClient, event: SSEEvent, request: ChatRequest
    ) -> Mapping[str, Any]:
        data = http.parse_event(
            event,
            model=request.model,
            what=f"POST {MESSAGES_PATH}: the {event.event!r} event's data",
        )
        if not isinstance(data, Mapping):
            raise self._malformed(
                f"the {event.event!r} event's data is not a JSON object: "
                f"{snippet(event.data, (self.api_key,))!r}",
                request,
            )
        return data

    def _error_event(
        self, data: Mapping[str, Any], request: ChatRequest, *, where: str
    ) -> ProviderError:
        """Map an error object that came with status 200 (an ``error`` event) like HTTP's."""
        err = data.get("error")
        kind = err.get("type") if isinstance(err, Mapping) else None
        status = _ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500
        error = error_for_payload(
            status,
            data,
            provider=self.provider_name or "anthropic",
            model=request.model,
            parse=anthropic_error_parser,
            secrets=(self.api_key,),
        )
        error.status_code = None  # the HTTP status was 200; the type is in vendor_code
        named = snippet(kind, (self.api_key,), 100) if isinstance(kind, str) else "an error"
        error.message = f"the {where} reported {named}: {error.message}"
        error.args = (error.message,)
        return error

    def _malformed(self, what: str, request: ChatRequest) -> MalformedResponseError:
        return MalformedResponseError(
            self._scrub(f"POST {MESSAGES_PATH}: {what}"),
            provider=self.provider_name or "anthropic",
            model=request.model,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, (self.api_key,))


def _finish_reason(stop_reason: Any) -> FinishReason:
    return _STOP_REASONS.get(stop_reason, "unknown") if isinstance(stop_reason, str) else "unknown"


def _merge_usage(into: dict[str, Any], usage: Any) -> None:
    if isinstance(usage, Mapping):
        into.update(
            {
                k: v
                for k, v in usage.items()
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0
            }
        )


def _usage(usage: Mapping[str, Any]) -> Usage:
    """Our ``Usage`` from Anthropic's counts (see the module docstring for the arithmetic)."""

    def count(name: str) -> int | None:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    parts = [
        count(n) for n in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    known = [p for p in parts if p is not None]
    return Usage(
        prompt_tokens=sum(known) if parts[0] is not None else None,
        completion_tokens=count("output_tokens"),
        cached_tokens=count("cache_read_input_tokens"),
    )
