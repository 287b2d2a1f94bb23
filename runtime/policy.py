"""Per-call policies resolved from YAML: retry/backoff decisions, time limits and rate limits."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from pydantic import BaseModel

from .config import LimitsConfig, RetryConfig
from .errors import ProviderError

__all__ = ["Limiter", "backoff_delay", "merge_layers"]

M = TypeVar("M", bound=BaseModel)


def merge_layers(cls: type[M], *layers: M | None) -> M:
    """Merge config layers field by field: a later layer wins only where it set a field."""
    values: dict[str, object] = {}
    for layer in layers:
        if layer is not None:
            values.update({name: getattr(layer, name) for name in layer.model_fields_set})
    return cls(**values)


def backoff_delay(
    policy: RetryConfig,
    attempt: int,
    error: ProviderError,
    *,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the server asks for too long.

    ``attempt`` is the number of the attempt that just failed (1-based). A server hint
    (``retry_after``, read afresh from each failure) is honoured as given, up to
    ``max_retry_after``; otherwise exponential backoff with full jitter.
    """
    hint = getattr(error, "retry_after", None)
    if hint is not None:
        return float(hint) if hint <= policy.max_retry_after else None
    ceiling = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (attempt - 1))
    return ceiling * rand()


class _RateWindow:
    """At most ``limit`` starts in any sliding window of ``period`` seconds."""

    def __init__(
        self,
        limit: int,
        period: float,
        clock: Callable[[], float],
        sleep: Callable[[float], object],
    ) -> None:
        self._limit = limit
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        # The lock keeps waiters in order; the sleep is exactly until the oldest start leaves
        # the window, so nobody polls.
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self._period:
                    self._starts.popleft()
                if len(self._starts) < self._limit:
                    self._starts.append(now)
                    return
                await self._sleep(self._period - (now - self._starts[0]))  # type: ignore[misc]


class Limiter:
    """Concurrency and requests-per-minute limits of one provider or model."""

    def __init__(
        self,
        config: LimitsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._semaphore = (
            asyncio.Semaphore(config.max_concurrency) if config.max_concurrency else None
        )
        self._window = (
            _RateWindow(config.requests_per_minute, 60.0, clock, sleep)
            if config.requests_per_minute
            else None
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot; cancellation while waiting or running releases it."""
        if self._semaphore is not None:
            await self._semaphore.acquire()
        try:
            if self._window is not None:
                await self._window.acquire()
            yield
        finally:
            if self._semaphore is not None:
                self._semaphore.release()

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now (0 when there is no concurrency limit)."""
        if self._semaphore is None or self.config.max_concurrency is None:
            return 0
        return self.config.max_concurrency - self._semaphore._value
