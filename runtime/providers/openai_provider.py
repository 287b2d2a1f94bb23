"""The OpenAI Chat Completions wire protocol, for OpenAI and every service that speaks it.

``OpenAIProvider`` POSTs ``{base_url}/chat/completions`` through ``runtime.http.HTTPClient``.
The module-level helpers (request body, reply and chunk parsing, error envelope) are the
protocol itself; ``AzureOpenAIProvider`` and ``OpenAISDKProvider`` reuse them so the three
build and read the same JSON.

Decisions worth knowing:

* A ``refusal`` from the model (structured outputs, or ``delta.refusal`` in a stream) with
  no content raises ``ContentFilteredError`` (``vendor_code="refusal"``) carrying the
  refusal text: the model declined and produced no answer, so returning the refusal as if
  it were the answer would mislead callers. A reply that
  stopped with ``finish_reason: content_filter`` is *not* raised: its (possibly partial)
  text is returned with ``finish_reason="content_filter"`` and the caller decides.
* ``insufficient_quota`` arrives as HTTP 429 and becomes ``RateLimitError`` (the seam's
  mapping), but waiting does not refill a quota: the instance's ``retryable`` is set to
  False so the runtime does not retry it.
* A stream must end with ``data: [DONE]``. A connection that breaks mid-stream raises
  ``ProviderConnectionError`` (from the seam); a stream that ends cleanly without
  ``[DONE]`` also raises ``ProviderConnectionError`` (a proxy or server cut it short; the
  request may succeed if sent again). ``data: [DONE]`` that the end of the stream cuts off
  before its blank line still ends it normally, as in the official SDK.
* ``error`` objects inside a 200 reply or a stream chunk are mapped as the HTTP status
  they stand for (``server_error`` as 5xx, ``rate_limit_exceeded`` as 429, others as 400),
  with ``status_code`` None since the HTTP status itself was 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from ..config import HTTPConfig
from ..errors import (
    ConfigError,
    ContentFilteredError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    RuntimeClosedError,
)
from ..http import ErrorInfo, HTTPClient, default_error_parser, error_for_payload
from ..redact import scrub
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

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIOptions",
    "OpenAIProvider",
    "StreamState",
    "build_body",
    "error_from_payload",
    "map_finish_reason",
    "openai_error_parser",
    "parse_completion",
    "parse_usage",
    "quota_not_retryable",
    "scrub_error",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Body keys the runtime owns; ``params`` may not set them.
_PROTECTED_PARAMS = ("model", "messages", "stream")

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the deprecated functions API
}

#: Error ``type``/``code`` values that stand for a server-side failure (mapped as 5xx).
_SERVER_KINDS = frozenset(
    {"server_error", "api_error", "internal_error", "internal_server_error", "service_unavailable"}
)
#: Error ``type``/``code`` values that stand for HTTP 429.
_RATE_KINDS = frozenset({"rate_limit_exceeded", "rate_limit_error", "insufficient_quota"})


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """The ``options:`` of an OpenAI-protocol provider in providers.yaml, validated."""

    organization: str | None = None
    project: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 100
    stream_usage: bool = True

    @classmethod
    def take(cls, options: dict[str, Any], owner: str) -> OpenAIOptions:
        """Pop the known options out of ``options`` and check their types.

        ``owner`` (the class name) is named in errors; a leftover key is the caller's to
        report (subclasses pop their own first), see ``reject_unknown_options``.
        """
        org = options.pop("organization", None)
        project = options.pop("project", None)
        headers = options.pop("headers", None) or {}
        max_connections = options.pop("max_connections", 100)
        stream_usage = options.pop("stream_usage", True)
        for name, value in (("organization", org), ("project", project)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{owner}: option {name!r} must be a string")
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError(f"{owner}: option 'headers' must map header names to strings")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ConfigError(f"{owner}: option 'max_connections' must be an integer >= 1")
        if not isinstance(stream_usage, bool):
            raise ConfigError(f"{owner}: option 'stream_usage' must be true or false")
        return cls(
            organization=org,
            project=project,
            headers={k.lower(): v for k, v in headers.items()},
            max_connections=max_connections,
            stream_usage=stream_usage,
        )


_KNOWN_OPTIONS = ("organization", "project", "headers", "max_connections", "stream_usage")


# --------------------------------------------------------------------------- request


def build_body(request: ChatRequest, *, stream: bool, stream_usage: bool) -> dict[str, Any]:
    """The Chat Completions JSON body for ``request``.

    ``params`` are merged last (they may set anything but model, messages and stream).
    """
    clash = [key for key in _PROTECTED_PARAMS if key in request.params]
    if clash:
        raise InvalidRequestError(
            f"parameter {clash[0]!r} cannot be passed as an extra parameter: the runtime sets "
            "it (choose the model by its id, pass messages as messages, and call stream() "
            "to stream)"
        )
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [m.to_dict() for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body[request.max_tokens_param] = request.max_tokens
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    body.update(request.params)
    return body


# --------------------------------------------------------------------------- replies


def openai_error_parser(body: Any) -> ErrorInfo | None:
    """Read ``{"error": {"message", "type", "param", "code"}}``; other shapes as the default.

    The ``param`` is appended to the message when the message does not already name it,
    since it is often the one word that says what to fix.
    """
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        err = body["error"]
        message = err.get("message")
        if isinstance(message, str) and message:
            param = err.get("param")
            if isinstance(param, str) and param and param not in message:
                message = f"{message} (param: {param})"
            code, kind = err.get("code"), err.get("type")
            return ErrorInfo(
                message,
                str(code) if code is not None else None,
                str(kind) if kind is not None else None,
            )
    return default_error_parser(body)


def scrub_error(err: ProviderError, secrets: tuple[str | None, ...]) -> ProviderError:
    """Remove ``secrets`` from the error's message (in place) and return it."""
    err.message = scrub(err.message, secrets)
    err.args = (err.message,)
    return err


