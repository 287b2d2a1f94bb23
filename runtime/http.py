"""The HTTP seam: a JSON request -> a JSON reply or a stream of SSE events, errors mapped once.

Wire providers speak their protocol through ``HTTPClient`` and never touch the transport
library (httpx2 today) directly, so it can be tuned or swapped without touching a provider.
Every transport failure and every HTTP error status becomes one of ``runtime.errors`` here
(the status mapping itself is ``runtime.status``, re-exported); a provider only supplies
how its error envelope reads (``ErrorParser``).

What a hostile or broken server can do is bounded here, by ``HTTPConfig`` (``settings.http``
and each provider's ``http:``): every body is decoded by the runtime itself (gzip and deflate,
``runtime.body``) and counted as it arrives; event streams are parsed in linear time with
bounded lines and events (``runtime.sse``); a redirect is refused, never followed (the key
must not travel to another URL); cookies are not kept unless ``cookies: true``. These checks
sit in the transport under the pooled client, so an SDK that shares the pool
(``OpenAISDKProvider``) gets them too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, CookiePolicy
from typing import Any

import httpx2

from .body import ACCEPT_ENCODING, BodyDecoder, JSONTooDeepError, loads, malformed_json
from .config import HTTPConfig
from .errors import (
    LLMRuntimeError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from .redact import scrub, snippet
from .sse import SSEEvent, SSELimits, iter_sse
from .status import (
    ErrorInfo,
    ErrorParser,
    default_error_parser,
    error_for_payload,
    error_for_status,
    finite_seconds,
    parse_retry_after,
)

__all__ = [
    "ErrorInfo",
    "ErrorParser",
    "HTTPClient",
    "SSEEvent",
    "default_error_parser",
    "error_for_payload",
    "error_for_status",
    "finite_seconds",
    "iter_sse",
    "loads",
    "parse_retry_after",
]


# --------------------------------------------------------------------------- the transport


class _NoCookies(CookiePolicy):
    """A cookie policy that stores nothing and sends nothing."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


#: Headers that describe the body as it travelled; gone once the seam has decoded it.
_ENCODING_HEADERS = frozenset({b"content-encoding", b"content-length"})


class _DecodedStream(httpx2.AsyncByteStream):
    """A reply body as ``BodyDecoder`` gives it: decoded, counted, stopped at its bound."""

    def __init__(self, raw: httpx2.AsyncByteStream, decoder: BodyDecoder) -> None:
        self._raw = raw
        self._decoder = decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._raw.__aiter__()
        try:
            async for chunk in chunks:
                for piece in self._decoder.feed(chunk):
                    yield piece
                if self._decoder.done:
                    return  # the rest is never read; closing drops the connection
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def aclose(self) -> None:
        await self._raw.aclose()


