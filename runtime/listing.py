"""What ``llm-runtime models`` says about a model: what it supports and where its price is from.

``supports`` combines two sources, the stricter winning: the model's ``capabilities:`` in
models.yaml, and what its provider class can send at all (``features`` and
``content_kinds``: a class without ``"tools"`` makes tools impossible whatever the YAML
says). ``None`` means undeclared: the runtime sends the request and the vendor accepts or
refuses it. Only registered classes and the runtime's own are imported to read them (a few
ms, no SDK); a user's class is left unimported, as at load.

``price_source`` is ``yaml`` (the model's ``pricing:``), ``genai-prices`` (no ``pricing:``
and the ``prices`` extra has this model; its table is loaded once, about 0.2 s) or ``none``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any, Literal

from .config import ModelConfig, ProviderConfig
from .pricing import PriceBook, RateCard, describe, yaml_card
from .providers import registry

__all__ = [
    "PriceSource",
    "genai_prices_installed",
    "price_card",
    "price_data",
    "price_source",
    "provider_class",
    "supports",
]

PriceSource = Literal["yaml", "genai-prices", "none"]


def provider_class(config: ProviderConfig, near: tuple[str, ...] = ()) -> type[Any] | None:
    """The provider's class when it is registered or the runtime's own, else None."""
    registered = registry.registered_providers().get(config.name)
    if registered is not None:
        return registered
    if not config.class_path.startswith("runtime."):
        return None
    try:
        return registry.import_provider_class(config.class_path, near=near)
    except registry.ProviderImportError:
        return None


def supports(model: ModelConfig, cls: type[Any] | None) -> dict[str, Any]:
    """tools, parallel_tool_calls, images, structured_output, reasoning: declared or implied."""
    caps = model.capabilities
    features: frozenset[str] | None = getattr(cls, "features", None)
    kinds: frozenset[str] | None = getattr(cls, "content_kinds", None)

    def flag(declared: bool | None, possible: bool) -> bool | None:
        return False if declared is False or not possible else declared

    def mode(declared: str | None, feature: str) -> str | None:
        return "none" if features is not None and feature not in features else declared

    tools = flag(caps.tools, features is None or "tools" in features)
    return {
        "tools": tools,
        "parallel_tool_calls": flag(caps.parallel_tool_calls, tools is not False),
        "images": flag(caps.images, kinds is None or "image" in kinds),
        "structured_output": mode(caps.structured_output, "structured_output"),
        "reasoning": mode(caps.reasoning, "reasoning"),
    }


def genai_prices_installed() -> bool:
    """Whether the ``prices`` extra is there (looked up, not imported)."""
    return importlib.util.find_spec("genai_prices") is not None


def price_card(
    model: ModelConfig,
    provider: ProviderConfig,
    cls: type[Any] | None,
    book: PriceBook | None,
) -> RateCard | None:
    """The model's rate card: its ``pricing:``, else genai-prices' (``book``; None: absent)."""
    if model.pricing is not None:
        return yaml_card(model.pricing)
    if book is None:
        return None
    base_url = (
        (os.environ.get(provider.base_url_env) if provider.base_url_env else None)
        or provider.base_url
        or getattr(cls, "default_base_url", None)
    )
    card = book.card(None, model.provider_model or model.id, base_url, block=True)
    return card if isinstance(card, RateCard) else None


def price_source(card: RateCard | None) -> PriceSource:
    """``yaml``, ``genai-prices`` or ``none``."""
    return card.source if card is not None else "none"


def price_data(card: RateCard | None) -> Mapping[str, Any] | None:
    """The rate card as JSON-ready data (None without one)."""
    return describe(card)
