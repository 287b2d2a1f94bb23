"""The usage ledger: totals per model (calls, errors, tokens by kind, cost), resettable.

``rt.usage`` is the runtime's ledger. ``totals()`` returns a snapshot (a dict of model id to
``ModelTotals``); ``reset()`` starts again. Safe from several threads and tasks: updates
hold a lock for a few field additions, never across an await.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .pricing import PriceBook, cost_of

__all__ = ["ModelTotals", "UsageLedger"]


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """What one model used so far. ``cost`` sums the calls whose cost was known
    (``priced_calls`` of ``calls``); None when no call's cost was known."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    priced_calls: int = 0


_NONE_YET = ModelTotals()


class UsageLedger:
    """Totals per model; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, ModelTotals] = {}
        #: Calls whose price waits for genai-prices to load: priced by totals().
        self._pending: list[tuple[str, Callable[[], Any]]] = []

    def record(self, completion: Any, card: Any = None) -> None:
        """Add one successful call's usage, and its cost when its rate card is known.

        ``card`` is the model's rate card (or None, or ``PriceBook.PENDING`` while the price
        table loads: the cost is then added by the next ``totals()``).
        """
        usage = completion.usage
        if card is PriceBook.PENDING:
            cost = None
            with self._lock:
                self._pending.append((completion.model, lambda: completion.cost))
        else:
            cost = cost_of(card, usage)
        with self._lock:
            t = self._totals.get(completion.model) or _NONE_YET
            # Built whole (not dataclasses.replace, which costs several times as much).
            self._totals[completion.model] = ModelTotals(
                t.calls + 1,
                t.errors,
                t.prompt_tokens + (usage.prompt_tokens or 0),
                t.completion_tokens + (usage.completion_tokens or 0),
                t.cached_tokens + (usage.cached_tokens or 0),
                t.cache_write_tokens + (usage.cache_write_tokens or 0),
                t.reasoning_tokens + (usage.reasoning_tokens or 0),
                (t.cost or Decimal(0)) + cost.amount if cost is not None else t.cost,
                t.priced_calls + (cost is not None),
            )

    def record_error(self, model: str) -> None:
        """Count one call of ``model`` that failed for good."""
        with self._lock:
            t = self._totals.get(model) or ModelTotals()
            self._totals[model] = replace(t, errors=t.errors + 1)

    def totals(self) -> dict[str, ModelTotals]:
        """A snapshot: model id -> totals (waits for the price table if calls await it)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for model, price in pending:
            cost = price()  # may load genai-prices: here, never in a call
            if cost is None:
                continue
            with self._lock:
                t = self._totals.get(model) or ModelTotals()
                self._totals[model] = replace(
                    t, cost=(t.cost or Decimal(0)) + cost.amount, priced_calls=t.priced_calls + 1
                )
        with self._lock:
            return dict(self._totals)

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()
            self._pending.clear()
