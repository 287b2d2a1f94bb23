"""``WireProvider``: what every HTTP wire protocol does alike, implemented once.

A protocol module subclasses it and supplies only what its protocol does differently:

* ``Options`` (a pydantic model of its providers.yaml ``options:``; checked at load),
  ``secret_headers``, ``default_base_url``, ``protocol`` (the name stamped on reasoning it
  returns), ``error_parser`` (its error envelope), ``finish_reasons`` (its stop reasons);
* ``auth_headers()``, ``route()`` and ``encode()``: where a request goes and its JSON body;
* ``reply_events()``: a JSON reply -> the same events its stream yields;
* ``stream_decoder()``: an object that turns SSE events into events and knows the
  protocol's terminal event;
* ``body_error()``: the error object a protocol may put inside a 200 reply or stream chunk.

The base implements ``chat`` (JSON reply -> events -> the one ``Accumulator``),
``stream_chat`` (SSE -> events, "stream ended before its terminal event" checked once),
``describe_request``, the closed-client check and the mapping of an error inside a 200. The
HTTP client (and so the HTTP library) is created on the first call, never at import or
construction, so the loader can import provider classes to check their options cheaply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import errors
from ..errors import (
    ConfigError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    RuntimeClosedError,
)
from ..options import check_option_values
from ..redact import scrub, snippet
from ..types import (
    Accumulator,
    ChatRequest,
    FinishReason,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolArgumentsError,
    ToolCall,
    ToolCallDone,
)
from ..types.response import parse_arguments
from .base import ChatProvider

if TYPE_CHECKING:
    from ..config import HTTPConfig
    from ..http import HTTPClient
    from ..sse import SSEEvent
    from ..status import ErrorInfo

__all__ = ["Route", "StreamDecoder", "WireOptions", "WireProvider"]


class WireOptions(BaseModel):
    """Options every wire provider takes (providers.yaml ``options:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)

    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra static headers sent with every request."
    )
    max_connections: int = Field(100, ge=1, description="Size of the connection pool.")

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class Route:
    """Where one call goes: a path under the base URL, its query and extra headers."""

    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class StreamDecoder:
    """Turns one stream's SSE events into events; ``done`` once the terminal event came.

    ``terminal`` names that event in the error raised when a stream ends without it;
    ``unframed`` asks the seam for text after the last event that no ``data:`` framed (a
    vendor's bare error object), as one final event marked ``unframed``.
    """

    terminal: ClassVar[str] = "its final event"
    unframed: ClassVar[bool] = False
    #: Read on after the terminal event until the server ends the body: for a protocol
    #: that may send more after it (Gemini's usage can follow its finishReason chunk).
    read_to_end: ClassVar[bool] = False

    def __init__(self) -> None:
        self.done = False

    def feed(self, event: SSEEvent) -> Iterable[StreamEvent]:
        raise NotImplementedError

    def finish(self) -> Iterable[StreamEvent]:
        """The events after the terminal one (the ``StreamEnd``), once ``done``."""
        raise NotImplementedError


