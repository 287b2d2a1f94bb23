"""OpenAI Chat Completions through the official ``openai`` package (the ``openai`` extra).

The SDK is imported when the provider is built, never when this module is imported. Its
retries are off (the runtime owns retries) and it sends through the runtime's HTTP pool:
an ``HTTPClient`` is created and its underlying client handed to ``openai.AsyncOpenAI``.
The request body and the reading of replies, chunks and usage are the wire provider's
(``runtime.providers.openai_provider``), so both providers send and parse the same JSON.
Every SDK exception becomes ours in one place, ``_sdk_errors``. The seam's transport sits
under the shared pool, so the SDK's replies are bounded and decoded by the runtime
(``settings.http`` / ``http:``), redirects refused and cookies off, as for the wire provider;
the SDK parses event streams itself, so only the stream's total size bound applies there.

It always sends through httpx2 (the SDK needs an ``httpx2.AsyncClient``): with
``settings.http_engine: aiohttp`` it keeps httpx2, and its own ``http_engine: aiohttp`` is
a load error.

Known difference from the wire provider: the SDK swallows ``data: [DONE]``, so a stream
that ends without it is only detected when no ``finish_reason`` arrived
(ProviderConnectionError); a stream cut after the finish reason but before the usage
chunk ends with empty usage.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    ContentFilteredError,
    LLMRuntimeError,
    MalformedResponseError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from ..redact import redact, scrub, snippet
from ..status import error_for_payload, error_for_status
from ..types import ChatRequest, ProviderResponse, StreamEvent
from .openai_provider import OpenAIProvider, OpenAIStream, openai_error_parser, reply_events

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAISDKProvider"]

_PATH = "/chat/completions"


class OpenAISDKProvider(OpenAIProvider):
    """OpenAI Chat Completions via ``openai.AsyncOpenAI`` (retries off, shared HTTP pool).

    Takes the same options as ``OpenAIProvider``. Unlike a bare ``AsyncOpenAI``, it does
    not read OPENAI_BASE_URL / OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment: the
    YAML says everything. Without an API key no Authorization header is sent.
    """

    #: The SDK drives an httpx2 client: this provider keeps httpx2 whatever
    #: settings.http_engine says, and refuses ``http_engine: aiohttp`` of its own at load.
    http_engines: ClassVar[frozenset[str] | None] = frozenset({"httpx2"})
    _sdk: Any  # the openai module
    _sdk_client_: Any = None
    _create_params: frozenset[str] = frozenset()

    def setup(self) -> None:
        try:
            import openai
        except ImportError as exc:
            raise MissingDependencyError(
                "openai", "openai", purpose="the OpenAI SDK provider (OpenAISDKProvider)"
            ) from exc
        self._sdk = openai

    def _sdk_client(self) -> openai.AsyncOpenAI:
        """The SDK client over this provider's pool, made on first use."""
        http = self.http()  # RuntimeClosedError after aclose()
        client = self._sdk_client_
        if client is None:
            sdk = self._sdk
            omit = sdk.Omit()
            headers: dict[str, Any] = {
                # Omit() removes what the SDK would add from the environment or a dummy key.
                "OpenAI-Organization": self.options.organization or omit,
                "OpenAI-Project": self.options.project or omit,
                **self.options.headers,
            }
            client = self._sdk_client_ = sdk.AsyncOpenAI(
                # The SDK refuses to start without a key; local servers need none, so a
                # placeholder goes in and each request omits the header (_create_kwargs).
                api_key=self.api_key or "no-key",
                organization=self.options.organization,
                project=self.options.project,
                base_url=self._base,
                default_headers=headers,
                max_retries=0,
                http_client=http.raw,
            )
            self._create_params = frozenset(
                inspect.signature(client.chat.completions.create).parameters
            ) - {"extra_headers", "extra_query", "extra_body", "timeout"}
        return client  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the HTTP pool (which the SDK client uses)."""
        self._sdk_client_ = None
        await super().aclose()

    def _create_kwargs(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        """Keyword arguments of ``chat.completions.create``: the wire body, split.

        Parameters the SDK knows go as keywords; the rest (vendor extensions) go in
        ``extra_body`` so the JSON sent equals the wire provider's.
        """
        body = self.encode(request, stream)
        kwargs = {k: v for k, v in body.items() if k in self._create_params}
        extra = {k: v for k, v in body.items() if k not in self._create_params}
        if extra:
            kwargs["extra_body"] = extra
        if not self.api_key:
            # Only a per-request Omit satisfies the SDK's check that auth was left out on purpose.
            kwargs["extra_headers"] = {"Authorization": self._sdk.Omit()}
        if request.connect_timeout is not None or request.read_timeout is not None:
            base = self.http().raw.timeout
            connect = request.connect_timeout or base.connect
            read = request.read_timeout or base.read
            kwargs["timeout"] = self._sdk.Timeout(read, connect=connect, pool=connect)
        return kwargs

    @contextmanager
    def _sdk_errors(self, model: str) -> Iterator[None]:
        """Map every exception the SDK raises to ours (the one place that does)."""
        import httpx2

        sdk = self._sdk
        provider = self.provider_name or None
        common: dict[str, Any] = {"provider": provider, "model": model}
        secrets = self.secrets
        try:
            yield
        except LLMRuntimeError as exc:  # ours, raised under the SDK by the seam's transport
            if isinstance(exc, ProviderError):
                exc.provider = exc.provider or provider
                exc.model = exc.model or model
            raise
        except sdk.APIStatusError as exc:
            raise self._status_error(exc, model) from _scrubbed(exc, secrets)
        except (sdk.APITimeoutError, sdk.APIConnectionError) as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx2.HTTPError):
                raise self.http().transport_error(cause, model, _PATH) from exc
            kind = ProviderTimeoutError if isinstance(exc, sdk.APITimeoutError) else None
            what = f"POST {_PATH} timed out" if kind else f"POST {_PATH} failed"
            raise (kind or ProviderConnectionError)(
                scrub(_describe(exc, what), secrets), **common
            ) from exc
        except sdk.APIResponseValidationError as exc:
            raise MalformedResponseError(
                f"the reply does not match the Chat Completions schema: {exc.message}", **common
            ) from exc
        except sdk.APIError as exc:  # an error event inside a stream (no HTTP status)
            from .openai_provider import error_status

            payload = {"error": exc.body if exc.body is not None else {"message": exc.message}}
            status, envelope = error_status(payload)
            raise error_for_payload(
                status,
                envelope,
                provider=provider,
                model=model,
                parse=openai_error_parser,
                secrets=secrets,
                where="the stream",
            ) from _scrubbed(exc, secrets)
        except sdk.ContentFilterFinishReasonError as exc:
            raise ContentFilteredError(str(exc), **common) from exc
        except sdk.OpenAIError as exc:
            raise ProviderError(
                scrub(f"the openai SDK failed: {type(exc).__name__}: {exc}", secrets), **common
            ) from _scrubbed(exc, secrets)
        except RecursionError:  # the SDK's json.loads of JSON nested too deeply
            raise MalformedResponseError(
                "the reply is JSON nested too deeply to parse (a hostile or broken reply)",
                **common,
            ) from None
        except ValueError as exc:  # the SDK's json.loads of a reply or an SSE data line
            if isinstance(exc, json.JSONDecodeError):
                exc.doc = ""  # the whole body, key included, kept by the parser's error
            raise MalformedResponseError(
                scrub(f"the reply is not valid JSON: {type(exc).__name__}: {exc}", secrets),
                **common,
            ) from _scrubbed(exc, secrets)

    def _status_error(self, exc: Any, model: str) -> ProviderError:
        """Our error for an ``APIStatusError``, read from the HTTP reply as the seam does."""
        common: dict[str, Any] = {
            "provider": self.provider_name or None,
            "model": model,
            "parse": openai_error_parser,
            "secrets": self.secrets,
        }
        try:
            body: bytes = exc.response.content
        except Exception:  # the SDK did not read the body (httpx's ResponseNotRead)
            return error_for_payload(
                exc.status_code, {"error": exc.body}, headers=exc.response.headers, **common
            )
        return error_for_status(exc.status_code, exc.response.headers, body, **common)

    def _as_dict(self, obj: Any, model: str) -> Any:
        to_dict = getattr(obj, "to_dict", None)
        if to_dict is None:  # the SDK hands back text when the reply is not JSON
            raise MalformedResponseError(
                f"the reply is not JSON: {snippet(str(obj), self.secrets)!r}",
                provider=self.provider_name or None,
                model=model,
            )
        return to_dict()

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """One non-streamed call through ``chat.completions.create``."""
        client = self._sdk_client()
        kwargs = self._create_kwargs(request, stream=False)
        with self._sdk_errors(request.model):
            completion = await client.chat.completions.create(**kwargs)
            body = self._as_dict(completion, request.model)
        found = self.body_error(body)
        if found is not None:
            raise self.error_in_body(*found, request, "the reply")
        if not isinstance(body, dict):
            raise self.malformed(f"the reply is a JSON {type(body).__name__}", request)
        return self._decode(reply_events(self, body, request), request, body)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream events, then one StreamEnd.

        The SDK swallows ``data: [DONE]``: a stream that ends with no ``finish_reason``
        raises ProviderConnectionError.
        """
        client = self._sdk_client()
        kwargs = self._create_kwargs(request, stream=True)
        decoder = OpenAIStream(self, request)
        with self._sdk_errors(request.model):
            stream = await client.chat.completions.create(**kwargs)
            try:
                async for chunk in stream:
                    for event in decoder.feed_chunk(self._as_dict(chunk, request.model)):
                        yield event
            finally:
                await stream.close()
        if not decoder.finished:
            raise ProviderConnectionError(
                "the stream ended without a finish reason: the connection was cut short; "
                "the answer may be incomplete",
                provider=self.provider_name or None,
                model=request.model,
            )
        for event in decoder.finish():
            yield event


def _scrubbed(exc: Exception, secrets: tuple[str | None, ...]) -> Exception:
    """The SDK's exception, kept as the cause, with the key taken out of its text and body.

    Its message quotes the reply body, which may echo the key; every traceback of ours
    prints it as the cause.
    """
    exc.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
    for name in ("message", "body"):
        value = getattr(exc, name, None)
        if value is not None:
            with suppress(AttributeError, RecursionError):
                setattr(exc, name, redact(value, secrets=[s for s in secrets if s]))
    return exc


def _describe(exc: BaseException, what: str) -> str:
    """``what`` plus the transport error underneath the SDK's generic message."""
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return what
    detail = str(cause)
    return f"{what}: {type(cause).__name__}" + (f": {detail}" if detail else "")