def error_from_payload(
    payload: Any,
    *,
    provider: str | None,
    model: str | None,
    secrets: tuple[str | None, ...] = (),
    where: str = "the reply",
) -> ProviderError:
    """Map an ``error`` object found inside a 200 reply or a stream chunk to our error."""
    inner = payload.get("error") if isinstance(payload, Mapping) else None
    envelope = payload if isinstance(inner, Mapping) else {"error": inner}
    info = openai_error_parser(envelope)
    markers = {x.lower() for x in (info.code, info.type) if x} if info else set()
    raw_code = inner.get("code") if isinstance(inner, Mapping) else None
    if isinstance(raw_code, int) and 400 <= raw_code <= 599:  # vLLM puts the status here
        status = raw_code
    elif markers & _SERVER_KINDS:
        status = 500
    elif markers & _RATE_KINDS:
        status = 429
    else:
        status = 400
    if info is None:
        envelope = {"error": {"message": f"{where} reported an error without a message"}}
    err = error_for_payload(
        status,
        envelope,
        provider=provider,
        model=model,
        parse=openai_error_parser,
        secrets=secrets,
    )
    err.status_code = None  # the HTTP status was 200; the error came inside the body
    err.message = f"{where} reported an error: {err.message}"
    err.args = (err.message,)
    return err


@contextmanager
def quota_not_retryable() -> Iterator[None]:
    """Mark an ``insufficient_quota`` RateLimitError as not retryable: waiting will not help."""
    try:
        yield
    except RateLimitError as exc:
        if exc.vendor_code == "insufficient_quota":
            exc.retryable = False
        raise


def map_finish_reason(raw: Any) -> FinishReason:
    """Our FinishReason for a vendor ``finish_reason`` (anything unknown is "unknown")."""
    return _FINISH_REASONS.get(raw, "unknown") if isinstance(raw, str) else "unknown"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(raw: Any) -> Usage:
    """Our Usage from an OpenAI ``usage`` object (missing or odd fields become None)."""
    if not isinstance(raw, Mapping):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_int_or_none(raw.get("prompt_tokens")),
        completion_tokens=_int_or_none(raw.get("completion_tokens")),
        total_tokens=_int_or_none(raw.get("total_tokens")),
        cached_tokens=_int_or_none(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, Mapping)
        else None,
        reasoning_tokens=_int_or_none(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, Mapping)
        else None,
    )


