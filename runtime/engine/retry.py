"""Retry and fallback decisions as values: small pure functions the call loop asks.

``decide_retry`` says "retry in N seconds" (``RetryIn``) or "give up, because ..."
(``GiveUp``); ``decide_fallback`` says whether the next model of a chain is tried, skipped or
the chain stops. Neither raises, sleeps or mutates anything: tests call them directly.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ModelConfig, RetryConfig
from ..errors import (
    ContextLengthExceededError,
    LLMRuntimeError,
    MissingAPIKeyError,
    ProviderError,
    RateLimitError,
)

__all__ = ["GiveUp", "Next", "RetryIn", "backoff_delay", "decide_fallback", "decide_retry"]


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Try the same model again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Do not retry this model; ``why`` is said in the log."""

    why: str


class Next(enum.Enum):
    """What to do with the next model of a fallback chain after a failure."""

    TRY = "try"  # call it
    SKIP = "skip"  # pass over it (e.g. its context window is not larger)
    STOP = "stop"  # raise: no fallback helps with this failure


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
    hint = error.retry_after
    if hint is not None:
        return float(hint) if hint <= policy.max_retry_after else None
    # Grown step by step and capped at each step: float ** raises OverflowError.
    ceiling = min(policy.max_backoff, policy.initial_backoff)
    for _ in range(attempt - 1):
        ceiling = min(policy.max_backoff, ceiling * policy.multiplier)
    return ceiling * rand()


def decide_retry(
    policy: RetryConfig,
    attempt: int,
    error: ProviderError,
    waited: float,
    *,
    delivered: bool = False,
    rand: Callable[[], float] = random.random,
) -> RetryIn | GiveUp:
    """Whether attempt ``attempt + 1`` of the same model follows ``error``, and when.

    ``waited`` is what this call has slept so far (the budget spans the fallbacks too);
    ``delivered``: text already reached the caller, so nothing may be sent again.
    """
    if delivered:
        return GiveUp("output was already delivered to the caller")
    if not error.retryable:
        return GiveUp("not retryable")
    if attempt >= policy.max_attempts:
        return GiveUp(f"{policy.max_attempts} attempts made")
    delay = backoff_delay(policy, attempt, error, rand=rand)
    if delay is None:
        return GiveUp(
            f"the server asked to wait {error.retry_after:g}s, more than max_retry_after "
            f"({policy.max_retry_after:g}s)"
        )
    if waited + delay > policy.total_wait_budget:
        return GiveUp(f"the wait budget of {policy.total_wait_budget:g}s would be exceeded")
    return RetryIn(delay)


def decide_fallback(
    error: LLMRuntimeError, failed: ModelConfig, candidate: ModelConfig, *, delivered: bool
) -> Next:
    """Whether ``candidate`` may answer after ``failed`` raised ``error``.

    Retryable failures that survived their retries, rate limits (an exhausted quota too:
    another model may have quota left) and a missing API key fall back; a context-length
    error skips to the next model with a larger ``context_window``; output already delivered,
    or any other error, stops the chain.
    """
    if delivered:
        return Next.STOP
    if isinstance(error, ContextLengthExceededError):
        larger = (candidate.context_window or 0) > (failed.context_window or 0)
        return Next.TRY if larger else Next.SKIP
    if (isinstance(error, ProviderError) and error.retryable) or isinstance(
        error, MissingAPIKeyError | RateLimitError
    ):
        return Next.TRY
    return Next.STOP
