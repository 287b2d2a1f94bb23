"""The httpx2 engine: requests go straight to httpx2's pooled transport, not through its client.

The seam builds each request itself (headers merged once, JSON encoded once), so httpx2's
``AsyncClient`` (its header merging, auth and redirect machinery) is skipped on the seam's
path; cookies, when ``cookies: true``, are kept in an ``httpx2.Cookies`` jar here.

``raw_client`` is the ``AsyncClient`` that an SDK-backed provider (``OpenAISDKProvider``)
drives. It shares this engine's pool through ``_SeamTransport``, which applies the seam's
checks under the SDK: redirects refused, every body decoded and bounded by the same
``check`` the seam uses for its own requests.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from http.cookiejar import CookieJar, CookiePolicy
from typing import Any

import httpx2

from ..body import BodyDecoder
from .engine import EngineRequest, Failure

__all__ = ["Httpx2Engine"]

#: Checks a reply's head and says how to read its body (``HTTPClient._decoder_for``).
Check = Callable[[str, str, int, Mapping[str, str]], BodyDecoder]

#: Headers that describe the body as it travelled; gone once the seam has decoded it.
_ENCODING_HEADERS = frozenset({b"content-encoding", b"content-length"})
#: Parsed URLs kept per engine (one per route; a bound against unusual callers).
_URL_CACHE = 256


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


def _jar(keep: bool) -> CookieJar:
    # A bare CookieJar: httpx2 copies a Cookies object into a jar of the default policy.
    return CookieJar() if keep else CookieJar(_NoCookies())


def _ssl_context(https: bool) -> ssl.SSLContext:
    """The verified default for https; for http, an empty context that fails closed.

    httpx2's transport needs some context; loading the CA bundle costs ~20 ms, and a plain
    http:// client never does TLS. The empty one verifies (CERT_REQUIRED) against no CA,
    so it could never accept a certificate.
    """
    if https:
        return ssl.create_default_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _Response:
    """An ``EngineResponse`` over an ``httpx2.Response`` from the transport."""

    __slots__ = ("_raw", "headers", "status")

    def __init__(self, raw: httpx2.Response) -> None:
        self._raw = raw
        self.status = raw.status_code
        self.headers: Mapping[str, str] = raw.headers

    def chunks(self) -> AsyncIterator[bytes]:
        stream = self._raw.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return stream.__aiter__()  # the transport's own iterator: no generator over it

    async def aclose(self) -> None:
        await self._raw.aclose()


class Httpx2Engine:
    """One httpx2 connection pool (``AsyncHTTPTransport``) for one ``HTTPClient``."""

    name = "httpx2"
    errors: tuple[type[BaseException], ...] = (httpx2.HTTPError,)

    def __init__(
        self,
        *,
        max_connections: int,
        cookies: bool,
        https: bool,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._transport = transport or httpx2.AsyncHTTPTransport(
            verify=_ssl_context(https), limits=limits, trust_env=False
        )
        self._cookies = cookies
        self._jar = httpx2.Cookies() if cookies else None
        self._urls: dict[str, httpx2.URL] = {}
        self._raw: httpx2.AsyncClient | None = None

    def use_cookies(self, keep: bool) -> None:
        if keep != self._cookies:
            self._cookies = keep
            self._jar = httpx2.Cookies() if keep else None
            if self._raw is not None:
                self._raw.cookies = _jar(keep)

    def timeout(self, connect: float | None, read: float | None) -> dict[str, float | None]:
        # A write is bounded like a read; waiting for a pooled connection like a connect.
        return {"connect": connect, "read": read, "write": read, "pool": connect}

    def _url(self, url: str) -> httpx2.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = httpx2.URL(url)
        return parsed

    async def send(self, request: EngineRequest) -> _Response:
        sent = httpx2.Request(
            request.method,
            self._url(request.url),
            headers=request.headers,
            content=request.content,
            extensions={"timeout": request.timeout},
        )
        jar = self._jar
        if jar is not None:
            jar.set_cookie_header(sent)
        response = await self._transport.handle_async_request(sent)
        if jar is not None:
            response.request = sent
            jar.extract_cookies(response)
        return _Response(response)

    def failure(self, exc: BaseException) -> Failure:
        return Failure(
            kind=type(exc).__name__,
            detail=str(exc),
            connect=isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout),
            timeout=isinstance(exc, httpx2.TimeoutException),
        )

    def raw_client(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        connect_timeout: float | None,
        read_timeout: float | None,
        check: Check,
    ) -> httpx2.AsyncClient:
        """The ``AsyncClient`` over this pool for an SDK, made once."""
        if self._raw is None:
            self._raw = httpx2.AsyncClient(
                base_url=base_url,
                headers=dict(headers),
                timeout=httpx2.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
                transport=_SeamTransport(self._transport, check),
                follow_redirects=False,
                trust_env=False,
                cookies=_jar(self._cookies),
            )
        return self._raw

    async def aclose(self) -> None:
        if self._raw is not None:
            await self._raw.aclose()
        await self._transport.aclose()


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
    """Under an SDK's client: the seam's ``check`` on every reply, bodies decoded."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, check: Check) -> None:
        self._inner = inner
        self._check = check

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        try:
            decoder = self._check(
                request.method, str(request.url), response.status_code, response.headers
            )
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
        """Nothing: the engine owns the pool and closes it."""