def _content_text(content: Any, what: str, *, provider: str | None, model: str) -> str:
    """Text of a ``content`` field: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers send content parts
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        if all(isinstance(p, str) for p in parts) and len(parts) == len(content):
            return "".join(p for p in parts if isinstance(p, str))
    raise MalformedResponseError(
        f"{what}: content is {type(content).__name__}, not text",
        provider=provider,
        model=model,
    )


def _refused(refusal: str, *, provider: str | None, model: str) -> ContentFilteredError:
    return ContentFilteredError(
        f"the model refused to answer: {refusal}",
        provider=provider,
        model=model,
        vendor_code="refusal",
    )


def parse_completion(
    body: Any, *, provider: str | None, model: str, secrets: tuple[str | None, ...] = ()
) -> ProviderResponse:
    """Our ProviderResponse from a ``chat.completion`` JSON object."""

    def malformed(why: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"the chat completion reply {why}", provider=provider, model=model
        )

    if not isinstance(body, Mapping):
        raise malformed(f"is a JSON {type(body).__name__}, not an object")
    if body.get("error") and not body.get("choices"):
        raise error_from_payload(body, provider=provider, model=model, secrets=secrets)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise malformed("has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise malformed("has no choices[0].message")
    text = _content_text(
        message.get("content"), "choices[0].message", provider=provider, model=model
    )
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        raise _refused(refusal, provider=provider, model=model)
    reported = body.get("model")
    return ProviderResponse(
        text=text,
        finish_reason=map_finish_reason(choice.get("finish_reason")),
        usage=parse_usage(body.get("usage")),
        model=reported if isinstance(reported, str) else None,
        raw=body,
    )


@dataclass
class StreamState:
    """What a stream of ``chat.completion.chunk`` objects said so far."""

    provider: str | None
    model: str
    secrets: tuple[str | None, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)
    reported_model: str | None = None
    refusal: str = ""

    def feed(self, chunk: Any) -> str:
        """Take one chunk; return its text (possibly empty). An error chunk raises."""
        if not isinstance(chunk, Mapping):
            raise MalformedResponseError(
                f"a stream chunk is a JSON {type(chunk).__name__}, not an object",
                provider=self.provider,
                model=self.model,
            )
        if chunk.get("error"):
            raise error_from_payload(
                chunk,
                provider=self.provider,
                model=self.model,
                secrets=self.secrets,
                where="the stream",
            )
        if isinstance(chunk.get("model"), str):
            self.reported_model = chunk["model"]
        if isinstance(chunk.get("usage"), Mapping):  # the include_usage chunk, or per-chunk
            self.usage = parse_usage(chunk["usage"])
        text = ""
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            # With n > 1 choices interleave; we follow the first one only.
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                text += _content_text(
                    delta.get("content"),
                    "a stream chunk's delta",
                    provider=self.provider,
                    model=self.model,
                )
                if isinstance(delta.get("refusal"), str):
                    self.refusal += delta["refusal"]
            if choice.get("finish_reason"):
                self.finish_reason = map_finish_reason(choice["finish_reason"])
        return text

    def end(self) -> StreamEnd:
        """The final event; raises ContentFilteredError when the model refused."""
        if self.refusal:
            raise _refused(self.refusal, provider=self.provider, model=self.model)
        return StreamEnd(self.finish_reason or "unknown", self.usage, self.reported_model)


# --------------------------------------------------------------------------- provider


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one call goes: path under the base URL and query parameters."""

    path: str
    query: dict[str, str]


