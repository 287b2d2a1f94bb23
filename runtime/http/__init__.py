"""The HTTP seam: a JSON request -> a JSON reply or a stream of SSE events, errors mapped once.

Wire providers speak their protocol through ``HTTPClient`` and never touch an HTTP library
directly. Underneath sits an engine (``runtime.http.engine``): httpx2 by default, aiohttp
with ``http_engine: aiohttp`` (the ``aiohttp`` extra). An engine only sends bytes and hands
back the raw reply; everything else is done here, once, for both: JSON encoding, the
merged headers and timeout objects (built once per distinct value, not per call), redirect
refusal, body decoding and size caps, SSE parsing, and the mapping of every transport
failure and HTTP error status to ``runtime.errors`` (the status mapping itself is
``runtime.status``, re-exported); a provider only supplies how its error envelope reads
(``ErrorParser``).

What a hostile or broken server can do is bounded here, by ``HTTPConfig`` (``settings.http``
and each provider's ``http:``): every body is decoded by the runtime itself (gzip and deflate,
``runtime.body``) and counted as it arrives; event streams are parsed in linear time with
bounded lines and events (``runtime.sse``); a redirect is refused, never followed (the key
must not travel to another URL); cookies are not kept unless ``cookies: true``. An SDK that
shares the httpx2 pool (``OpenAISDKProvider``, through ``raw``) gets the same checks from a
transport under its client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from .. import __version__
from ..body import ACCEPT_ENCODING, BodyDecoder, JSONTooDeepError, loads, malformed_json
from ..config import HTTPConfig
from ..errors import (
    ConfigError,
    LLMRuntimeError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RuntimeClosedError,
)
from ..redact import scrub, snippet
from ..sse import SSEEvent, SSELimits, SSEParser, iter_sse
from ..status import (
    ErrorInfo,
    ErrorParser,
    default_error_parser,
    error_for_payload,
    error_for_status,
    finite_seconds,
    parse_retry_after,
)
from .engine import Engine, EngineRequest, EngineResponse, Failure, build_engine

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

#: Sent by both engines (each library would name itself otherwise).
USER_AGENT = f"llm-runtime/{__version__}"
#: Distinct per-call header sets and URLs remembered per client (routes are few).
_CACHE = 64


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close an engine's body iterator when it can be closed (a generator can)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _host_port(url: str) -> str:
    """``host:port`` of ``url`` (the scheme's default port spelled out); ValueError if bad."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _dumps(body: Any) -> bytes:
    """The request's JSON: compact, UTF-8, no NaN (as httpx2 encodes ``json=``)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --------------------------------------------------------------------------- the client


class HTTPClient:
    """One pooled HTTP client for one provider instance; JSON in, JSON or SSE out.

    ``secrets`` (API keys) are scrubbed from any text this client puts into an error.
    ``http`` bounds what is read (see ``HTTPConfig``); ``configure`` changes it later.
    ``engine``: "httpx2" or "aiohttp" (None: ``runtime.http.engine.DEFAULT_ENGINE``);
    ``transport``: an httpx2 transport to send through (tests), httpx2 engine only.
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
        transport: Any = None,
        http: HTTPConfig | None = None,
        engine: str | None = None,
    ) -> None:
        self.provider = provider
        self.config = http or HTTPConfig()
        self._parse = error_parser
        self._secrets = tuple(s for s in secrets if s)
        self._closed = False
        self._base = base_url.rstrip("/")
        self._where = _host_port(base_url)
        given = {k.lower(): v for k, v in (headers or {}).items()}
        # Only what the seam decodes itself, whatever the library would ask for.
        self._given = {"accept-encoding": ACCEPT_ENCODING, **given}
        self._headers = {
            "user-agent": USER_AGENT,
            "content-type": "application/json",
            **self._given,
        }
        self._defaults = (connect_timeout, read_timeout)
        self._engine: Engine = build_engine(
            engine,
            base_url=base_url,
            max_connections=max_connections,
            cookies=self.config.cookies,
            transport=transport,
        )
        self._timeouts: dict[tuple[float | None, float | None], Any] = {}
        self._merged: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self.configure(self.config)

    @property
    def engine(self) -> str:
        """The name of the HTTP engine underneath: "httpx2" or "aiohttp"."""
        return self._engine.name

    def configure(self, http: HTTPConfig) -> None:
        """Use ``http``'s bounds from now on (the runtime calls this right after construction;
        a change of ``cookies`` applies to connections the client has not opened yet)."""
        self.config = http
        self._engine.use_cookies(http.cookies)
        self._limits = SSELimits(
            http.max_sse_line_bytes, http.max_sse_event_bytes, http.max_error_body_bytes
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def raw(self) -> Any:
        """An ``httpx2.AsyncClient`` over this pool, for SDK-backed providers (httpx2 only).

        Its replies pass the same checks as the seam's: redirects refused, bodies decoded
        and bounded, cookies by the same rule.
        """
        from .httpx2_engine import Httpx2Engine

        engine = self._engine
        if not isinstance(engine, Httpx2Engine):
            raise ConfigError(
                f"provider {self.provider!r}: an SDK client needs http_engine 'httpx2', "
                f"not {engine.name!r}"
            )
        connect, read = self._defaults
        return engine.raw_client(
            base_url=self._base,
            headers=self._given,
            connect_timeout=connect,
            read_timeout=read,
            check=self._decoder_for,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._engine.aclose()

    # ------------------------------------------------------------------ per-call values, once

    def _timeout(self, connect: float | None, read: float | None) -> Any:
        """The engine's timeout object for this pair (None: the client's default)."""
        key = (
            self._defaults[0] if connect is None else connect,
            self._defaults[1] if read is None else read,
        )
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = self._engine.timeout(*key)
        return timeout

    def _headers_with(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The client's headers with a call's ``extra`` over them, merged once per value."""
        key = tuple(extra.items()) if extra else ()
        merged = self._merged.get(key)
        if merged is None:
            if len(self._merged) >= _CACHE:
                self._merged.clear()
            merged = {**self._headers, **{k.lower(): v for k, v in key}}
            self._merged[key] = merged
        return merged

    def _url(self, path: str, params: Mapping[str, str] | None) -> str:
        """The absolute URL of ``path`` under the base URL (kept as given: a prefix stays)."""
        query = tuple(params.items()) if params else ()
        url = self._urls.get((path, query))
        if url is None:
            if len(self._urls) >= _CACHE:
                self._urls.clear()
            url = f"{self._base}/{path.lstrip('/')}"
            if query:
                url = f"{url}?{urlencode(query)}"
            self._urls[(path, query)] = url
        return url

    # ------------------------------------------------------------------ errors

    def transport_error(
        self, exc: BaseException, model: str | None, path: str, *, mid_stream: bool = False
    ) -> ProviderError:
        """Ours for a transport failure: what failed, where (host:port), and the cause."""
        engine = self._engine
        if isinstance(exc, engine.errors):
            failure = engine.failure(exc)
        else:  # a foreign one (an SDK's cause): judged by what it is
            timeout = isinstance(exc, TimeoutError)
            failure = Failure(type(exc).__name__, str(exc), connect=False, timeout=timeout)
        where = self._where
        detail = scrub(failure.detail, self._secrets)
        cause = f"{failure.kind}: {detail}" if detail else failure.kind
        if failure.connect:
            text = f"POST {path}: cannot connect to {where} ({cause})"
        elif mid_stream:
            text = f"POST {path}: the stream from {where} broke ({cause})"
        else:
            text = f"POST {path} to {where} failed ({cause})"
        common: dict[str, Any] = {"provider": self.provider, "model": model}
        if failure.timeout:
            return ProviderTimeoutError(text, **common)
        return ProviderConnectionError(text, **common)

    def _status_error(
        self, response: EngineResponse, body: bytes, model: str | None
    ) -> ProviderError:
        return error_for_status(
            response.status,
            response.headers,
            body,
            provider=self.provider,
            model=model,
            parse=self._parse,
            secrets=self._secrets,
        )

    def _redirect_error(
        self, method: str, url: str, status: int, location: str | None
    ) -> ProviderError:
        whither = "without a usable Location"
        if location:
            try:
                target = urljoin(url, location)
                there = (urlsplit(target).scheme, _host_port(target))
            except ValueError:
                pass
            else:
                parts = urlsplit(target)
                shown = snippet(f"{there[0]}://{there[1]}{parts.path}", self._secrets)
                here = (urlsplit(url).scheme, self._where)
                whither = f"to {shown}" + (" on another host" if there != here else "")
        return ProviderError(
            f"{method} {urlsplit(url).path}: the server answered HTTP {status}, a "
            f"redirect {whither}; the runtime follows no redirect (the API key must not "
            "travel to another URL): set the provider's base_url to the URL that answers",
            provider=self.provider,
            status_code=status,
        )

    def _decoder_for(
        self, method: str, url: str, status: int, headers: Mapping[str, str]
    ) -> BodyDecoder:
        """How to read a reply's body, from its head (before anyone reads); a redirect or an
        encoding the runtime cannot read raises ours."""
        if 300 <= status < 400:
            raise self._redirect_error(method, url, status, headers.get("location"))
        cfg = self.config
        encoding = headers.get("content-encoding")
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
        stream = "event-stream" in headers.get("content-type", "")
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

    # ------------------------------------------------------------------ sending and reading

    async def _open(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        model: str | None,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> tuple[EngineResponse, BodyDecoder]:
        """Send one POST; its reply (head read) and how to read its body."""
        if self._closed:
            raise RuntimeClosedError(f"POST {path}: this HTTP client was closed")
        url = self._url(path, params)
        request = EngineRequest(
            "POST",
            url,
            self._headers_with(headers),
            _dumps(body),
            self._timeout(connect_timeout, read_timeout),
        )
        engine = self._engine
        try:
            response = await engine.send(request)
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None
        except engine.errors as exc:
            raise self.transport_error(exc, model, path) from exc
        try:
            decoder = self._decoder_for("POST", url, response.status, response.headers)
        except LLMRuntimeError as exc:
            await response.aclose()
            raise self._own(exc, model) from None
        return response, decoder

    async def _read(
        self,
        response: EngineResponse,
        decoder: BodyDecoder,
        path: str,
        model: str | None,
        limit: int | None = None,
    ) -> bytearray:
        """The (decoded, bounded) body; with ``limit``, at most about that many bytes."""
        content = bytearray()
        chunks = response.chunks()
        try:
            async for chunk in chunks:
                for piece in decoder.feed(chunk):
                    content += piece
                if decoder.done or (limit is not None and len(content) >= limit):
                    break
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None
        except self._engine.errors as exc:
            raise self.transport_error(exc, model, path) from exc
        finally:
            await _close(chunks)
        return content

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
        response, decoder = await self._open(
            path, body, headers, params, model, connect_timeout, read_timeout
        )
        try:
            content = await self._read(response, decoder, path, model)
        finally:
            await response.aclose()
        if response.status >= 400:
            raise self._status_error(response, bytes(content), model)
        try:
            return loads(content)
        except ValueError as exc:
            # Raised outside this block: the parser's error holds the whole body.
            message = malformed_json(f"POST {path}: the reply", content, exc, self._secrets)
        raise MalformedResponseError(
            message, provider=self.provider, model=model, status_code=response.status
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
        extra = {"accept": "text/event-stream", **(headers or {})}
        response, decoder = await self._open(
            path, body, extra, params, model, connect_timeout, read_timeout
        )
        try:
            if response.status >= 400:
                content = await self._read(response, decoder, path, model)
                raise self._status_error(response, bytes(content), model)
            ctype = response.headers.get("content-type", "")
            if "json" in ctype and "event-stream" not in ctype:
                # Some servers answer a stream request with one JSON error body and 200.
                try:
                    content = await self._read(
                        response, decoder, path, model, self.config.max_error_body_bytes
                    )
                except LLMRuntimeError:
                    content = bytearray()
                raise MalformedResponseError(
                    f"POST {path}: expected an event stream, got JSON: "
                    f"{snippet(content, self._secrets)!r}",
                    provider=self.provider,
                    model=model,
                    status_code=response.status,
                )
            events = self._events(response, decoder, path, model, unframed)
            try:
                yield events
            finally:
                await events.aclose()  # a consumer that stopped early left it suspended
        finally:
            await response.aclose()

    async def _events(
        self,
        response: EngineResponse,
        decoder: BodyDecoder,
        path: str,
        model: str | None,
        unframed: bool,
    ) -> AsyncGenerator[SSEEvent, None]:
        parser = SSEParser(self._limits, unframed=unframed)
        chunks = response.chunks()
        try:
            async for chunk in chunks:
                for piece in decoder.feed(chunk):
                    for event in parser.feed(piece):
                        yield event
            for event in parser.finish():
                yield event
        except LLMRuntimeError as exc:
            raise self._own(exc, model) from None
        except self._engine.errors as exc:
            raise self.transport_error(exc, model, path, mid_stream=True) from exc
        finally:
            # Close it now, rather than in a task the event loop's finalizer would start.
            await _close(chunks)
