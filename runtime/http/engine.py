"""The one small interface between the seam and an HTTP library ("engine"): send, read, close.

``HTTPClient`` (``runtime.http``) does everything a server can abuse above this line: the
JSON encoding, redirect refusal, body decoding and size caps, SSE parsing, the status and
transport error mapping. An engine only moves bytes:

* ``send(request)`` -> an ``EngineResponse`` (status, headers, an async iterator of the raw
  body bytes, still content-encoded, and ``aclose``), with the pool's limit and the
  request's connect and read timeouts applied;
* ``failure(exc)`` says what kind of transport failure one of its exceptions (those in
  ``errors``) is, so both engines end in the same ``runtime.errors`` type;
* ``aclose()`` closes the pool.

Engines: ``httpx2`` (the default) and ``aiohttp`` (the ``aiohttp`` extra). Each library is
imported only when an engine on it is built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import HTTP_ENGINES
from ..errors import ConfigError, MissingDependencyError

__all__ = [
    "DEFAULT_ENGINE",
    "Engine",
    "EngineRequest",
    "EngineResponse",
    "Failure",
    "build_engine",
]

#: The engine of a client whose provider names none (providers.yaml ``http_engine``). The
#: test suites set it to run the wire and fault tests on each engine.
DEFAULT_ENGINE = "httpx2"


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """One request as an engine sends it: everything already merged and encoded."""

    method: str
    url: str  # absolute
    headers: Mapping[str, str]
    content: bytes
    #: What ``timeout(connect, read)`` of the same engine returned (built once per pair).
    timeout: Any


@dataclass(frozen=True, slots=True)
class Failure:
    """What a transport exception means, in words that do not depend on the engine.

    ``kind`` names it in httpx2's vocabulary (ConnectError, ConnectTimeout, ReadTimeout,
    ReadError, RemoteProtocolError, ...), which both engines share, so the runtime's
    messages read the same on either; ``detail`` is what the library said (empty where the
    kind says it all). ``connect``: it happened opening the connection; ``timeout``: a
    ProviderTimeoutError (else ProviderConnectionError).
    """

    kind: str
    detail: str
    connect: bool
    timeout: bool


class EngineResponse(Protocol):
    """A reply whose head has arrived; the body is read through ``chunks()``."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive, as sent (Content-Encoding included: the seam decodes)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The raw body as it arrives; the engine's exceptions (``errors``) on failure.

        The reader closes the iterator with its ``aclose()`` when it has one (a generator)."""
        ...

    async def aclose(self) -> None:
        """Give the connection back when the body was read to its end, else drop it."""
        ...


class Engine(Protocol):
    """A pooled HTTP/1.1 client under one ``HTTPClient``."""

    name: str
    #: The exception classes of a transport failure (mapped through ``failure``).
    errors: tuple[type[BaseException], ...]

    def timeout(self, connect: float | None, read: float | None) -> Any:
        """This engine's timeout object for a (connect, read) pair in seconds."""
        ...

    def use_cookies(self, keep: bool) -> None:
        """Keep cookies (``cookies: true``) or none, for connections not yet opened."""
        ...

    async def send(self, request: EngineRequest) -> EngineResponse: ...

    def failure(self, exc: BaseException) -> Failure: ...

    async def aclose(self) -> None: ...


def build_engine(
    name: str | None,
    *,
    base_url: str,
    max_connections: int,
    cookies: bool,
    transport: Any = None,
) -> Engine:
    """The engine called ``name`` (None: ``DEFAULT_ENGINE``, or httpx2 when a ``transport``,
    an httpx2 transport that tests and benchmarks inject, is given)."""
    if name is None:
        name = "httpx2" if transport is not None else DEFAULT_ENGINE
    if name not in HTTP_ENGINES:
        raise ConfigError(
            f"unknown http_engine {name!r}: use one of {', '.join(map(repr, HTTP_ENGINES))}"
        )
    https = base_url.lower().startswith("https:")
    if name == "aiohttp":
        if transport is not None:
            raise ConfigError(
                "transport= is an httpx2 transport: it works with http_engine 'httpx2' only"
            )
        try:
            from .aiohttp_engine import AiohttpEngine
        except ImportError as exc:
            raise MissingDependencyError(
                "aiohttp", "aiohttp", purpose="http_engine: aiohttp"
            ) from exc
        return AiohttpEngine(max_connections=max_connections, cookies=cookies, https=https)
    from .httpx2_engine import Httpx2Engine

    return Httpx2Engine(
        max_connections=max_connections, cookies=cookies, https=https, transport=transport
    )