class OpenAIProvider(ChatProvider):
    """OpenAI Chat Completions over HTTP (also Groq, Together, vLLM, Ollama, LM Studio...).

    Options (providers.yaml ``options:``): ``organization`` and ``project`` (sent as
    OpenAI-Organization / OpenAI-Project), ``headers`` (extra static headers; they win over
    the built-in ones), ``max_connections`` (pool size, default 100), ``stream_usage``
    (default true: ask for the final usage chunk with ``stream_options.include_usage``;
    turn it off for compatible servers that reject ``stream_options``). Without an API key
    no Authorization header is sent (local servers).
    """

    streams_natively: ClassVar[bool] = True
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    #: Named in the error when there is no base_url and no default.
    base_url_hint: ClassVar[str] = "the service's API URL"

    _options: OpenAIOptions
    _base: str
    _headers: dict[str, str]

    def _initialize_client(self, **kwargs: Any) -> None:
        options = dict(kwargs)
        owner = type(self).__name__
        self._options = OpenAIOptions.take(options, owner)
        self._take_own_options(options)
        reject_unknown_options(owner, options, self._known_options())
        base = self.base_url or self.default_base_url
        if not base:
            raise ConfigError(
                f"{owner} needs {self.base_url_hint} as base_url: set base_url for this "
                "provider in providers.yaml, or the environment variable its base_url_env names"
            )
        self._base = base.rstrip("/")
        self._headers = {
            "content-type": "application/json",
            **self._auth_headers(),
            **self._options.headers,
        }
        self._client = HTTPClient(
            base_url=self._base,
            headers=self._headers,
            provider=self.provider_name or None,
            error_parser=openai_error_parser,
            max_connections=self._options.max_connections,
            secrets=(self.api_key,) if self.api_key else (),
        )

    # Hooks for OpenAI-protocol variants (Azure): options, auth headers and the route.

    def _take_own_options(self, options: dict[str, Any]) -> None:
        """Pop this class's own options (beyond OpenAIOptions) out of ``options``."""

    def _known_options(self) -> tuple[str, ...]:
        return _KNOWN_OPTIONS

    def _auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self._options.organization:
            headers["openai-organization"] = self._options.organization
        if self._options.project:
            headers["openai-project"] = self._options.project
        return headers

    def _route(self, request: ChatRequest) -> _Route:
        return _Route("/chat/completions", {})

    # The one place a call is prepared; describe_request and the real calls share it.

    def _prepare(
        self, request: ChatRequest, stream: bool
    ) -> tuple[_Route, dict[str, str], dict[str, Any]]:
        route = self._route(request)
        call_headers = {"accept": "text/event-stream" if stream else "application/json"}
        body = build_body(request, stream=stream, stream_usage=self._options.stream_usage)
        return route, call_headers, body

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The method, URL, headers and JSON this provider would send (nothing is sent)."""
        route, call_headers, body = self._prepare(request, stream)
        query = f"?{urlencode(route.query)}" if route.query else ""
        return {
            "method": "POST",
            "url": f"{self._base}{route.path}{query}",
            "headers": {**self._headers, **call_headers},
            "json": body,
        }

    def configure_http(self, config: HTTPConfig) -> None:
        """Bounds on replies and cookie handling, for this provider's HTTP client."""
        if isinstance(self._client, HTTPClient):
            self._client.configure(config)

    def _http(self) -> HTTPClient:
        client = self._client
        if not isinstance(client, HTTPClient) or client.closed:
            raise RuntimeClosedError(f"{type(self).__name__} was used after aclose()")
        # The runtime names the provider after construction; errors should carry the name.
        client.provider = self.provider_name or None
        return client

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """One non-streamed Chat Completions call."""
        client = self._http()
        route, call_headers, body = self._prepare(request, stream=False)
        with quota_not_retryable():
            reply = await client.post_json(
                route.path,
                body,
                headers=call_headers,
                params=route.query or None,
                model=request.model,
                connect_timeout=request.connect_timeout,
                read_timeout=request.read_timeout,
            )
            return parse_completion(
                reply, provider=client.provider, model=request.model, secrets=(self.api_key,)
            )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream text deltas, then one StreamEnd (after ``data: [DONE]``).

        A stream that ends without ``[DONE]`` raises ProviderConnectionError.
        """
        client = self._http()
        route, call_headers, body = self._prepare(request, stream=True)
        state = StreamState(client.provider, request.model, (self.api_key,))
        done = False
        with quota_not_retryable():
            async with client.stream_sse(
                route.path,
                body,
                headers=call_headers,
                params=route.query or None,
                model=request.model,
                connect_timeout=request.connect_timeout,
                read_timeout=request.read_timeout,
            ) as events:
                async for event in events:
                    if event.data.strip() == "[DONE]":
                        # Stop here, as the official SDK does: a proxy that keeps the body
                        # open after [DONE] must not turn a complete answer into a timeout.
                        done = True
                        break
                    text = state.feed(client.parse_event(event, model=request.model))
                    if text:
                        yield TextDelta(text)
            if not done:
                raise ProviderConnectionError(
                    "the stream ended before 'data: [DONE]': the connection was cut short; "
                    "the answer may be incomplete",
                    provider=client.provider,
                    model=request.model,
                )
            end = state.end()
        yield end
