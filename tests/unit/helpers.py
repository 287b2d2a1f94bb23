"""Builders shared by the unit tests: catalogs made in code and a seed-style provider."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.config import Catalog, ModelConfig, ProviderConfig, RuntimeSettings
from runtime.engine.resolve import Timing
from runtime.providers.base import LLMProvider
from runtime.service import LLMRuntime

SCRIPTED = "runtime.testing.ScriptedProvider"


def provider(name: str, cls: str = SCRIPTED, **fields: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": name, "class": cls, **fields})


def catalog(
    models: dict[str, dict[str, Any]],
    providers: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
) -> Catalog:
    providers = providers if providers is not None else {"s": {}}
    return Catalog(
        providers={name: provider(name, **fields) for name, fields in providers.items()},
        models={mid: ModelConfig(id=mid, **fields) for mid, fields in models.items()},
        settings=RuntimeSettings.model_validate(settings or {}),
    )


class FakeClock:
    """A clock that only moves when the runtime sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def runtime_for(cat: Catalog, clock: FakeClock | None = None, **kwargs: Any) -> LLMRuntime:
    clock = clock or FakeClock()
    timing = Timing(sleep=clock.sleep, clock=clock, rand=lambda: 0.5)
    return LLMRuntime(cat, _timing=timing, **kwargs)


class YourProvider(LLMProvider):
    """The seed README's example provider, verbatim in shape: positional args, returns str."""

    def _initialize_client(self, **kwargs: Any) -> None:
        self._client = {"options": kwargs}
        self.calls: list[dict[str, Any]] = []

    async def completion(
        self, prompt: str, model: str, temperature: float, max_tokens: int, **kwargs: Any
    ) -> str:
        self.calls.append(
            {
                "prompt": prompt,
                "model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "kwargs": kwargs,
                "api_key": self.api_key,
                "base_url": self.base_url,
            }
        )
        return f"{model} says: {prompt}"
