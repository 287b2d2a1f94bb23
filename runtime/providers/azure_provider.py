"""Azure OpenAI: the OpenAI Chat Completions protocol at deployment URLs, keyed by ``api-key``.

Only the route and the auth header differ from ``OpenAIProvider``; bodies, replies, streams
and errors are the OpenAI protocol's.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from ..errors import ConfigError
from ..types import ChatRequest
from .openai_provider import OpenAIProvider, _Route

__all__ = ["DEFAULT_AZURE_API_VERSION", "AzureOpenAIProvider"]

#: The newest generally available dated data-plane version of the Azure OpenAI
#: inference API when this was written; override it with the ``api_version`` option.
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI Chat Completions.

    ``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``) and
    ``ChatRequest.model`` (the model's ``provider_model``) is the deployment name. Calls go
    to ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`` with
    an ``api-key`` header.

    Options: ``api_version`` (default ``DEFAULT_AZURE_API_VERSION``). The value ``v1``
    selects Azure's v1 API instead: ``{endpoint}/openai/v1/chat/completions`` with no
    ``api-version`` query and the deployment name as ``model`` in the body. Every
    ``OpenAIProvider`` option applies too (``headers``, ``max_connections``,
    ``stream_usage``; ``organization``/``project`` are sent as given, though Azure
    ignores them).
    """

    secret_headers: ClassVar[frozenset[str]] = frozenset({"api-key"})
    default_base_url: ClassVar[str | None] = None
    base_url_hint: ClassVar[str] = "the resource endpoint (https://NAME.openai.azure.com)"

    _api_version: str

    def _take_own_options(self, options: dict[str, Any]) -> None:
        version = options.pop("api_version", DEFAULT_AZURE_API_VERSION)
        if not isinstance(version, str) or not version.strip():
            raise ConfigError(
                f"{type(self).__name__}: option 'api_version' must be a non-empty string, "
                f"e.g. {DEFAULT_AZURE_API_VERSION!r} or 'v1'"
            )
        self._api_version = version.strip()
        if self.base_url and self.base_url.rstrip("/").endswith("/openai"):
            # Tolerate the endpoint given with the /openai suffix some portals show.
            self.base_url = self.base_url.rstrip("/")[: -len("/openai")]

    def _known_options(self) -> tuple[str, ...]:
        return ("api_version", *super()._known_options())

    def _auth_headers(self) -> dict[str, str]:
        headers = super()._auth_headers()
        headers.pop("authorization", None)
        if self.api_key:
            headers["api-key"] = self.api_key
        return headers

    def _route(self, request: ChatRequest) -> _Route:
        if self._api_version == "v1":
            return _Route("/openai/v1/chat/completions", {})
        deployment = quote(request.model, safe="")
        return _Route(
            f"/openai/deployments/{deployment}/chat/completions",
            {"api-version": self._api_version},
        )
