"""The usage ledger: totals per model (calls, errors, tokens by kind, cost), resettable.

``rt.usage`` is the runtime's ledger. ``totals()`` returns a snapshot (a dict of model id to
``ModelTotals``); ``reset()`` starts again. Safe from several threads and tasks: updates
hold a lock for a few field additions, never across an await.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .pricing import Cost, PriceBook, cost_of

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


class _Running:
    """One model's totals as they grow (made into a ``ModelTotals`` by ``totals()``)."""

    __slots__ = (
        "cache_write_tokens",
        "cached_tokens",
        "calls",
        "completion_tokens",
        "cost",
        "errors",
        "priced_calls",
        "prompt_tokens",
        "reasoning_tokens",
    )

    def __init__(self) -> None:
        self.calls = self.errors = self.priced_calls = 0
        self.prompt_tokens = self.completion_tokens = self.cached_tokens = 0
        self.cache_write_tokens = self.reasoning_tokens = 0
        self.cost: Decimal | None = None

    def priced(self, amount: Decimal) -> None:
        self.cost = (self.cost or Decimal(0)) + amount
        self.priced_calls += 1

    def frozen(self) -> ModelTotals:
        return ModelTotals(
            self.calls,
            self.errors,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost,
            self.priced_calls,
        )


class UsageLedger:
    """Totals per model; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Updated in place under the lock (a frozen ModelTotals per call cost more than the
        # rest of the bookkeeping); totals() hands out frozen snapshots.
        self._totals: dict[str, _Running] = {}
        #: Calls whose price waits for genai-prices to load: priced by totals().
        self._pending: list[tuple[str, Callable[[], Any]]] = []

    def _running(self, model: str) -> _Running:
        running = self._totals.get(model)
        if running is None:
            running = self._totals[model] = _Running()
        return running

    def record(self, completion: Any, card: Any = None) -> Cost | None:
        """Add one successful call's usage, and its cost when its rate card is known.

        ``card`` is the model's rate card (or None, or ``PriceBook.PENDING`` while the price
        table loads: the cost is then added by the next ``totals()``). Returns the cost
        counted now (None when unknown or still pending).
        """
        usage = completion.usage
        if card is PriceBook.PENDING:
            cost = None
            with self._lock:
                self._pending.append((completion.model, lambda: completion.cost))
        else:
            cost = cost_of(card, usage) if card is not None else None
        with self._lock:
            t = self._running(completion.model)
            t.calls += 1
            t.prompt_tokens += usage.prompt_tokens or 0
            t.completion_tokens += usage.completion_tokens or 0
            t.cached_tokens += usage.cached_tokens or 0
            t.cache_write_tokens += usage.cache_write_tokens or 0
            t.reasoning_tokens += usage.reasoning_tokens or 0
            if cost is not None:
                t.priced(cost.amount)
        return cost

    def record_error(self, model: str) -> None:
        """Count one call of ``model`` that failed for good."""
        with self._lock:
            self._running(model).errors += 1

    def totals(self) -> dict[str, ModelTotals]:
        """A snapshot: model id -> totals (waits for the price table if calls await it)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for model, price in pending:
            cost = price()  # may load genai-prices: here, never in a call
            if cost is None:
                continue
            with self._lock:
                self._running(model).priced(cost.amount)
        with self._lock:
            return {model: running.frozen() for model, running in self._totals.items()}

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()
            self._pending.clear()
