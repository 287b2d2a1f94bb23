"""Client-side limits: concurrency and requests per minute, enforced without polling."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from ..config import LimitsConfig

__all__ = ["Limiter", "hold_slots"]


class _RateWindow:
    """At most ``limit`` starts in any sliding window of ``period`` seconds."""

    def __init__(
        self,
        limit: int,
        period: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
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
                await self._sleep(self._period - (now - self._starts[0]))


class Limiter:
    """Concurrency and requests-per-minute limits of one provider or model."""

    def __init__(
        self,
        config: LimitsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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


@asynccontextmanager
async def hold_slots(limiters: Sequence[Limiter]) -> AsyncIterator[None]:
    """Hold a slot in each limiter, in order; all are released on exit or cancellation."""
    async with AsyncExitStack() as stack:
        for limiter in limiters:
            await stack.enter_async_context(limiter.slot())
        yield
