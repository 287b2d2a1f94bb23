"""Hooks: callables told about each call's request, response, stream end, error, retry, fallback.

``rt.hooks.add("response", fn)`` (or ``@rt.on("response")``) registers ``fn``, a plain or an
async callable taking one event object. Events are typed, frozen and redacted: they carry the
call's model ids, parameters with credentials removed, usage, latency and the error, never a
key. A hook that raises is logged (``runtime`` logger, WARNING) and never breaks the call;
an async hook runs as its own task, so a slow one does not slow the call either
(``await rt.aclose()`` waits for those still running).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .redact import redact

if TYPE_CHECKING:
    from .hook_events import (
        ErrorEvent,
        FallbackEvent,
        HookEvent,
        RequestEvent,
        ResponseEvent,
        RetryEvent,
        StreamEndEvent,
    )

__all__ = [
    "HOOK_KINDS",
    "ErrorEvent",
    "FallbackEvent",
    "HookEvent",
    "HookKind",
    "Hooks",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "StreamEndEvent",
]

log = logging.getLogger("runtime")

#: The event classes live in ``runtime.hook_events`` (made when a hook first needs one);
#: ``from runtime.hooks import RequestEvent`` works as it always did.
_EVENTS = frozenset(
    {
        "ErrorEvent",
        "FallbackEvent",
        "HookEvent",
        "RequestEvent",
        "ResponseEvent",
        "RetryEvent",
        "StreamEndEvent",
    }
)


def __getattr__(name: str) -> Any:
    if name in _EVENTS:
        from . import hook_events

        return getattr(hook_events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


HookKind = Literal["request", "response", "stream_end", "error", "retry", "fallback"]
HOOK_KINDS: tuple[HookKind, ...] = (
    "request",
    "response",
    "stream_end",
    "error",
    "retry",
    "fallback",
)


Hook = Callable[[Any], Awaitable[None] | None]


def safe_params(params: Mapping[str, Any], secrets: tuple[str | None, ...] = ()) -> dict[str, Any]:
    """Call parameters with credentials removed, by field name and by the keys' values."""
    return dict(redact(dict(params), secrets=[s for s in secrets if s]))


class Hooks:
    """The hooks of one runtime, by kind; cheap to ask when none is registered."""

    def __init__(self) -> None:
        self._by_kind: dict[str, tuple[Hook, ...]] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, kind: HookKind, hook: Hook) -> Hook:
        """Call ``hook(event)`` for every event of ``kind``; returns ``hook``."""
        if kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook kind {kind!r}; one of {', '.join(HOOK_KINDS)}")
        if not callable(hook):
            raise TypeError(f"hook for {kind!r} is not callable: {hook!r}")
        with self._lock:
            self._by_kind[kind] = (*self._by_kind.get(kind, ()), hook)
        return hook

    def remove(self, kind: HookKind, hook: Hook) -> None:
        with self._lock:
            self._by_kind[kind] = tuple(h for h in self._by_kind.get(kind, ()) if h is not hook)

    def wants(self, kind: HookKind) -> bool:
        return bool(self._by_kind.get(kind))

    def emit(self, event: HookEvent) -> None:
        """Tell every hook of the event's kind; never raises."""
        for hook in self._by_kind.get(event.kind, ()):
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(_guarded(hook, result))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception as exc:
                _failed(hook, event, exc)

    async def drain(self) -> None:
        """Wait for async hooks still running."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _guarded(hook: Hook, awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except Exception as exc:
        _failed(hook, None, exc)


def _failed(hook: Hook, event: HookEvent | None, exc: Exception) -> None:
    name = getattr(hook, "__qualname__", repr(hook))
    kind = f" on {event.kind!r}" if event is not None else ""
    log.warning("hook %s failed%s: %s: %s", name, kind, type(exc).__name__, exc)
