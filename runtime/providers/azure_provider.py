"""Azure OpenAI: the OpenAI Chat Completions protocol at deployment URLs, keyed by ``api-key``.

Only the route and the auth header differ from ``OpenAIProvider``; bodies, replies, streams
and errors are the OpenAI protocol's.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from pydantic import Field, field_validator

from ..types import ChatRequest
from .openai_provider import OpenAIOptions, OpenAIProvider
from .wire import Route, WireOptions

__all__ = ["DEFAULT_AZURE_API_VERSION", "AzureOpenAIOptions", "AzureOpenAIProvider"]

#: The newest generally available dated data-plane version of the Azure OpenAI
#: inference API when this was written; override it with the ``api_version`` option.
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIOptions(OpenAIOptions):
    """Options of Azure OpenAI: the OpenAI ones and ``api_version``."""

    api_version: str = Field(
        DEFAULT_AZURE_API_VERSION,
        description="The data-plane API version, e.g. 2024-10-21; 'v1' selects the v1 API.",
    )

    @field_validator("api_version")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"must be a non-empty string, e.g. {DEFAULT_AZURE_API_VERSION!r} or 'v1'"
            )
        return value.strip()


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI Chat Completions.

    ``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``) and
    ``ChatRequest.model`` (the model's ``provider_model``) is the deployment name. Calls go
    to ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`` with
    an ``api-key`` header.

    Options: ``api_version`` (default ``DEFAULT_AZURE_API_VERSION``). The value ``v1``
    selects Azure's v1 API instead: ``{endpoint}/openai/v1/chat/completions`` with no
    ``api-version`` query and the deployment name as ``model`` in the body. Every
    ``OpenAIProvider`` option applies too (``organization``/``project`` are sent as given,
    though Azure ignores them).
    """

    Options: ClassVar[type[WireOptions]] = AzureOpenAIOptions
    secret_headers: ClassVar[frozenset[str]] = frozenset({"api-key"})
    default_base_url: ClassVar[str | None] = None
    base_url_hint: ClassVar[str] = "the resource endpoint (https://NAME.openai.azure.com)"

    options: AzureOpenAIOptions

    def setup(self) -> None:
        if self.base_url and self.base_url.rstrip("/").endswith("/openai"):
            # Tolerate the endpoint given with the /openai suffix some portals show.
            self.base_url = self.base_url.rstrip("/")[: -len("/openai")]

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        headers.pop("authorization", None)
        if self.api_key:
            headers["api-key"] = self.api_key
        return headers

    def route(self, request: ChatRequest, stream: bool) -> Route:
        if self.options.api_version == "v1":
            return Route("/openai/v1/chat/completions")
        deployment = quote(request.model, safe="")
        return Route(
            f"/openai/deployments/{deployment}/chat/completions",
            {"api-version": self.options.api_version},
        )
