"""What a call cost: usage x a rate card from models.yaml ``pricing:`` or from genai-prices.

A model's ``pricing: {input, output, cached_input, cache_write, as_of}`` (US dollars per
million tokens) wins when present; otherwise the rate card comes from ``genai-prices``
(pydantic's maintained price table, the ``prices`` extra), looked up once per model by its
vendor model name and the provider's base URL, and imported in a background thread the
first time a price is needed, so no call waits for it.

The cost is ``None`` whenever it cannot be known honestly: no rate card, a usage count
missing, cached or cache-write tokens without their price. It is never 0 for "unknown" and
never raises. ``Usage.prompt_tokens`` is the whole prompt: cache reads and cache writes are
part of it and priced at their own rates, never counted twice; reasoning tokens are part of
``completion_tokens`` and priced as output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .types import Usage

__all__ = ["Cost", "PriceBook", "RateCard", "cost_of"]

log = logging.getLogger("runtime")

MILLION = Decimal(1_000_000)
#: A price per million tokens, or tiers: [(threshold of prompt tokens, price)] over a base.
Rate = Decimal | tuple[Decimal, tuple[tuple[int, Decimal], ...]]


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one call: ``amount`` in ``currency``, and where the prices came from."""

    amount: Decimal
    currency: str
    source: Literal["yaml", "genai-prices"]
    as_of: str | None = None  # the date the prices are from (YAML as_of, or the table's)

    def __str__(self) -> str:
        return f"${self.amount:.6f} ({self.source}{f', {self.as_of}' if self.as_of else ''})"


@dataclass(frozen=True, slots=True)
class RateCard:
    """Prices per million tokens of one model; None where the price is not known."""

    input: Rate
    output: Rate
    cached_input: Rate | None
    cache_write: Rate | None
    source: Literal["yaml", "genai-prices"]
    as_of: str | None = None


def _rate(rate: Rate, prompt_tokens: int) -> Decimal:
    if isinstance(rate, Decimal):
        return rate
    base, tiers = rate
    price = base
    for start, tier_price in tiers:  # a cliff: past a threshold, every token pays the tier
        if prompt_tokens > start:
            price = tier_price
    return price


def cost_of(card: RateCard | None, usage: Usage) -> Cost | None:
    """``usage`` priced by ``card``, or None when it cannot be known."""
    if card is None or usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    prompt = usage.prompt_tokens
    cached = usage.cached_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = prompt - cached - written
    if fresh < 0:
        return None  # counts that contradict each other: no honest figure
    if (cached and card.cached_input is None) or (written and card.cache_write is None):
        return None
    amount = fresh * _rate(card.input, prompt) + usage.completion_tokens * _rate(
        card.output, prompt
    )
    if cached:
        assert card.cached_input is not None
        amount += cached * _rate(card.cached_input, prompt)
    if written:
        assert card.cache_write is not None
        amount += written * _rate(card.cache_write, prompt)
    return Cost(amount / MILLION, "USD", card.source, card.as_of)


def yaml_card(pricing: Any) -> RateCard:
    """The rate card of a model's ``pricing:`` (a runtime.config.PricingConfig)."""

    def dec(value: float | None) -> Decimal | None:
        return Decimal(str(value)) if value is not None else None

    return RateCard(
        input=Decimal(str(pricing.input)),
        output=Decimal(str(pricing.output)),
        cached_input=dec(pricing.cached_input),
        cache_write=dec(pricing.cache_write),
        source="yaml",
        as_of=pricing.as_of,
    )


class PriceBook:
    """Rate cards by model, from YAML at once or from genai-prices once it is loaded.

    ``card(...)`` never blocks: while genai-prices loads in its thread it answers
    ``PENDING``; ``wait()`` waits for the load (the ledger's totals do).
    """

    PENDING: Any = object()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cards: dict[tuple[str, str | None], RateCard | None] = {}
        self._loader: threading.Thread | None = None
        self._table: Any = None  # the genai-prices snapshot, once loaded
        self._failed = False

    def card(
        self, pricing: Any, model_ref: str, base_url: str | None, *, block: bool = False
    ) -> RateCard | Any | None:
        """The rate card of a model: its YAML ``pricing``, else genai-prices' (or PENDING)."""
        if pricing is not None:
            return yaml_card(pricing)
        key = (model_ref, base_url)
        with self._lock:
            if key in self._cards:
                return self._cards[key]
        if self._table is None:
            if self._failed:
                return None
            self._start()
            if not block:
                return self.PENDING
            self.wait()
            if self._table is None:
                return None
        card = self._lookup(model_ref, base_url)
        with self._lock:
            self._cards[key] = card
        return card

    def _start(self) -> None:
        with self._lock:
            if self._loader is None:
                self._loader = threading.Thread(
                    target=self._load, name="llm-runtime-prices", daemon=True
                )
                self._loader.start()

    def _load(self) -> None:
        try:
            from genai_prices import data_snapshot
        except ImportError:
            log.debug("genai-prices is not installed: costs without a YAML price are None")
            self._failed = True
            return
        except Exception as exc:  # a broken install must not break calls
            log.warning("genai-prices failed to load (%s): costs are None", type(exc).__name__)
            self._failed = True
            return
        self._table = data_snapshot.get_snapshot()

    def wait(self, timeout: float = 30.0) -> None:
        loader = self._loader
        if loader is not None:
            loader.join(timeout)

    def _lookup(self, model_ref: str, base_url: str | None) -> RateCard | None:
        import datetime

        try:
            _, model = self._table.find_provider_model(model_ref, None, None, base_url)
            prices = model.get_prices(datetime.datetime.now(datetime.UTC))
        except Exception:  # unknown model or provider: no price, no error
            return None
        try:
            from genai_prices import __version__ as version
        except ImportError:  # pragma: no cover - loaded above
            version = "?"

        def rate(value: Any) -> Rate | None:
            if value is None:
                return None
            if isinstance(value, Decimal):
                return value
            tiers = tuple((int(t.start), Decimal(t.price)) for t in value.tiers)
            return (Decimal(value.base), tiers)

        card_input, card_output = rate(prices.input_mtok), rate(prices.output_mtok)
        if card_input is None or card_output is None:
            return None
        return RateCard(
            input=card_input,
            output=card_output,
            cached_input=rate(getattr(prices, "cache_read_mtok", None)),
            cache_write=rate(getattr(prices, "cache_write_mtok", None)),
            source="genai-prices",
            as_of=f"genai-prices {version}",
        )


def describe(card: RateCard | None) -> Mapping[str, Any] | None:
    """A rate card as JSON-ready data (for ``llm-runtime models``)."""
    if card is None:
        return None

    def show(rate: Rate | None) -> Any:
        if rate is None or isinstance(rate, Decimal):
            return None if rate is None else float(rate)
        return {"base": float(rate[0]), "tiers": [[s, float(p)] for s, p in rate[1]]}

    return {
        "source": card.source,
        "as_of": card.as_of,
        "input": show(card.input),
        "output": show(card.output),
        "cached_input": show(card.cached_input),
        "cache_write": show(card.cache_write),
    }
