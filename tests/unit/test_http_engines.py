"""The two HTTP engines: every aiohttp failure mapped as httpx2's, and http_engine in the YAML."""
# ruff: noqa: E501  (the mapping table reads best one kind to a line)

from __future__ import annotations

import asyncio
import errno
import sys
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp import client_exceptions
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from runtime import errors
from runtime.errors import ConfigError, MissingDependencyError
from runtime.http import HTTPClient
from runtime.http.engine import build_engine
from runtime.loader import load_catalog
from runtime.providers.openai_provider import OpenAIProvider
from tests.unit.helpers import catalog, runtime_for
from tests.unit.test_loader import problems_of, write

BASE = "http://127.0.0.1:9"
KEY = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
REFUSED = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
_INFO = aiohttp.RequestInfo(URL(BASE), "POST", {}, URL(BASE))  # type: ignore[arg-type]


def _ssl_error() -> Any:
    import ssl

    return ssl.SSLCertVerificationError(1, "certificate verify failed")


#: Each aiohttp exception kind, an instance of it, and the httpx2 exception that httpx2
#: raises for the same event: the runtime must give the same error for both.
TABLE: list[tuple[type[BaseException], Any, Any]] = [
    # -- opening the connection
    (aiohttp.ClientConnectorError, lambda: aiohttp.ClientConnectorError(KEY, REFUSED), lambda: httpx2.ConnectError("Connection refused")),
    (aiohttp.ClientConnectorDNSError, lambda: aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known")), lambda: httpx2.ConnectError("Name or service not known")),
    (aiohttp.ClientProxyConnectionError, lambda: aiohttp.ClientProxyConnectionError(KEY, REFUSED), lambda: httpx2.ConnectError("Connection refused")),
    (client_exceptions.UnixClientConnectorError, lambda: client_exceptions.UnixClientConnectorError("/s", KEY, REFUSED), lambda: httpx2.ConnectError("Connection refused")),
    (aiohttp.ClientSSLError, lambda: aiohttp.ClientSSLError(KEY, OSError(1, "tls failed")), lambda: httpx2.ConnectError("tls failed")),
    (aiohttp.ClientConnectorSSLError, lambda: aiohttp.ClientConnectorSSLError(KEY, OSError(1, "tls failed")), lambda: httpx2.ConnectError("tls failed")),
    (aiohttp.ClientConnectorCertificateError, lambda: aiohttp.ClientConnectorCertificateError(KEY, _ssl_error()), lambda: httpx2.ConnectError("certificate verify failed")),
    (aiohttp.ConnectionTimeoutError, lambda: aiohttp.ConnectionTimeoutError("Connection timeout to host"), lambda: httpx2.ConnectTimeout("")),
    # -- waiting for the reply (sock_read) or an asyncio limit
    (aiohttp.SocketTimeoutError, lambda: aiohttp.SocketTimeoutError("Timeout on reading data from socket"), lambda: httpx2.ReadTimeout("")),
    (aiohttp.ServerTimeoutError, lambda: aiohttp.ServerTimeoutError("Timeout on reading data from socket"), lambda: httpx2.ReadTimeout("")),
    (asyncio.TimeoutError, lambda: TimeoutError(), lambda: httpx2.ReadTimeout("")),
    # -- the connection breaking
    (aiohttp.ServerDisconnectedError, lambda: aiohttp.ServerDisconnectedError(), lambda: httpx2.RemoteProtocolError("Server disconnected")),
    (aiohttp.ClientOSError, lambda: aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"), lambda: httpx2.ReadError("")),
    (aiohttp.ClientConnectionResetError, lambda: aiohttp.ClientConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), lambda: httpx2.ReadError("")),
    (OSError, lambda: OSError(errno.EHOSTUNREACH, "No route to host"), lambda: httpx2.ReadError("No route to host")),
    (aiohttp.ClientConnectionError, lambda: aiohttp.ClientConnectionError("Connection lost"), lambda: httpx2.ReadError("Connection lost")),
    (aiohttp.ServerConnectionError, lambda: aiohttp.ServerConnectionError("gone"), lambda: httpx2.ReadError("gone")),
    (aiohttp.ServerFingerprintMismatch, lambda: aiohttp.ServerFingerprintMismatch(b"a", b"b", "127.0.0.1", 9), lambda: httpx2.ConnectError(str(aiohttp.ServerFingerprintMismatch(b"a", b"b", "127.0.0.1", 9)))),
    # -- a reply that is cut short or not HTTP
    (aiohttp.ClientPayloadError, lambda: aiohttp.ClientPayloadError("Response payload is not completed"), lambda: httpx2.RemoteProtocolError("Response payload is not completed")),
    (aiohttp.ClientResponseError, lambda: aiohttp.ClientResponseError(_INFO, (), status=400, message="bad"), lambda: httpx2.RemoteProtocolError(str(aiohttp.ClientResponseError(_INFO, (), status=400, message="bad")))),
    (aiohttp.ContentTypeError, lambda: aiohttp.ContentTypeError(_INFO, (), message="bad"), lambda: httpx2.RemoteProtocolError(str(aiohttp.ContentTypeError(_INFO, (), message="bad")))),
    (aiohttp.ClientHttpProxyError, lambda: aiohttp.ClientHttpProxyError(_INFO, (), status=407), lambda: httpx2.RemoteProtocolError(str(aiohttp.ClientHttpProxyError(_INFO, (), status=407)))),
    (aiohttp.WSServerHandshakeError, lambda: aiohttp.WSServerHandshakeError(_INFO, ()), lambda: httpx2.RemoteProtocolError(str(aiohttp.WSServerHandshakeError(_INFO, ())))),
    (aiohttp.TooManyRedirects, lambda: aiohttp.TooManyRedirects(_INFO, ()), lambda: httpx2.RemoteProtocolError(str(aiohttp.TooManyRedirects(_INFO, ())))),
    # -- a URL the library will not send to
    (aiohttp.InvalidURL, lambda: aiohttp.InvalidURL("ftp://x"), lambda: httpx2.UnsupportedProtocol("ftp://x")),
    (aiohttp.InvalidUrlClientError, lambda: aiohttp.InvalidUrlClientError("ftp://x"), lambda: httpx2.UnsupportedProtocol("ftp://x")),
    (aiohttp.InvalidUrlRedirectClientError, lambda: aiohttp.InvalidUrlRedirectClientError("ftp://x"), lambda: httpx2.UnsupportedProtocol("ftp://x")),
    (aiohttp.NonHttpUrlClientError, lambda: aiohttp.NonHttpUrlClientError("ftp://x"), lambda: httpx2.UnsupportedProtocol("ftp://x")),
    (aiohttp.NonHttpUrlRedirectClientError, lambda: aiohttp.NonHttpUrlRedirectClientError("ftp://x"), lambda: httpx2.UnsupportedProtocol("ftp://x")),
    # -- kinds a client never sees from the seam's requests, mapped all the same
    (aiohttp.RedirectClientError, lambda: aiohttp.RedirectClientError("redirect"), lambda: None),
    (aiohttp.UploadAbortedError, lambda: aiohttp.UploadAbortedError("aborted"), lambda: None),
    (aiohttp.ClientError, lambda: aiohttp.ClientError("boom"), lambda: None),
]  # fmt: skip


def _client(engine: str) -> HTTPClient:
    return HTTPClient(base_url=BASE, provider="p", secrets=("sk-secret",), engine=engine)


def _aiohttp_kinds() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [aiohttp.ClientError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("aiohttp"):
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_table_covers_every_aiohttp_exception_kind() -> None:
    covered = {kind for kind, _, _ in TABLE}
    assert _aiohttp_kinds() - covered == set()


@pytest.mark.parametrize(
    ("make", "analog"),
    [pytest.param(make, analog, id=kind.__name__) for kind, make, analog in TABLE],
)
@pytest.mark.parametrize("mid_stream", [False, True], ids=["head", "mid-stream"])
def test_an_aiohttp_failure_is_the_error_httpx2_gives(
    make: Any, analog: Any, mid_stream: bool
) -> None:
    exc = make()
    aio = _client("aiohttp")
    assert isinstance(exc, aio._engine.errors)  # the seam catches it
    ours = aio.transport_error(exc, "m", "/x", mid_stream=mid_stream)
    assert ours.retryable
    assert "sk-secret" not in str(ours)
    twin = analog()
    if twin is None:  # no httpx2 counterpart: a connection error naming the aiohttp kind
        assert type(ours) is errors.ProviderConnectionError
        assert f"({type(exc).__name__}: " in str(ours)
        return
    theirs = _client("httpx2").transport_error(twin, "m", "/x", mid_stream=mid_stream)
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            aiohttp.ConnectionTimeoutError(),
            "[provider 'p', model 'm'] POST /x: cannot connect to 127.0.0.1:9 (ConnectTimeout)",
            id="connect-timeout",
        ),
        pytest.param(
            aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
            "[provider 'p', model 'm'] POST /x to 127.0.0.1:9 failed (ReadTimeout)",
            id="read-timeout",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(KEY, REFUSED),
            "[provider 'p', model 'm'] POST /x: cannot connect to 127.0.0.1:9 "
            "(ConnectError: Connection refused)",
            id="refused",
        ),
        pytest.param(
            aiohttp.ClientPayloadError(
                "Response payload is not completed: <TransferEncodingError: 400>. "
                "ConnectionResetError(104, 'Connection reset by peer')"
            ),
            "[provider 'p', model 'm'] POST /x to 127.0.0.1:9 failed (ReadError)",
            id="payload-cut-by-reset",
        ),
        pytest.param(
            aiohttp.ClientOSError(errno.ECONNRESET, "boom sk-secret"),
            "[provider 'p', model 'm'] POST /x to 127.0.0.1:9 failed (ReadError)",
            id="reset",
        ),
        pytest.param(
            aiohttp.ClientPayloadError("cut sk-secret"),
            "[provider 'p', model 'm'] POST /x to 127.0.0.1:9 failed "
            "(RemoteProtocolError: cut ***)",
            id="payload-scrubbed",
        ),
    ],
)
def test_aiohttp_failures_read_as_the_runtime_words_them(exc: BaseException, expected: str) -> None:
    assert str(_client("aiohttp").transport_error(exc, "m", "/x")) == expected


