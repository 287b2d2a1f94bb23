"""The events hooks receive (see ``runtime.hooks``): typed, frozen, credentials removed.

Their own module so that a runtime with no hook never builds these classes; import them
from ``runtime.hooks`` as always.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .hooks import HookKind

__all__ = [
    "ErrorEvent",
    "FallbackEvent",
    "HookEvent",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "StreamEndEvent",
]


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """An attempt is about to be sent."""

    call_id: int
    model: str  # the catalog model id
    provider: str
    provider_model: str
    attempt: int  # 1-based, per model
    stream: bool
    params: Mapping[str, Any] = field(default_factory=dict)  # credentials removed
    kind: HookKind = "request"


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """A call returned its completion (``generate``)."""

    call_id: int
    completion: Any  # runtime.types.Completion
    kind: HookKind = "response"


@dataclass(frozen=True, slots=True)
class StreamEndEvent:
    """A streamed call ended normally; ``completion`` is the whole result."""

    call_id: int
    completion: Any
    kind: HookKind = "stream_end"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A call failed for good (after retries and fallbacks)."""

    call_id: int
    model: str
    error: Exception
    latency: float
    stream: bool
    kind: HookKind = "error"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """An attempt failed and the same model is tried again after ``delay`` seconds."""

    call_id: int
    model: str
    attempt: int
    delay: float
    error: Exception
    kind: HookKind = "retry"


@dataclass(frozen=True, slots=True)
class FallbackEvent:
    """``failed`` gave up; ``next`` (another model of the chain) is tried."""

    call_id: int
    failed: str
    next: str
    error: Exception
    kind: HookKind = "fallback"


HookEvent: TypeAlias = (
    RequestEvent | ResponseEvent | StreamEndEvent | ErrorEvent | RetryEvent | FallbackEvent
)