class _SeamTransport(httpx2.AsyncBaseTransport):
    """Under the pooled client: redirects refused, every body decoded and bounded."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, owner: HTTPClient) -> None:
        self._inner = inner
        self._owner = owner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        try:
            decoder = self._owner._decoder_for(request, response)
        except BaseException:
            await response.aclose()
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.lower() not in _ENCODING_HEADERS],
            stream=_DecodedStream(response.stream, decoder),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _host_port(url: httpx2.URL) -> str:
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}" if port else host


# --------------------------------------------------------------------------- the client


class HTTPClient:
    """One pooled HTTP client for one provider instance; JSON in, JSON or SSE out.

    ``secrets`` (API keys) are scrubbed from any text this client puts into an error.
    ``http`` bounds what is read (see ``HTTPConfig``); ``configure`` changes it later.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        provider: str | None = None,
        error_parser: ErrorParser = default_error_parser,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 120.0,
        max_connections: int = 100,
        secrets: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
        http: HTTPConfig | None = None,
    ) -> None:
        self.provider = provider
        self.config = http or HTTPConfig()
        self._parse = error_parser
        self._secrets = tuple(s for s in secrets if s)
        self._closed = False
        limits = httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        inner = transport or httpx2.AsyncHTTPTransport(limits=limits, trust_env=False)
        self._client = httpx2.AsyncClient(
            base_url=base_url,
            # Only what the seam decodes itself; httpx2 would add br/zstd when installed.
            headers={"accept-encoding": ACCEPT_ENCODING, **(headers or {})},
            timeout=httpx2.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
            transport=_SeamTransport(inner, self),
            follow_redirects=False,
            trust_env=False,
        )
        self.configure(self.config)

    def configure(self, http: HTTPConfig) -> None:
        """Use ``http``'s bounds from now on (the runtime calls this right after construction)."""
        self.config = http
        # A bare CookieJar: httpx2 copies a Cookies object into a jar of the default policy.
        self._client.cookies = CookieJar() if http.cookies else CookieJar(_NoCookies())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def raw(self) -> httpx2.AsyncClient:
        """The underlying client, for SDK-backed providers that share this pool."""
        return self._client

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    def _timeout(self, connect: float | None, read: float | None) -> Any:
        if connect is None and read is None:
            return httpx2.USE_CLIENT_DEFAULT
        base = self._client.timeout
        return httpx2.Timeout(
            read if read is not None else base.read,
            connect=connect if connect is not None else base.connect,
            pool=connect if connect is not None else base.pool,
        )

    # ------------------------------------------------------------------ errors

    def transport_error(
        self, exc: Exception, model: str | None, path: str, *, mid_stream: bool = False
    ) -> ProviderError:
        """Ours for a transport failure: what failed, where (host:port), and the cause."""
        try:
            url = exc.request.url  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # raised before a request existed
            url = self._client.base_url
        where = _host_port(url)
        detail = scrub(str(exc), self._secrets)
        cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
            text = f"POST {path}: cannot connect to {where} ({cause})"
        elif mid_stream:
            text = f"POST {path}: the stream from {where} broke ({cause})"
        else:
            text = f"POST {path} to {where} failed ({cause})"
        common: dict[str, Any] = {"provider": self.provider, "model": model}
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderTimeoutError(text, **common)
        return ProviderConnectionError(text, **common)

    def _status_error(
        self, response: httpx2.Response, body: bytes, model: str | None
    ) -> ProviderError:
        return error_for_status(
            response.status_code,
            response.headers,
            body,
            provider=self.provider,
            model=model,
            parse=self._parse,
            secrets=self._secrets,
        )

    def _redirect_error(self, request: httpx2.Request, response: httpx2.Response) -> ProviderError:
        status = response.status_code
        location = response.headers.get("location")
        target: httpx2.URL | None = None
        if location:
            try:
                target = request.url.join(location)
            except (httpx2.InvalidURL, ValueError, TypeError):
                target = None
        if target is None:
            whither = "without a usable Location"
        else:
            shown = snippet(f"{target.scheme}://{_host_port(target)}{target.path}", self._secrets)
            here = (request.url.scheme, _host_port(request.url))
            there = (target.scheme, _host_port(target))
            whither = f"to {shown}" + (" on another host" if there != here else "")
        return ProviderError(
            f"{request.method} {request.url.path}: the server answered HTTP {status}, a "
            f"redirect {whither}; the runtime follows no redirect (the API key must not "
            "travel to another URL): set the provider's base_url to the URL that answers",
            provider=self.provider,
            status_code=status,
        )

    def _decoder_for(self, request: httpx2.Request, response: httpx2.Response) -> BodyDecoder:
        """How to read this reply's body (called by the transport, before anyone reads)."""
        status = response.status_code
        if 300 <= status < 400:
            raise self._redirect_error(request, response)
        cfg = self.config
        encoding = response.headers.get("content-encoding")
        if status >= 400:
            # Error bodies are quoted, never needed whole: read the first part only.
            try:
                return BodyDecoder(
                    encoding,
                    cfg.max_error_body_bytes,
                    setting="max_error_body_bytes",
                    truncate=True,
                )
            except MalformedResponseError:  # an encoding we cannot read: the status says enough
                return BodyDecoder(None, 0, setting="max_error_body_bytes", truncate=True)
        stream = "event-stream" in response.headers.get("content-type", "")
        try:
            return BodyDecoder(
                encoding,
                cfg.max_stream_bytes if stream else cfg.max_body_bytes,
                setting="max_stream_bytes" if stream else "max_body_bytes",
                what="the event stream" if stream else "the reply",
                strip_bom=stream,  # for an SDK's own SSE parser too (the openai one keeps it)
            )
        except MalformedResponseError as exc:
            exc.provider = self.provider
            raise

    def _own(self, error: LLMRuntimeError, model: str | None) -> LLMRuntimeError:
        """``error`` (raised under the client) with this client's provider and ``model``."""
        if isinstance(error, ProviderError):
            error.provider = error.provider or self.provider
            error.model = error.model or model
        return error

    # ------------------------------------------------------------------ reading

    async def _read(self, response: httpx2.Response, limit: int | None = None) -> bytearray:
        """The (decoded, bounded) body; with ``limit``, at most about that many bytes."""
        content = bytearray()
        async for piece in response.aiter_raw():
            content += piece
            if limit is not None and len(content) >= limit:
                break
        return content

    async def _send(self, request: httpx2.Request, path: str, model: str | None) -> httpx2.Response:
        try:
            return await self._client.send(request, stream=True)
        except httpx2.HTTPError as exc:
            raise self.transport_error(exc, model, path) from exc
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None

    async def _body(self, response: httpx2.Response, path: str, model: str | None) -> bytearray:
        try:
            return await self._read(response)
        except httpx2.HTTPError as exc:
            raise self.transport_error(exc, model, path) from exc
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None

    async def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        model: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        """POST ``body`` as JSON and return the parsed JSON reply; errors are ours."""
        request = self._client.build_request(
            "POST",
            path,
            json=body,
            headers=headers,
            params=params,
            timeout=self._timeout(connect_timeout, read_timeout),
        )
        response = await self._send(request, path, model)
        try:
            content = await self._body(response, path, model)
        finally:
            await response.aclose()
        if response.status_code >= 400:
            raise self._status_error(response, bytes(content), model)
        try:
            return loads(content)
        except ValueError as exc:
            # Raised outside this block: the parser's error holds the whole body.
            message = malformed_json(f"POST {path}: the reply", content, exc, self._secrets)
        raise MalformedResponseError(
            message, provider=self.provider, model=model, status_code=response.status_code
        )

    def parse_event(
        self, event: SSEEvent, *, model: str | None, what: str = "a stream event"
    ) -> Any:
        """An event's data as JSON; ours when it is not (quoted with the key scrubbed).

        An event the end of the stream cut off (``at_eof``) that does not parse means the
        stream was cut short: ProviderConnectionError, retryable, not a malformed reply.
        """
        try:
            return loads(event.data)
        except ValueError as exc:
            cut = event.at_eof and not isinstance(exc, JSONTooDeepError)
            message = malformed_json(what, event.data, exc, self._secrets)
        if cut:
            raise ProviderConnectionError(
                "the stream ended in the middle of an event: the connection was cut short; "
                "the answer may be incomplete",
                provider=self.provider,
                model=model,
            )
        raise MalformedResponseError(message, provider=self.provider, model=model)

    @asynccontextmanager
    async def stream_sse(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        model: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        unframed: bool = False,
    ) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """POST ``body`` and yield an async iterator of SSE events; the response is closed on exit.

        Use as ``async with client.stream_sse(...) as events: async for ev in events: ...``.
        An error status raises before any event; a broken connection mid-stream raises ours.
        ``unframed=True``: text after the last event that no ``data:`` framed comes as one
        final event marked ``unframed`` (see ``runtime.sse``).
        """
        request = self._client.build_request(
            "POST",
            path,
            json=body,
            headers={"accept": "text/event-stream", **(headers or {})},
            params=params,
            timeout=self._timeout(connect_timeout, read_timeout),
        )
        response = await self._send(request, path, model)
        try:
            if response.status_code >= 400:
                content = await self._body(response, path, model)
                raise self._status_error(response, bytes(content), model)
            ctype = response.headers.get("content-type", "")
            if "json" in ctype and "event-stream" not in ctype:
                # Some servers answer a stream request with one JSON error body and 200.
                try:
                    content = await self._read(response, self.config.max_error_body_bytes)
                except (httpx2.HTTPError, LLMRuntimeError):
                    content = bytearray()
                raise MalformedResponseError(
                    f"POST {path}: expected an event stream, got JSON: "
                    f"{snippet(content, self._secrets)!r}",
                    provider=self.provider,
                    model=model,
                    status_code=response.status_code,
                )
            events = self._events(response, path, model, unframed)
            try:
                yield events
            finally:
                await events.aclose()  # a consumer that stopped early left it suspended
        finally:
            await response.aclose()

    async def _events(
        self, response: httpx2.Response, path: str, model: str | None, unframed: bool
    ) -> AsyncGenerator[SSEEvent, None]:
        cfg = self.config
        limits = SSELimits(
            cfg.max_sse_line_bytes, cfg.max_sse_event_bytes, cfg.max_error_body_bytes
        )
        chunks = response.aiter_raw()
        events = iter_sse(chunks, limits, unframed=unframed)
        try:
            async for event in events:
                yield event
        except httpx2.HTTPError as exc:
            raise self.transport_error(exc, model, path, mid_stream=True) from exc
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None
        finally:
            # Close both now, rather than in tasks the event loop's finalizer would start.
            await events.aclose()
            await chunks.aclose()