def test_timeout_kinds_are_provider_timeouts_and_the_rest_connection_errors() -> None:
    client = _client("aiohttp")
    for _, make, _ in TABLE:
        exc = make()
        error = client.transport_error(exc, "m", "/x")
        timeout = isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError)
        expected = errors.ProviderTimeoutError if timeout else errors.ProviderConnectionError
        assert type(error) is expected, type(exc).__name__


# --------------------------------------------------------------------------- the engines


def test_each_engine_is_what_was_asked_and_httpx2_is_the_default() -> None:
    assert _client("aiohttp").engine == "aiohttp"
    assert _client("httpx2").engine == "httpx2"
    assert HTTPClient(base_url=BASE).engine == "httpx2"


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown http_engine 'curl'"):
        HTTPClient(base_url=BASE, engine="curl")


def test_an_httpx2_transport_is_refused_on_aiohttp_and_picks_httpx2_by_default() -> None:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json={}))
    assert HTTPClient(base_url=BASE, transport=transport).engine == "httpx2"
    with pytest.raises(ConfigError, match="works with http_engine 'httpx2' only"):
        HTTPClient(base_url=BASE, transport=transport, engine="aiohttp")


def test_without_aiohttp_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    monkeypatch.setitem(sys.modules, "runtime.http.aiohttp_engine", None)
    with pytest.raises(MissingDependencyError) as info:
        build_engine("aiohttp", base_url=BASE, max_connections=1, cookies=False)
    assert "pip install 'llm-runtime[aiohttp]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_an_sdk_client_needs_httpx2() -> None:
    assert isinstance(_client("httpx2").raw, httpx2.AsyncClient)
    with pytest.raises(ConfigError, match="needs http_engine 'httpx2', not 'aiohttp'"):
        _client("aiohttp").raw  # noqa: B018


