"""Per-call policies resolved from YAML: retry/backoff decisions, time limits and rate limits."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel

from .config import LimitsConfig, ModelConfig, RetryConfig, TimeoutConfig
from .errors import (
    LLMRuntimeError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
)
from .providers.base import LLMProvider
from .redact import scrub
from .types import ChatRequest, StreamEnd, TextDelta

__all__ = [
    "Limiter",
    "backoff_delay",
    "foreign_error",
    "guarded",
    "hold_slots",
    "merge_layers",
    "timed_events",
    "with_timeouts",
]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


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
    # Grown step by step and capped at each step: float ** raises OverflowError.
    ceiling = min(policy.max_backoff, policy.initial_backoff)
    for _ in range(attempt - 1):
        ceiling = min(policy.max_backoff, ceiling * policy.multiplier)
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


def with_timeouts(request: ChatRequest, timeouts: TimeoutConfig) -> ChatRequest:

    return replace(request, connect_timeout=timeouts.connect, read_timeout=timeouts.read)


class hold_slots:
    """Hold a slot in each limiter, in order; release all on exit or cancellation."""

    def __init__(self, limiters: list[Limiter]) -> None:
        self._limiters = limiters
        self._held: list[Any] = []

    async def __aenter__(self) -> None:
        try:
            for limiter in self._limiters:
                cm = limiter.slot()
                await cm.__aenter__()
                self._held.append(cm)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        while self._held:
            await self._held.pop().__aexit__(None, None, None)


async def guarded(
    awaitable: Awaitable[T],
    limit: float | None,
    expired: Callable[[float], str],
    *,
    provider: LLMProvider,
    provider_name: str,
    model: str,
) -> T:
    """Await a provider's ``awaitable`` within ``limit`` seconds; every failure becomes ours.

    Our deadline raises ProviderTimeoutError with ``expired(limit)``; a TimeoutError of the
    provider's own is not blamed on our limit; any foreign exception is wrapped, key scrubbed.
    StopAsyncIteration passes through (the end of a stream is the caller's to judge).
    """
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError as exc:
        if limit is not None and deadline.expired():
            raise ProviderTimeoutError(
                expired(limit), provider=provider_name, model=model
            ) from None
        raise ProviderTimeoutError(  # the provider's own client gave up
            foreign_error(exc, provider_name, model, provider.api_key).message,
            provider=provider_name,
            model=model,
        ) from exc
    except (LLMRuntimeError, StopAsyncIteration):
        raise
    except Exception as exc:
        raise foreign_error(exc, provider_name, model, provider.api_key) from exc


async def timed_events(
    provider: LLMProvider,
    request: ChatRequest,
    cfg: ModelConfig,
    timeouts: TimeoutConfig,
    *,
    streaming: bool,
    provider_name: str,
) -> AsyncGenerator[TextDelta | StreamEnd, None]:
    """The provider's events under the first-token, idle-gap and total time limits."""
    source = (
        provider.stream_chat(request) if streaming else LLMProvider.stream_chat(provider, request)
    )
    clock = asyncio.get_running_loop().time  # real time: asyncio.timeout counts it too
    start = clock()
    first = True
    try:
        while True:
            limit, expired = _next_limit(timeouts, first, clock() - start)
            try:
                event = await guarded(
                    source.__anext__(),
                    limit,
                    expired,
                    provider=provider,
                    provider_name=provider_name,
                    model=cfg.id,
                )
            except StopAsyncIteration:
                raise MalformedResponseError(
                    "the stream ended without a final event",
                    provider=provider_name,
                    model=cfg.id,
                ) from None
            if isinstance(event, TextDelta):
                first = False
                yield event
            elif isinstance(event, StreamEnd):
                yield event
                return
            else:
                raise ProviderError(
                    f"stream_chat yielded {type(event).__name__}, not TextDelta or StreamEnd",
                    provider=provider_name,
                    model=cfg.id,
                )
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _next_limit(
    timeouts: TimeoutConfig, first: bool, elapsed: float
) -> tuple[float | None, Callable[[float], str]]:
    """Seconds the next stream event may take, and the message naming the limit that binds.

    The gap limit (``first_token`` before the first text, ``idle`` after) and what is left
    of ``total`` both apply; whichever ends first is the one a timeout is reported as.
    """
    gap = timeouts.first_token if first else timeouts.idle
    name = "first_token" if first else "idle"
    what = "first token" if first else "next chunk"
    left = None if timeouts.total is None else max(0.0, timeouts.total - elapsed)
    if left is not None and (gap is None or left <= gap):
        total = timeouts.total
        return (
            left,
            lambda _: f"stream: the total time limit of {total:g}s was exceeded (timeouts.total)",
        )
    return gap, lambda limit: f"stream: no {what} within {limit:g}s (timeouts.{name})"


def foreign_error(exc: Exception, provider: str, model: str, api_key: str | None) -> ProviderError:
    """Wrap an exception a provider let escape, with any key scrubbed from its text."""
    text = scrub(str(exc), (api_key,))
    # The original stays chained as __cause__ (its type and traceback help): scrub its text
    # too, or every traceback of the wrapper prints the key again.
    exc.args = tuple(scrub(a, (api_key,)) if isinstance(a, str) else a for a in exc.args)
    return ProviderError(
        f"the provider raised {type(exc).__name__}: {text}", provider=provider, model=model
    )