class WireProvider(ChatProvider):
    """Base of the HTTP wire providers; see the module docstring."""

    Options: ClassVar[type[WireOptions]] = WireOptions
    ModelOptions: ClassVar[type[BaseModel] | None] = None
    streams_natively: ClassVar[bool] = True
    secret_headers: ClassVar[frozenset[str]] = frozenset()
    #: Headers the provider sets itself; the ``headers`` option may not replace them.
    own_headers: ClassVar[frozenset[str]] = frozenset()
    default_base_url: ClassVar[str | None] = None
    #: Named in the error when there is no base_url and no default.
    base_url_hint: ClassVar[str] = "the service's API URL"
    protocol: ClassVar[str] = "wire"
    #: Put before the text of every MalformedResponseError this provider raises.
    malformed_prefix: ClassVar[str] = ""
    finish_reasons: ClassVar[Mapping[str, FinishReason]] = {}

    options: WireOptions
    _base: str
    _headers: dict[str, str]

    def _initialize_client(self, **kwargs: Any) -> None:
        owner = type(self).__name__
        self.options = check_option_values(self.Options, kwargs, owner=owner)  # type: ignore[assignment]
        clash = sorted(k for k in self.options.headers if k in self.own_headers)
        if clash:
            raise ConfigError(
                f"{owner}: option headers may not set {clash[0]!r}: the provider sets it"
            )
        self.setup()
        base = self.base_url or self.default_base_url
        if not base:
            raise ConfigError(
                f"{owner} needs {self.base_url_hint} as base_url: set base_url for this "
                "provider in providers.yaml, or the environment variable its base_url_env names"
            )
        if _has_credentials(base):
            # Built in code, past the loader's check: never Basic auth in place of the key,
            # never the password in a repr or a log line.
            from ..config import base_url_problem

            raise ConfigError(f"{owner}: base_url {base_url_problem(base)}")
        self._base = base.rstrip("/")
        self._headers = {
            "content-type": "application/json",
            **self.auth_headers(),
            **self.options.headers,
        }
        self._client = None
        self._closed = False
        self._http_config: HTTPConfig | None = None
        self._transport: Any = None

    # ------------------------------------------------------------------ protocol hooks

    def setup(self) -> None:
        """Derive state from ``self.options`` (before the base URL is read); optional."""

    def auth_headers(self) -> dict[str, str]:
        """Static headers of this provider: the key and protocol versions."""
        return {}

    def route(self, request: ChatRequest, stream: bool) -> Route:
        raise NotImplementedError

    def encode(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        """The JSON body of ``request``."""
        raise NotImplementedError

    def reply_events(self, body: Mapping[str, Any], request: ChatRequest) -> Iterable[StreamEvent]:
        """A whole JSON reply as the events its stream would have yielded."""
        raise NotImplementedError

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        raise NotImplementedError

    def body_error(self, body: Any) -> tuple[int, Any] | None:
        """(HTTP status it stands for, error envelope) when a 200 body carries an error."""
        return None

    @staticmethod
    def error_parser(body: Any) -> ErrorInfo | None:
        from ..status import default_error_parser

        return default_error_parser(body)

    # ------------------------------------------------------------------ shared idioms

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values never to print: the key, and any secret header given as an option."""
        values = [self.api_key or ""]
        values += [v for k, v in self.options.headers.items() if k in self.secret_headers]
        return tuple(v for v in values if v)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def map_finish(self, raw: Any) -> FinishReason:
        return self.finish_reasons.get(raw, "unknown") if isinstance(raw, str) else "unknown"

    def malformed(self, what: str, request: ChatRequest) -> MalformedResponseError:
        return MalformedResponseError(
            self.scrub(f"{self.malformed_prefix}{what}"),
            provider=self.provider_name or None,
            model=request.model,
        )

    def error_type(self, envelope: Any) -> str | None:
        """The vendor's type of an in-band error, named in its message ("the stream reported
        overloaded_error: ..."); None (the default) says "reported an error"."""
        return None

    def error_in_body(
        self, status: int, envelope: Any, request: ChatRequest, where: str
    ) -> ProviderError:
        """The error an error object inside a 200 stands for, mapped as that HTTP status."""
        from ..status import error_for_payload

        return error_for_payload(
            status,
            envelope,
            provider=self.provider_name or None,
            model=request.model,
            parse=self.error_parser,
            secrets=self.secrets,
            where=where,
            reported=self.error_type(envelope),
        )

    def parse_event(
        self, event: SSEEvent, request: ChatRequest, what: str = "a stream event"
    ) -> Any:
        """An event's data as JSON (see ``HTTPClient.parse_event``)."""
        return self.http().parse_event(event, model=request.model, what=what)

    def event_object(
        self, event: SSEEvent, request: ChatRequest, what: str = "a stream event's data"
    ) -> Mapping[str, Any]:
        """An event's data as a JSON object; MalformedResponseError for any other JSON."""
        data = self.parse_event(event, request, what=f"{self.malformed_prefix}{what}")
        if not isinstance(data, Mapping):
            shown = snippet(event.data, self.secrets)
            raise self.malformed(f"{what} is not a JSON object: {shown!r}", request)
        return data

    def tool_call_done(
        self, request: ChatRequest, index: int, call_id: str | None, name: str, raw: str
    ) -> ToolCallDone:
        """A call whose arguments came as JSON text, complete (``call_{index}`` when it has
        no id); ours ToolArgumentsError when the text is not a JSON object."""
        try:
            arguments = parse_arguments(name, raw)
        except ToolArgumentsError as exc:
            raise self.arguments_error(exc, request) from None
        return ToolCallDone(index, ToolCall(call_id or f"call_{index}", name, arguments))

    def configure_http(self, config: HTTPConfig) -> None:
        """Bounds on replies and cookie handling, for this provider's HTTP client."""
        self._http_config = config
        if self._client is not None:
            self._client.configure(config)

    def use_transport(self, transport: Any) -> None:
        """Send this provider's requests through ``transport`` (an ``httpx2.AsyncBaseTransport``,
        e.g. ``httpx2.MockTransport(handler)``) instead of the network, so a protocol's
        encoding and parsing can be tested with no sockets. The seam's bounds, redirect and
        cookie rules still apply above it. Call it before the first request. A transport is
        an httpx2 one: the provider then runs on the httpx2 engine (``http_engine: aiohttp``
        with a transport is a ConfigError)."""
        if self._client is not None:
            raise ConfigError(
                f"{type(self).__name__}.use_transport() must come before the first request"
            )
        self._transport = transport

    def http(self) -> HTTPClient:
        """The pooled client, created on first use; RuntimeClosedError after aclose()."""
        if self._closed:
            raise RuntimeClosedError(f"{type(self).__name__} was used after aclose()")
        client = self._client
        if client is None:
            from ..http import HTTPClient

            engine = self.http_engine
            if self.http_engines is not None and engine not in self.http_engines:
                engine = min(self.http_engines)  # a class bound to one library (an SDK's)
            client = self._client = HTTPClient(
                base_url=self._base,
                headers=self._headers,
                provider=self.provider_name or None,
                error_parser=self.error_parser,
                max_connections=self.options.max_connections,
                secrets=self.secrets,
                http=self._http_config,
                **({"transport": self._transport} if self._transport is not None else {}),
                engine=engine,
            )
        # The runtime names the provider after construction; errors should carry the name.
        client.provider = self.provider_name or None
        return client  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self._closed = True
        await super().aclose()

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The method, URL, headers and JSON this provider would send (nothing is sent)."""
        route = self.route(request, stream)
        query = f"?{urlencode(dict(route.query))}" if route.query else ""
        headers = {**self._headers, **route.headers}
        headers["accept"] = "text/event-stream" if stream else "application/json"
        return {
            "method": "POST",
            "url": f"{self._base}{route.path}{query}",
            "headers": headers,
            "json": self.encode(request, stream),
        }

    def _decode(
        self, events: Iterable[StreamEvent], request: ChatRequest, raw: Any
    ) -> ProviderResponse:
        if type(events) is list and len(events) == 2:
            # The common reply, text then the end, built as the accumulator would build it
            # (one text part, the end's usage): the same response, without its bookkeeping.
            delta, end = events
            if type(delta) is TextDelta and type(end) is StreamEnd and delta.text:
                return ProviderResponse(
                    delta.text,
                    end.finish_reason,
                    end.usage,
                    end.model,
                    raw,
                    parts=(TextPart(delta.text),),
                    id=end.id,
                )
        accumulator = Accumulator(self.protocol)
        for event in events:
            accumulator.add(event)
        try:
            return accumulator.response(raw)
        except ToolArgumentsError as exc:
            raise self.arguments_error(exc, request) from None

    def arguments_error(
        self, exc: ToolArgumentsError, request: ChatRequest
    ) -> errors.ToolArgumentsError:
        """Ours (a MalformedResponseError naming provider and model) for arguments that are
        not a JSON object; a stream decoder raises it when it completes a call."""
        return errors.ToolArgumentsError(
            self.scrub(str(exc)),
            raw_arguments=exc.raw,
            tool_name=exc.name,
            provider=self.provider_name or None,
            model=request.model,
        )

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """One non-streamed call: the JSON reply decoded into events, then accumulated."""
        route = self.route(request, False)
        body = self.encode(request, False)
        reply = await self.http().post_json(
            route.path,
            body,
            headers={"accept": "application/json", **route.headers}
            if route.headers
            else {"accept": "application/json"},
            params=dict(route.query) if route.query else None,
            model=request.model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
        )
        found = self.body_error(reply)
        if found is not None:
            raise self.error_in_body(*found, request, "the reply")
        if not isinstance(reply, (dict, Mapping)):
            raise self.malformed(
                f"the reply is a JSON {type(reply).__name__}, not an object", request
            )
        return self._decode(self.reply_events(reply, request), request, reply)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream events until the protocol's terminal event, then the ``StreamEnd``.

        A stream that ends before its terminal event raises ProviderConnectionError (a
        connection or a proxy cut it short; the request may succeed if sent again).
        """
        route = self.route(request, True)
        body = self.encode(request, True)
        decoder = self.stream_decoder(request)
        async with self.http().stream_sse(
            route.path,
            body,
            headers=dict(route.headers),
            params=dict(route.query) or None,
            model=request.model,
            connect_timeout=request.connect_timeout,
            read_timeout=request.read_timeout,
            unframed=decoder.unframed,
        ) as events:
            async for event in events:
                for item in decoder.feed(event):
                    yield item
                if decoder.done and not decoder.read_to_end:
                    # Stop here, as the official SDKs do: a body held open after the
                    # terminal event must not turn a complete answer into a timeout.
                    break
        if not decoder.done:
            raise ProviderConnectionError(
                f"the stream ended before {decoder.terminal}: the connection was cut short; "
                "the answer may be incomplete",
                provider=self.provider_name or None,
                model=request.model,
            )
        for item in decoder.finish():
            yield item


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False  # not a URL at all: the first request says so
    return parts.username is not None or parts.password is not None