@pytest.mark.parametrize("engine", ["httpx2", "aiohttp"])
def test_timeout_objects_and_merged_headers_are_built_once_per_value(engine: str) -> None:
    client = _client(engine)
    first = client._timeout(1.0, 2.0)
    assert client._timeout(1.0, 2.0) is first
    assert client._timeout(None, None) is client._timeout(10.0, 120.0)
    assert client._timeout(1.0, 3.0) is not first
    headers = client._headers_with({"Accept": "application/json"})
    assert client._headers_with({"Accept": "application/json"}) is headers
    assert headers["accept"] == "application/json"
    assert headers["accept-encoding"] == "gzip, deflate"


def test_aiohttp_timeouts_bound_connect_and_read_as_httpx2_does() -> None:
    aio = _client("aiohttp")._timeout(1.5, 7.0)
    assert (aio.total, aio.connect, aio.sock_connect, aio.sock_read) == (None, 1.5, 1.5, 7.0)
    httpx = _client("httpx2")._timeout(1.5, 7.0)
    assert httpx == {"connect": 1.5, "read": 7.0, "write": 7.0, "pool": 1.5}


def test_no_ca_bundle_is_loaded_for_an_http_base_url() -> None:
    import ssl

    from runtime.http.httpx2_engine import _ssl_context

    plain = _ssl_context(https=False)
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert plain.verify_mode == ssl.CERT_REQUIRED  # fails closed if ever used
    assert plain.check_hostname


