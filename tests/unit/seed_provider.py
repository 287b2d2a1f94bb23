"""A user's provider module, written exactly as the seed README shows, with a fake client.

The acceptance test copies this file out of the package into a temporary directory and
imports it from there (``class: <module>.YourProvider`` in a user providers.yaml), so it is
loaded as a user module would be. ``YourClient`` stands in for a vendor SDK: it records how
it was built and every call, and answers with an object that has ``.text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The seed's example verbatim, below: its long lines stay as the README wrote them.
# ruff: noqa: E501
from runtime.providers.base import LLMProvider


@dataclass(frozen=True)
class YourResponse:
    """What the fake vendor client returns."""

    text: str


class YourClient:
    """A fake vendor SDK client: records its construction and calls; no network."""

    def __init__(self, **kwargs: Any) -> None:
        self.init_kwargs = kwargs
        self.calls: list[dict[str, Any]] = []
        self.closed = False

    async def generate(self, **kwargs: Any) -> YourResponse:
        self.calls.append(kwargs)
        return YourResponse(text=f"{kwargs['model']}: {kwargs['prompt']}")

    def close(self) -> None:
        self.closed = True


# fmt: off
class YourProvider(LLMProvider):
    def _initialize_client(self, **kwargs):
        self._client = YourClient(api_key=self.api_key, base_url=self.base_url, **kwargs)

    async def completion(self, prompt: str, model: str, temperature: float, max_tokens: int, **kwargs) -> str:
        response = await self._client.generate(prompt=prompt, model=model, temperature=temperature, max_tokens=max_tokens, **kwargs)
        return response.text
# fmt: on
