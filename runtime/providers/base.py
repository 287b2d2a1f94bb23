"""The provider contract: ``LLMProvider`` (the seed's interface) and its richer optional methods.

A provider written to the seed's contract implements ``_initialize_client`` and
``completion(prompt, model, temperature, max_tokens, **kwargs) -> str`` and nothing else;
the base class derives ``chat`` (one call, text only) and ``stream_chat`` (a stream of one
chunk) from it. A richer provider subclasses ``ChatProvider`` and implements ``chat``
(messages, usage, finish reason) and, if it can stream, ``stream_chat``; ``completion`` is then
derived from ``chat``. The runtime only ever calls ``chat`` and ``stream_chat``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, MalformedResponseError
from ..types import ChatRequest, Message, ProviderResponse, StreamEnd, StreamEvent, TextDelta

if TYPE_CHECKING:
    from ..config import HTTPConfig

__all__ = ["ChatProvider", "LLMProvider", "reject_unknown_options"]


class LLMProvider(ABC):
    """Base class of every provider; the seed's interface, kept verbatim.

    ``__init__`` stores ``api_key`` and ``base_url``, sets ``self._client = None`` and calls
    ``_initialize_client(**kwargs)`` with the provider's ``options`` from providers.yaml.
    """

    #: The name this provider has in providers.yaml (set by the runtime; informational).
    provider_name: str = ""
    #: The HTTP engine chosen in providers.yaml (``http_engine``: "httpx2" or "aiohttp"; set
    #: by the runtime before ``configure_http``; None: the default). Providers that speak HTTP
    #: through the seam build their client on it; others may ignore it.
    http_engine: str | None = None
    #: The engines this class can send through (None: any); the loader refuses a provider
    #: that names another in its own ``http_engine``.
    http_engines: ClassVar[frozenset[str] | None] = None
    #: Whether ``stream_chat`` yields text as it arrives (False: derived, one chunk).
    streams_natively: ClassVar[bool] = False
    #: The content part types this provider can send (``runtime.types`` part ``type`` tags);
    #: the runtime refuses a request carrying any other before calling the provider.
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text"})
    #: What this class can send besides messages: "tools", "structured_output", "reasoning".
    features: ClassVar[frozenset[str]] = frozenset()
    # A class may declare ``Options`` (a pydantic model of its providers.yaml ``options:``)
    # and ``ModelOptions`` (of a model's ``options:``, None: it takes none); the loader then
    # checks them at load time with file:line:column (see runtime.options).

    def __init__(self, api_key: str | None = None, base_url: str | None = None, **kwargs: Any):
        self.api_key = api_key
        self.base_url = base_url
        self._client: Any = None
        self._initialize_client(**kwargs)

    def _initialize_client(self, **kwargs: Any) -> None:  # noqa: B027 - optional hook
        """Create ``self._client`` from the provider's options; the default does nothing."""

    def configure_http(self, config: HTTPConfig) -> None:  # noqa: B027 - optional hook
        """Take the merged ``http:`` settings (reply bounds, cookies); called once by the
        runtime right after construction. Providers that speak HTTP through the seam pass
        them to their ``HTTPClient``; the default ignores them.
        """

    @abstractmethod
    async def completion(
        self,
        prompt: str,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        **kwargs: Any,
    ) -> str:
        """Return the model's completion of ``prompt`` as text."""

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """Answer a chat request; derived here from ``completion`` (text only).

        ``max_tokens`` travels under the model's ``max_tokens_param``: when that is not
        ``max_tokens``, the value is passed as a keyword argument of that name and the
        positional ``max_tokens`` is None.
        """
        max_tokens, kwargs = _completion_args(request)
        text = await self.completion(
            request.as_prompt(), request.model, request.temperature, max_tokens, **kwargs
        )
        if not isinstance(text, str):
            raise MalformedResponseError(
                f"{type(self).__name__}.completion() returned {type(text).__name__}, not str",
                provider=self.provider_name or None,
                model=request.model,
            )
        return ProviderResponse(text=text)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then one ``StreamEnd``; derived here as a stream of one chunk."""
        response = await self.chat(request)
        if response.text:
            yield TextDelta(response.text)
        yield StreamEnd(response.finish_reason, response.usage, response.model)

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """What this provider would send for ``request``, without sending anything.

        Wire providers return ``{"method", "url", "headers", "json"}``; the default describes
        the ``completion()`` call the seed interface receives. Callers redact secrets.
        """
        max_tokens, kwargs = _completion_args(request)
        return {
            "call": f"{type(self).__name__}.completion",
            "args": {
                "prompt": request.as_prompt(),
                "model": request.model,
                "temperature": request.temperature,
                "max_tokens": max_tokens,
                **kwargs,
            },
        }

    async def aclose(self) -> None:
        """Release the client; closes ``self._client`` if it has ``aclose()`` or ``close()``."""
        client, self._client = self._client, None
        if client is None:
            return
        closer = getattr(client, "aclose", None) or getattr(client, "close", None)
        if closer is not None:
            result = closer()
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        return f"<{type(self).__name__} base_url={_shown_url(self.base_url)!r} api_key={key}>"


def _shown_url(url: str | None) -> str | None:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    if not isinstance(url, str) or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


def _completion_args(request: ChatRequest) -> tuple[int | None, dict[str, Any]]:
    """The seed call's ``max_tokens`` and keyword arguments, with the max-tokens rename."""
    kwargs = dict(request.params)
    max_tokens = request.max_tokens
    if max_tokens is not None and request.max_tokens_param != "max_tokens":
        kwargs[request.max_tokens_param] = max_tokens
        max_tokens = None
    return max_tokens, kwargs


class ChatProvider(LLMProvider):
    """A provider that speaks chat natively; ``completion`` is derived from ``chat``."""

    @abstractmethod
    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """Answer a chat request with text, finish reason and usage."""

    async def completion(
        self,
        prompt: str,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> str:
        request = ChatRequest(
            model=model,
            messages=(Message("user", prompt),),
            temperature=temperature,
            max_tokens=max_tokens,
            params=kwargs,
            prompt=prompt,
        )
        return (await self.chat(request)).text

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The ``chat``/``stream_chat`` call this provider receives (no wire format known)."""
        return {
            "call": f"{type(self).__name__}.{'stream_chat' if stream else 'chat'}",
            "args": {
                "model": request.model,
                "messages": [m.to_dict() for m in request.messages],
                "prompt": request.prompt,
                "temperature": request.temperature,
                request.max_tokens_param: request.max_tokens,
                **request.params,
            },
        }


def reject_unknown_options(owner: str, options: Iterable[str], known: Sequence[str]) -> None:
    """Raise ConfigError naming the first unknown option, with a 'did you mean'.

    ``owner`` starts the message (e.g. ``"AnthropicProvider"`` or ``"model 'x'"``).
    """
    from ..suggest import did_you_mean

    for name in sorted(set(options) - set(known)):
        hint = did_you_mean(name, known)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(
            f"{owner}: unknown option {name!r}{extra}; known options: {', '.join(known)}"
        )