async def test_the_aiohttp_session_is_made_in_the_loop_as_configured() -> None:
    client = _client("aiohttp")
    engine: Any = client._engine
    assert engine._session is None  # nothing at construction
    session = engine._open()
    try:
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.auto_decompress is False
        assert session.trust_env is False
        assert session.connector.limit == 100
        assert session.connector._ssl is False  # no TLS for an http:// base URL
    finally:
        await client.aclose()
    assert session.closed


# --------------------------------------------------------------------------- the YAML


PROVIDERS = """\
settings:
  http_engine: {settings}
providers:
  p:
    class: runtime.providers.openai_provider.OpenAIProvider
    base_url: http://127.0.0.1:9
  q:
    class: runtime.providers.openai_provider.OpenAIProvider
    base_url: http://127.0.0.1:9
    http_engine: {q}
  sdk:
    class: runtime.providers.openai_sdk_provider.OpenAISDKProvider
    base_url: http://127.0.0.1:9
"""
MODELS = """\
models:
  a: {provider: p}
  b: {provider: q}
  c: {provider: sdk}
"""


@pytest.mark.parametrize(("settings", "q"), [("aiohttp", "httpx2"), ("httpx2", "aiohttp")])
async def test_settings_choose_the_engine_and_a_provider_overrides_it(
    tmp_path: Path, settings: str, q: str
) -> None:
    providers = write(tmp_path, "providers.yaml", PROVIDERS.format(settings=settings, q=q))
    models = write(tmp_path, "models.yaml", MODELS)
    rt = runtime_for(load_catalog(providers, models))
    try:
        engines = [rt.provider_for(m).http().engine for m in ("a", "b")]  # type: ignore[attr-defined]
        assert engines == [settings, q]
        # The SDK provider keeps httpx2 whatever settings say (its SDK drives httpx2).
        assert rt.provider_for("c").http().engine == "httpx2"  # type: ignore[attr-defined]
    finally:
        await rt.aclose()


def test_an_unknown_engine_in_the_yaml_is_a_load_error(tmp_path: Path) -> None:
    providers = write(tmp_path, "providers.yaml", PROVIDERS.format(settings="httpx2", q="curl"))
    models = write(tmp_path, "models.yaml", MODELS)
    [problem] = problems_of(providers, models)
    assert problem.startswith(f"{providers}:10:18: providers.q.http_engine: ")
    assert "'aiohttp'" in problem
    assert "'httpx2'" in problem


def test_the_sdk_provider_refuses_aiohttp_of_its_own_at_load(tmp_path: Path) -> None:
    text = PROVIDERS.format(settings="httpx2", q="httpx2") + "    http_engine: aiohttp\n"
    providers = write(tmp_path, "providers.yaml", text)
    models = write(tmp_path, "models.yaml", MODELS)
    assert problems_of(providers, models) == [
        f"{providers}:14:18: providers.sdk.http_engine: OpenAISDKProvider sends through "
        "httpx2 only, not 'aiohttp' (its SDK needs that client): remove http_engine here, "
        "or use a provider class that speaks HTTP itself"
    ]


async def test_a_provider_built_directly_uses_the_default_engine() -> None:
    provider = OpenAIProvider(api_key="k", base_url=BASE)
    assert provider.http().engine == "httpx2"
    other = OpenAIProvider(api_key="k", base_url=BASE)
    other.http_engine = "aiohttp"  # what the runtime sets from the YAML, before first use
    assert other.http().engine == "aiohttp"
    await provider.aclose()
    await other.aclose()


async def test_changing_the_engine_on_reload_builds_a_new_instance() -> None:
    base = {"class": "runtime.providers.openai_provider.OpenAIProvider", "base_url": BASE}
    rt = runtime_for(catalog({"m": {"provider": "p"}}, {"p": base}))
    try:
        before = rt.provider_for("m")
        await rt.reload(catalog({"m": {"provider": "p"}}, {"p": base}, {"http_engine": "aiohttp"}))
        after = rt.provider_for("m")
        assert after is not before
        assert after.http().engine == "aiohttp"  # type: ignore[attr-defined]
    finally:
        await rt.aclose()
