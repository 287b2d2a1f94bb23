"""The aiohttp engine (the ``aiohttp`` extra): one ``ClientSession`` per client, made in its loop.

The session is set up so that everything a server can abuse stays with the seam: no
decompression (``auto_decompress=False``: the seam decodes, bounded), no redirects
(``allow_redirects=False``: the seam refuses them), no proxies or .netrc from the
environment (``trust_env=False``), cookies only with ``cookies: true`` (a ``DummyCookieJar``
otherwise). The pool is a ``TCPConnector`` of ``max_connections`` connections, idle ones
kept 5 s as httpx2 keeps them; TLS is set up for https base URLs only.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from .engine import EngineRequest, Failure

__all__ = ["AiohttpEngine"]

#: Seconds an idle pooled connection is kept (httpx2's default keep-alive expiry).
KEEPALIVE = 5.0
#: Parsed URLs kept per engine (one per route; a bound against unusual callers).
_URL_CACHE = 256
#: aiohttp 3.10+ tells a connect timeout from a read timeout by class; 3.9 does not.
_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    c for c in (getattr(aiohttp, "ConnectionTimeoutError", None),) if c is not None
)

#: A URL that is not http(s) (3.10+; 3.9 raises InvalidURL).
_NON_HTTP: tuple[type[BaseException], ...] = tuple(
    c for c in (getattr(aiohttp, "NonHttpUrlClientError", None),) if c is not None
)

_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


class _Response:
    """An ``EngineResponse`` over an ``aiohttp.ClientResponse``."""

    __slots__ = ("_raw", "headers", "status")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers

    def chunks(self) -> AsyncIterator[bytes]:
        return self._raw.content.iter_any()  # aiohttp's own iterator: no generator over it

    async def aclose(self) -> None:
        raw = self._raw
        if raw.content.at_eof():
            raw.release()  # read to its end: the connection goes back to the pool
        else:
            raw.close()  # stopped early: the rest of the body is never read


class AiohttpEngine:
    """One aiohttp session and connection pool for one ``HTTPClient``."""

    name = "aiohttp"
    # TimeoutError: asyncio's (the same class since 3.11), from a connect or read limit;
    # OSError: a socket error aiohttp let through unwrapped.
    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)

    def __init__(self, *, max_connections: int, cookies: bool, https: bool) -> None:
        self._limit = max_connections
        self._cookies = cookies
        self._https = https
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._closed = False

    def use_cookies(self, keep: bool) -> None:
        # The jar is chosen when the session is made, on the first request; the runtime
        # configures every client before that.
        self._cookies = keep

    def timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        # ``connect`` covers waiting for a pooled connection and opening one (httpx2's pool
        # and connect); ``sock_read`` is the longest wait for any bytes, as httpx2's read.
        return aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=read
        )

    def _open(self) -> aiohttp.ClientSession:
        """The session, made on the first request (inside the running loop)."""
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,  # one host per client: ``limit`` is the bound
            keepalive_timeout=KEEPALIVE,
            ssl=True if self._https else False,  # noqa: SIM210 - no TLS set up for http://
        )
        jar: aiohttp.abc.AbstractCookieJar = (
            # unsafe=True: cookies of an IP-address host are kept too, as httpx2's jar keeps them.
            aiohttp.CookieJar(unsafe=True) if self._cookies else aiohttp.DummyCookieJar()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=jar,
            auto_decompress=False,
            trust_env=False,
            timeout=self.timeout(None, None),
        )
        return self._session

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    async def send(self, request: EngineRequest) -> _Response:
        if self._closed:
            raise aiohttp.ClientConnectionError("the client was closed")
        session = self._session or self._open()
        response = await session.request(
            request.method,
            self._url(request.url),
            headers=request.headers,
            data=request.content,
            timeout=request.timeout,
            allow_redirects=False,
        )
        return _Response(response)

    def failure(self, exc: BaseException) -> Failure:
        return failure(exc)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def __repr__(self) -> str:
        return f"AiohttpEngine(limit={self._limit}, open={self._session is not None})"


def failure(exc: BaseException) -> Failure:
    """An aiohttp (or asyncio, or socket) exception in the seam's words (see ``Failure``).

    Each kind is the one httpx2 raises for the same event, so both engines give the same
    error type and message: a connect timeout is ConnectTimeout, a read limit ReadTimeout,
    a refused or unresolvable connection ConnectError (with the socket's reason), a reply
    cut short RemoteProtocolError, a socket error on an open connection ReadError.
    """
    if isinstance(exc, _CONNECT_TIMEOUT):
        return Failure("ConnectTimeout", "", connect=True, timeout=True)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        # 3.9's connect timeout is a ServerTimeoutError too; only its text tells.
        connect = str(exc).startswith("Connection timeout")
        kind = "ConnectTimeout" if connect else "ReadTimeout"
        return Failure(kind, "", connect=connect, timeout=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return Failure("ConnectError", reason or str(exc), connect=True, timeout=False)
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):  # the pinned TLS key differs
        return Failure("ConnectError", str(exc), connect=True, timeout=False)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Failure("RemoteProtocolError", "Server disconnected", connect=False, timeout=False)
    if isinstance(exc, aiohttp.ClientPayloadError) and "ConnectionResetError(" in str(exc):
        # A body cut by a reset: aiohttp keeps the socket's error only in its text.
        return Failure("ReadError", "", connect=False, timeout=False)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        # A body cut short or a reply that is not HTTP (an error status never raises here:
        # the seam reads statuses itself).
        return Failure("RemoteProtocolError", str(exc), connect=False, timeout=False)
    if isinstance(exc, (aiohttp.InvalidURL, *_NON_HTTP)):
        return Failure("UnsupportedProtocol", str(exc), connect=False, timeout=False)
    if isinstance(exc, OSError):  # ClientOSError, ClientConnectionResetError, a bare one
        # A reset says no more than its kind (httpx2's ReadError carries no text either).
        detail = "" if exc.errno in _RESET else (exc.strerror or str(exc))
        return Failure("ReadError", detail, connect=False, timeout=False)
    if isinstance(exc, aiohttp.ClientConnectionError):  # "Connection lost", "closed"...
        return Failure("ReadError", str(exc), connect=False, timeout=False)
    return Failure(type(exc).__name__, str(exc), connect=False, timeout=False)
